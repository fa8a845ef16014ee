"""Faults a real run meets: kill -9 around an epoch's writes, a full disk, a read-only
run directory, a diverging model. Each trains tiny synthetic runs in subprocesses
(slow). Every run here is compared against an uninterrupted one, so a resume that
loads the wrong state or replays the wrong batches fails too.
"""

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
TINY = ["--set", "synthetic_classes=10", "--set", "synthetic_val_examples=16", "--batch-size", "8"]
STEPS = ["--steps-per-epoch", "2"]


def cli(*args, timeout=900):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("alexnet-keras: error:")]


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_same_history(got, want):
    """Epoch for epoch, the same metrics: the same weights saw the same batches."""
    assert [r["epoch"] for r in got] == [r["epoch"] for r in want]
    for a, b in zip(got, want, strict=True):
        for key in ("loss", "acc", "val_loss", "val_acc"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), (a["epoch"], key)


def assert_no_partial_files(run):
    left = [str(p.relative_to(run)) for p in run.rglob("*") if ".tmp" in p.name and "tensorboard" not in p.parts]
    assert not left, left


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted two-epoch run: what every interrupted run must end up equal to."""
    run = tmp_path_factory.mktemp("reference") / "R"
    result = cli("train", "--epochs", "2", *STEPS, "--run-dir", str(run), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


# Where the kill lands: the moment a file appears, plus a delay. The files are the
# epoch-end writes in order (see train.RunWriter), so the kills cover every step.
KILL_POINTS = [
    ("checkpoints/last.tmp.keras", 0.0),  # mid last.keras
    ("checkpoints/last.keras", 0.0),  # last.keras in place, best.keras not yet linked to it
    ("history.csv", 0.0),  # the row written, last.keras not yet recorded
    ("checkpoints/last.json", 0.0),  # before the backup
    ("backup/epoch-0001.tmp.weights.h5", 0.0),  # mid backup: the unresumable case
    ("backup/epoch-0001.tmp.weights.h5", 0.4),
    ("backup/epoch-0001.json", 0.0),  # just after epoch 1 is marked finished
    ("state.json", 0.0),
    ("checkpoints/last.tmp.keras", 1.5),  # somewhere later in the boundary
    ("backup/epoch-0002.tmp.weights.h5", 0.0),  # the last epoch's backup
    ("backup/epoch-0002.json", 0.0),  # all epochs finished, summary.json not yet written
]


def _kill_when(run, path, delay):
    proc = subprocess.Popen(
        [*CLI, "train", "--epochs", "2", *STEPS, "--run-dir", str(run), *TINY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not (run / path).exists():
        time.sleep(0.01)
    time.sleep(delay)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def test_kill_9_around_epoch_boundaries_then_resume(tmp_path, reference):
    tries, resumed, notes = 0, 0, []
    for i, (path, delay) in enumerate(KILL_POINTS):
        run = tmp_path / f"R{i}"
        killed = _kill_when(run, path, delay)
        tries += killed
        partial = sorted(str(p.relative_to(run)) for p in run.rglob("*.tmp*"))
        result = cli("train", "--resume", "--run-dir", str(run))
        note = next(
            (
                line
                for line in result.stdout.splitlines()
                if "resum" in line or "starting" in line or "nothing to train" in line
            ),
            "",
        )
        notes.append(f"kill at {path}+{delay}s ({'killed' if killed else 'had ended'}; partial {partial}): {note}")
        assert result.returncode == 0, notes[-1] + "\n" + result.stderr[-3000:]
        resumed += 1
        summary = json.loads((run / "summary.json").read_text())
        assert summary["epochs_completed"] == 2 and summary["stopped"] is None, notes[-1]
        assert [r["epoch"] for r in history(run)] == ["1", "2"], notes[-1]
        assert_same_history(history(run), history(reference))
        assert json.loads((run / "state.json").read_text())["epoch"] == 2, notes[-1]
        assert_no_partial_files(run)
        shutil.rmtree(run)  # 1.8 GB a run
    print(f"\nkill loop: {tries} kills, {resumed} resumes to completion")
    print("\n".join(notes))
    assert tries >= len(KILL_POINTS) - 1 and resumed == len(KILL_POINTS)


@pytest.mark.parametrize(
    "flags",
    [STEPS, ["--simulate-gtx580", *STEPS], ["--set", "synthetic_train_examples=16"]],
    ids=["default", "two-replicas", "epoch-is-a-pass"],
)
def test_resume_extends_a_finished_run_to_the_uninterrupted_result(tmp_path, flags):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert cli("train", "--epochs", "2", "--run-dir", str(whole), *flags, *TINY).returncode == 0
    assert cli("train", "--epochs", "1", "--run-dir", str(part), *flags, *TINY).returncode == 0

    again = cli("train", "--resume", "--run-dir", str(part))
    assert again.returncode == 0 and "finished all 1 epochs; nothing to train" in again.stdout, again.stderr[-2000:]

    extended = cli("train", "--resume", "--epochs", "2", "--run-dir", str(part), *flags, *TINY)  # repeated flags
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert "resuming from the end of epoch 1" in extended.stdout and "Epoch 2/2" in extended.stdout
    record = json.loads((part / "config.json").read_text())
    assert record["config"]["epochs"] == 2 and record["resumes"] == [{"from_epoch": 1, "changed": {"epochs": [1, 2]}}]
    assert_same_history(history(part), history(whole))
    assert json.loads((part / "summary.json").read_text())["epochs_completed"] == 2

    backwards = cli("train", "--resume", "--epochs", "1", "--run-dir", str(part))
    assert backwards.returncode == 2 and "fewer than the 2 epochs" in error_lines(backwards)[0]
    conflict = cli("train", "--resume", "--batch-size", "16", "--run-dir", str(part))
    assert conflict.returncode == 2 and "--batch-size 16 conflicts" in error_lines(conflict)[0]
    assert json.loads((part / "config.json").read_text()) == record  # refusals change nothing


def _files(run):
    return {str(p.relative_to(run)): p.stat().st_size for p in run.rglob("*") if p.is_file()}


def test_nan_loss_exits_1_and_saves_nothing(tmp_path):
    run = tmp_path / "R"
    result = cli("train", "--epochs", "2", "--steps-per-epoch", "3", "--set", "lr=1e9", "--run-dir", str(run), *TINY)
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(error_lines(result)) == 1 and "Traceback" not in result.stderr
    assert "non-finite loss (nan) at epoch 1 batch" in error_lines(result)[0]
    assert "nothing was saved" in error_lines(result)[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped"].startswith("non-finite loss") and summary["epochs_completed"] == 0
    assert not [f for f in _files(run) if f.startswith(("checkpoints", "backup")) or f == "history.csv"]


def test_non_finite_weights_with_a_finite_loss_are_caught(tmp_path):
    # lr 1e39 is inf in float32: the first step's loss is finite, the weights after it are not.
    run = tmp_path / "R"
    result = cli("train", "--epochs", "1", "--steps-per-epoch", "1", "--set", "lr=1e39", "--run-dir", str(run), *TINY)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "non-finite weights" in error_lines(result)[0] and "at the end of epoch 1" in error_lines(result)[0]
    assert not [f for f in _files(run) if f.startswith(("checkpoints", "backup"))]


def test_divergence_after_a_finished_epoch_keeps_that_epoch(tmp_path, reference):
    """Epoch 1 is fine, epoch 2's last update makes a weight NaN: epoch 1's files stay, and resume works."""
    import keras

    from alexnet_keras.training.config import TrainConfig
    from alexnet_keras.training.loop import TrainingStopped, train

    class PoisonEpoch2(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                w = self.model.trainable_variables[0]
                w.assign(np.full(w.shape, np.nan, "float32"))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    run = tmp_path / "R"
    config = TrainConfig(
        epochs=2, steps_per_epoch=2, batch_size=8, synthetic_classes=10, synthetic_val_examples=16, run_dir=str(run)
    )
    with pytest.raises(TrainingStopped, match="non-finite weights .* at the end of epoch 2.*after epoch 1 is kept"):
        train(config, verbose=0, callbacks=[PoisonEpoch2()])
    assert json.loads((run / "summary.json").read_text())["stopped"].startswith("non-finite weights")
    assert json.loads((run / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    assert sorted(os.listdir(run / "backup")) == ["epoch-0001.json", "epoch-0001.weights.h5"]
    assert [r["epoch"] for r in history(run)] == ["1"]
    model = keras.saving.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    assert all(np.isfinite(np.asarray(v)).all() for v in model.weights)

    result = cli("train", "--resume", "--run-dir", str(run))
    assert result.returncode == 0 and "resuming from the end of epoch 1" in result.stdout, result.stderr[-3000:]
    assert_same_history(history(run), history(reference))


def _mount(target, options):
    target.mkdir(exist_ok=True)
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True).returncode
        == 0
    )


def test_full_disk_and_read_only_run_directory(tmp_path, reference):
    """On a real small tmpfs: ENOSPC mid-epoch 2, then the folder made read-only, then room again."""
    mnt = tmp_path / "mnt"
    if not _mount(mnt, "size=1200m"):
        pytest.skip(
            "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN); the bad-input table covers "
            "ENOSPC and EROFS with a patched writer"
        )
    try:
        run = mnt / "R"
        # Epoch 1 writes last.keras and a backup (2 x 455 MB; best.keras is a link to last.keras); epoch 2's last.keras no longer fits.
        full = cli("train", "--epochs", "2", *STEPS, "--run-dir", str(run), *TINY)
        assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
        assert len(error_lines(full)) == 1 and "No space left on device" in error_lines(full)[0]
        assert "resumes from epoch 1" in error_lines(full)[0]
        assert_no_partial_files(run)
        assert json.loads((run / "state.json").read_text())["epoch"] == 1
        before = _files(run)

        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        read_only = cli("train", "--resume", "--epochs", "2", "--run-dir", str(run))
        assert read_only.returncode == 2 and "Traceback" not in read_only.stderr, read_only.stderr[-3000:]
        assert len(error_lines(read_only)) == 1 and os.strerror(errno.EROFS) in error_lines(read_only)[0]
        assert _files(run) == before

        subprocess.run(["mount", "-o", "remount,rw,size=3000m", str(mnt)], check=True)
        done = cli("train", "--resume", "--epochs", "2", "--run-dir", str(run))
        assert done.returncode == 0 and "resuming from the end of epoch 1" in done.stdout, done.stderr[-3000:]
        assert_same_history(history(run), history(reference))
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
