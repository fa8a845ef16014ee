"""Bytes on disk of a run: best.keras shares last.keras's file while it is the best epoch and
sheds the optimizer state once it is not; every file stays loadable and resume exact."""

import errno
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from alexnet_keras import AlexNet, load_model
from alexnet_keras.training import callbacks as CB
from alexnet_keras.training import rundir
from alexnet_keras.training.optimizers import PaperSGD
from alexnet_keras.training.rundir import RunDir, has_optimizer_state, link_or_copy, model_without_optimizer

FLOAT32 = 4  # bytes per parameter
OVERHEAD = 64 * 1024  # HDF5 and zip headers, config.json and the records, per file (measured: under 20 KB)
UNITS, FEATURES = 1000, 256  # 257,000 parameters: the weights dominate the files


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    model = keras.Model(inputs, keras.layers.Dense(UNITS, activation="softmax")(inputs))
    model.compile(PaperSGD(0.1), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def _disk_bytes(path):
    """Bytes of the files under `path`, each file once however many names it has (as `du` counts)."""
    seen = {}
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def _states(model):
    return [np.array(v) for v in [*model.variables, *model.optimizer.variables]]


def test_a_run_stores_each_state_once_and_best_without_the_optimizer(tmp_path):
    model = _model()
    params = model.count_params()
    assert params == FEATURES * UNITS + UNITS
    weights = params * FLOAT32
    full = 2 * weights  # the weights and SGD's momentum (one slot per weight)
    schedule = CB.LearningRateSchedule(0.1, echo=lambda *_: None)
    writer = CB.RunWriter(RunDir(tmp_path), schedule, [])
    for cb in (schedule, writer):
        cb.set_model(model)
    x, y = np.random.default_rng(0).normal(size=(16, FEATURES)), np.arange(16) % UNITS
    last, best = tmp_path / "checkpoints" / "last.keras", tmp_path / "checkpoints" / "best.keras"
    saved = {}

    def epoch(n, val_acc):
        model.fit(x, y, epochs=1, verbose=0)
        logs = {"loss": 1.0, "val_acc": val_acc}
        schedule.on_epoch_end(n - 1, logs)
        writer.on_epoch_end(n - 1, logs)
        saved[n] = [np.array(w) for w in model.weights]

    # Epoch 1 is the best: best.keras is last.keras's file; last.keras and the backup hold the state.
    epoch(1, 0.5)
    assert os.path.samefile(best, last) and has_optimizer_state(best)
    assert 2 * full <= _disk_bytes(tmp_path) <= 2 * full + 8 * OVERHEAD

    # Epoch 2 is worse: best.keras keeps epoch 1's model, now without the optimizer state.
    epoch(2, 0.3)
    assert not os.path.samefile(best, last) and not has_optimizer_state(best) and has_optimizer_state(last)
    assert weights <= best.stat().st_size <= weights + OVERHEAD
    assert 3 * full + weights <= _disk_bytes(tmp_path) <= 3 * full + weights + 10 * OVERHEAD  # before: 4 x full
    best_model = load_model(best)
    assert getattr(best_model, "optimizer", None) is None  # not compiled: nothing to resume from, by design
    for got, want in zip(best_model.weights, saved[1], strict=True):
        np.testing.assert_array_equal(np.array(got), want)

    # Epoch 3 is the best again: one file for both names, and the stripped copy is gone.
    epoch(3, 0.6)
    assert os.path.samefile(best, last)
    assert 3 * full <= _disk_bytes(tmp_path) <= 3 * full + 10 * OVERHEAD
    assert not RunDir(tmp_path).partial_files()

    # Resume stays exact: the newest backup, then last.keras (with its optimizer state).
    expected = _states(model)
    for damaged in (None, "backup/epoch-0003.weights.h5"):
        if damaged:
            (tmp_path / damaged).write_bytes(b"cut short")
        fresh = _model()
        record, note = CB.restore(fresh, RunDir(tmp_path))
        assert record["epoch"] == 3, note
        for got, want in zip(_states(fresh), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    assert note.endswith("(checkpoints/last.keras)")


def test_without_optimizer_keeps_an_alexnet_and_its_preprocessing(tmp_path):
    keras.utils.set_random_seed(0)
    model = AlexNet("owt", include_top=False, input_shape=(64, 64, 3))
    model.compile(PaperSGD(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "full.keras")
    model_without_optimizer(tmp_path / "full.keras", tmp_path / "lean.keras")
    assert not list(tmp_path.glob("*.tmp*"))
    lean = load_model(tmp_path / "lean.keras")
    assert isinstance(lean, AlexNet) and lean.preprocessing == model.preprocessing
    for got, want in zip(lean.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.array(got), np.array(want))
    # Half the bytes: the momentum slots are as large as the weights.
    params_bytes = model.count_params() * FLOAT32
    assert (tmp_path / "full.keras").stat().st_size - (tmp_path / "lean.keras").stat().st_size >= params_bytes


def test_link_falls_back_to_a_copy_where_links_are_not_allowed(tmp_path, monkeypatch):
    src = tmp_path / "a.keras"
    src.write_bytes(b"state")

    def no_links(a, b):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(rundir.os, "link", no_links)
    link_or_copy(src, tmp_path / "b.keras")
    assert (tmp_path / "b.keras").read_bytes() == b"state" and not os.path.samefile(src, tmp_path / "b.keras")


@pytest.mark.slow
def test_a_tiny_2012_run_on_disk_matches_the_hand_bound(tmp_path):
    """2012 net, 10 classes, 2 epochs of 1 step: two backups and last.keras hold the full state,
    best.keras shares last.keras's file or holds the weights alone."""
    run = tmp_path / "run"
    args = ["train", "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "8", "--run-dir", str(run)]
    tiny = ["--set", "synthetic_classes=10", "--set", "synthetic_val_examples=8"]
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_keras_cli", *args, *tiny], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    params = 60_965_224 - 4096 * 1000 - 1000 + 4096 * 10 + 10  # fc8 with 10 outputs
    assert load_model(run / "checkpoints" / "last.keras").count_params() == params
    full = 2 * params * FLOAT32  # weights and momentum
    best_is_last = os.path.samefile(run / "checkpoints" / "best.keras", run / "checkpoints" / "last.keras")
    expected = 3 * full + (0 if best_is_last else params * FLOAT32)
    on_disk = _disk_bytes(run)
    print(f"\n2012 net, 10 classes, 2 epochs: {on_disk:,} bytes on disk; hand bound {expected:,} + overhead")
    assert expected <= on_disk <= expected + 2 * 2**20  # records, history, tensorboard: under 2 MiB
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 2
