"""train(): runs end to end through the CLI, bad input, kill and resume, the resumed batch stream."""

import csv
import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from alexnet_keras.training.config import TrainConfig
from alexnet_keras.training.loop import train, training_stream

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
# Small synthetic runs: 10 classes, batches of 8, a few steps.
TINY = ["--set", "synthetic_classes=10", "--set", "synthetic_val_examples=16", "--batch-size", "8"]


def cli(*args, env=None, timeout=900):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/imagenet"], "not found"),
        (["--simulate-gtx580", "--strategy", "default"], "conflicts"),
        (["--simulate-gtx580", "--batch-size", "127"], "does not divide"),
        (["--classes", "5", "--batch-size", "8"], "does not match"),
        (["--lr-schedule", "cosine"], "lr-schedule"),
        (["--set", "nosuch=1"], "unknown config field"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    result = cli("train", "--run-dir", str(tmp_path / "r"), *args)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alexnet-keras: error:"), result.stderr[-2000:]
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def _write_messy_dataset(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("n00000001", "n00000002"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(d / f"{i}.JPEG")
    train_a = root / "train" / "n00000001"
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8), "L").save(train_a / "gray.jpg")
    Image.fromarray(rng.integers(0, 255, (30, 30, 4), dtype=np.uint8), "CMYK").save(train_a / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(train_a / "image.png")
    (train_a / "corrupt.JPEG").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")


def test_messy_dataset_trains_and_reports_one_skipped_file(tmp_path):
    _write_messy_dataset(tmp_path / "data")
    config = TrainConfig(data=str(tmp_path / "data"), epochs=1, batch_size=4, run_dir=str(tmp_path / "run"))
    summary = train(config, verbose=0)
    assert summary["skipped_files"] == 1
    assert summary["epochs_completed"] == 1 and summary["replicas"] == 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["classes"] == 2 and saved["config"]["epochs"] == 1
    model = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "best.keras", safe_mode=True)
    assert model.class_wnids == ["n00000001", "n00000002"]


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_simulated_gtx580_run_writes_the_run_directory(tmp_path):
    run = tmp_path / "R"
    result = cli("train", "--simulate-gtx580", "--epochs", "1", "--steps-per-epoch", "2", "--run-dir", str(run), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replica" in result.stdout and "2x GTX 580" in result.stdout and "synthetic" in result.stdout
    for path in [
        "config.json",
        "history.csv",
        "tensorboard",
        "checkpoints/last.keras",
        "checkpoints/best.keras",
        "checkpoints/last.json",
        "backup/epoch-0001.weights.h5",
        "backup/epoch-0001.json",
        "state.json",
        "summary.json",
    ]:
        assert (run / path).exists(), path
    summary = json.loads((run / "summary.json").read_text())
    for key in [
        "replicas",
        "epochs_completed",
        "images_per_second",
        "val_top1_error",
        "val_top5_error",
        "gtx580_equivalent_seconds",
        "data",
    ]:
        assert summary[key] is not None, key
    assert summary["replicas"] == 2 and "synthetic" in summary["data"]
    versions = json.loads((run / "config.json").read_text())["versions"]
    assert versions["keras"] == keras.__version__


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume(tmp_path):
    run = tmp_path / "R"
    args = ["train", "--epochs", "3", "--steps-per-epoch", "4", "--run-dir", str(run), *TINY]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = run / "backup" / "epoch-0001.json"  # written last: epoch 1 is finished
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if meta.exists():
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(1.0)  # well into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_history(run)) == 1

    assert cli("--version").returncode == 0  # the CLI still works; now resume
    result = cli("train", "--resume", "--run-dir", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from the end of epoch 1 (backup/epoch-0001.weights.h5)" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_completed"] == 3 and summary["resumed_from_epoch"] == 1
    rows = _history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # 1-based, contiguous, no duplicates
    errors = [1 - float(r["val_acc"]) for r in rows]
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 3
    assert state["checkpoints"]["best_error"] == pytest.approx(min(errors))
    assert state["checkpoints"]["best_epoch"] == errors.index(min(errors)) + 1


# --- resumed epochs see the batches the uninterrupted run saw ------------------------
def _batches_seen(epochs_done, epochs, steps):
    """(labels, pixel sum) of every batch `fit` feeds, per epoch, starting after `epochs_done` epochs."""
    import tensorflow as tf

    from alexnet_keras import data

    train_ds, _, info = data.load(
        "synthetic", batch_size=4, seed=3, synthetic_classes=10, synthetic_train_examples=16, validation=False
    )
    seen = []

    class Spy(keras.Model):
        def train_step(self, batch):
            x, y = batch
            tf.py_function(lambda x, y: seen.append((tuple(y.numpy()), float(tf.reduce_sum(x)))), [x, y], [])
            return {"images": tf.shape(x)[0]}

    inputs = keras.Input((227, 227, 3))
    spy = Spy(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    spy.compile(loss="mse")
    marks = []
    mark = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: marks.append(len(seen)))
    stream = training_stream(train_ds, epochs_done, steps, info.steps_per_epoch)
    spy.fit(
        stream,
        initial_epoch=epochs_done,
        epochs=epochs,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[mark],
        shuffle=False,
    )
    return [seen[a:b] for a, b in zip(marks, marks[1:] + [len(seen)], strict=True)]


@pytest.mark.parametrize("steps", [4, 3], ids=["epoch-is-a-pass", "epoch-is-not-a-pass"])
def test_resumed_epoch_sees_the_uninterrupted_batches(steps):
    full = _batches_seen(0, 4, steps)
    resumed = _batches_seen(2, 4, steps)
    assert len(resumed) == 2 and len(resumed[0]) == steps
    assert resumed[0][0] == full[2][0]  # the first batch of epoch 3
    assert resumed == full[2:]
    # What resuming did before: a fresh stream replays epoch 1's batches.
    assert _batches_seen(0, 1, steps)[0][0] == full[0][0] != full[2][0]


def test_a_batch_refused_by_the_memory_plan_leaves_no_run_directory(tmp_path):
    run = tmp_path / "R"
    result = cli(
        "train",
        "--simulate-gtx580",
        "--batch-size",
        "2048",
        "--run-dir",
        str(run),
        "--set",
        "synthetic_classes=10",
        "--set",
        "synthetic_train_examples=2048",
        "--set",
        "synthetic_val_examples=8",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "does not fit" in result.stderr or "GiB" in result.stderr, result.stderr[-2000:]
    assert not run.exists()


# --- fidelity and the mean image through `train` -------------------------------------
def _main(args, capsys):
    """(exit code, stdout, stderr) of one in-process CLI call."""
    from alexnet_keras.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cuda_convnet_fidelity_and_mean_image_reach_the_saved_model(tmp_path, capsys):
    """One tiny run with --fidelity cuda-convnet --mean image: the saved net is [CC]'s and carries the
    mean of the training squares, which equals numpy's mean over the same squares."""
    import tensorflow as tf

    from alexnet_keras import preprocessing
    from alexnet_keras.data.synthetic import synthetic_square

    run = tmp_path / "R"
    code, out, err = _main(
        [
            "train",
            "--run-dir",
            str(run),
            "--fidelity",
            "cuda-convnet",
            "--mean",
            "image",
            *TINY,
            "--set",
            "synthetic_train_examples=16",
            "--steps-per-epoch",
            "2",
            "--validation-steps",
            "1",
            "--epochs",
            "1",
        ],
        capsys,
    )
    assert code == 0, err[-2000:]
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["fidelity"], config["mean"]) == ("cuda-convnet", "image")

    streamed = np.load(run / preprocessing.MEAN_IMAGE_FILE, allow_pickle=False)
    squares = [synthetic_square(tf.constant(i, tf.int64), 10, 256, 0, 1)[0].numpy() for i in range(16)]
    np.testing.assert_allclose(streamed, np.mean(np.asarray(squares, np.float64), axis=0), atol=1e-3)

    model = keras.saving.load_model(run / "checkpoints" / "last.keras", safe_mode=True)
    names = [layer.name for layer in model.layers]
    assert names.index("relu1") == names.index("pool1") + 1  # [CC]: conv1 -> rnorm1 -> pool1 -> ReLU
    assert names.index("cnorm2") == names.index("lrn2") + 1
    assert {model.get_layer(n).get_config()["convention"] for n in ("lrn1", "lrn2")} == {"cuda-convnet"}
    spec = model.preprocessing
    assert preprocessing.has_mean_image(spec)
    np.testing.assert_allclose(preprocessing.mean_image(spec), streamed * spec["scale"], rtol=1e-3)  # float16
    best = keras.saving.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    assert best.preprocessing["mean"] == spec["mean"]


# --- plan --why-two-gpus ---------------------------------------------------------------
def test_plan_why_two_gpus_prints_both_plans_and_the_conclusion(capsys):
    from alexnet_keras import profile
    from alexnet_keras.models import AlexNet
    from alexnet_keras.simulations import memory

    code, out, err = _main(["plan", "--batch-size", "128", "--why-two-gpus"], capsys)
    assert code == 0, err
    w = memory.why_two_gpus(profile.profile_model(AlexNet("2012")), 128)
    assert w.conclusion in out and "one card" in out and "2 cards: GPU 0" in out


def test_plan_why_two_gpus_json(capsys):
    code, out, err = _main(["plan", "--why-two-gpus", "--json"], capsys)
    assert code == 0, err
    why = json.loads(out)["cuda_convnet_2012"]
    assert why["single_card_max_batch"] == 102
    assert why["deciding_assumptions"] == ["keep_activation_gradients"]


def test_plan_why_two_gpus_refuses_the_owt_net_in_one_line(capsys):
    code, out, err = _main(["plan", "--variant", "owt", "--why-two-gpus"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("alexnet-keras: error:") and "--variant 2012" in lines[0]
