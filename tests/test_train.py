"""The 2012 recipe: the optimiser's update rule, the config, the run directory, resume."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from alexnet_keras.errors import UserError
from alexnet_keras.optimizers import PaperSGD
from alexnet_keras.train import TrainConfig, parse_schedule, train

CLI = [sys.executable, "-m", "alexnet_keras.cli"]
# Small synthetic runs: 10 classes, batches of 8, a few steps.
TINY = ["--set", "synthetic_classes=10", "--set", "synthetic_val_examples=16", "--batch-size", "8"]


def cli(*args, env=None, timeout=900):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_three_steps_follow_the_papers_update_rule():
    lr, momentum, decay = 0.1, 0.9, 0.05  # large decay so coupling shows clearly
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    grads = [np.array([[0.3, -0.1], [0.2, 0.4]], "float32") * (t + 1) for t in range(3)]

    def run(optimizer):
        w = keras.Variable(w0)
        trace = []
        for g in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
            trace.append(np.array(w))
        return trace

    # By hand: v <- m v - decay lr w - lr g ; w <- w + v  (Krizhevsky et al. 2012, §5)
    w, v, expected = w0.astype("float64"), 0.0, []
    for g in grads:
        v = momentum * v - decay * lr * w - lr * g
        w = w + v
        expected.append(w)
    ours = run(PaperSGD(lr, momentum=momentum, coupled_decay=decay))
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # Keras' decoupled weight_decay agrees on step one and not on step three.
    decoupled = run(keras.optimizers.SGD(lr, momentum=momentum, weight_decay=decay))
    np.testing.assert_allclose(decoupled[0], expected[0], rtol=1e-5)
    assert np.abs(decoupled[2] - expected[2]).max() > 1e-3


def test_biases_get_no_decay():
    b = keras.Variable(np.ones(3, "float32"))
    PaperSGD(0.1, coupled_decay=0.5).apply_gradients([(keras.ops.zeros(3), b)])
    np.testing.assert_array_equal(np.array(b), np.ones(3))


def test_config_set_and_file(tmp_path):
    config = TrainConfig().update(epochs="3", lr="0.02", simulate_gtx580="true", classes="none")
    assert (config.epochs, config.lr, config.simulate_gtx580, config.classes) == (3, 0.02, True, None)
    with pytest.raises(UserError, match="unknown config field"):
        TrainConfig().update(learning_rate="1")
    with pytest.raises(UserError, match="bad value for epochs"):
        TrainConfig().update(epochs="many")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"config": {"batch_size": 64, "variant": "owt"}}))
    assert TrainConfig.from_file(path).batch_size == 64


def test_schedules():
    assert parse_schedule("paper", 90) is None
    assert parse_schedule("step:51,25,79", 90) == [25, 51, 79]
    with pytest.raises(UserError):
        parse_schedule("cosine", 90)


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


def test_train_refuses_other_backends(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = cli("train", "--run-dir", str(tmp_path / "r"), env=env)
    assert result.returncode == 2 and "TensorFlow backend" in result.stderr


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
    for path in ["config.json", "history.csv", "tensorboard", "checkpoints/last.keras", "checkpoints/best.keras",
                 "backup/training_metadata.json", "summary.json"]:
        assert (run / path).exists(), path
    summary = json.loads((run / "summary.json").read_text())
    for key in ["replicas", "epochs_completed", "images_per_second", "val_top1_error", "val_top5_error",
                "gtx580_equivalent_seconds", "data"]:
        assert summary[key] is not None, key
    assert summary["replicas"] == 2 and "synthetic" in summary["data"]
    versions = json.loads((run / "config.json").read_text())["versions"]
    assert versions["keras"] == keras.__version__


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume(tmp_path):
    run = tmp_path / "R"
    args = ["train", "--epochs", "3", "--steps-per-epoch", "4", "--run-dir", str(run), *TINY]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = run / "backup" / "training_metadata.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if meta.exists() and json.loads(meta.read_text() or "{}").get("epoch") == 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(1.0)  # well into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_history(run)) == 1

    result = cli("--version")  # the CLI still works; now resume
    result = cli("train", "--resume", "--run-dir", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from the end of epoch 1" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_completed"] == 3 and summary["resumed_from_epoch"] == 1
    rows = _history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # contiguous, no duplicates
    errors = [1 - float(r["val_acc"]) for r in rows]
    state = json.loads((run / "state.json").read_text())
    assert state["checkpoints"]["best_error"] == pytest.approx(min(errors))
    assert state["checkpoints"]["best_epoch"] == errors.index(min(errors)) + 1
