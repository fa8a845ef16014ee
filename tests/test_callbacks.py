"""What a finished epoch writes, what a resume loads back, and the stop on non-finite values."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from alexnet_keras.training import callbacks as CB
from alexnet_keras.training.optimizers import PaperSGD
from alexnet_keras.training.rundir import RunDir


# --- backups: what a finished epoch writes, and what a resume loads -----------------
def _tiny():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(PaperSGD(0.1), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def _state(model):
    return [np.array(v) for v in [*model.variables, *model.optimizer.variables]]


def _write_epochs(run_path, epochs):
    """Trains a tiny model `epochs` epochs, with RunWriter writing each; returns the states after each."""
    model = _tiny()
    schedule = CB.LearningRateSchedule(0.1, echo=lambda *_: None)
    writer = CB.RunWriter(RunDir(run_path), schedule, [])
    for cb in (schedule, writer):
        cb.set_model(model)
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.arange(8) % 3
    states = {}
    for epoch in range(epochs):
        model.fit(x, y, epochs=1, verbose=0)
        schedule.on_epoch_end(epoch, logs := {"loss": 1.0 / (epoch + 1), "val_acc": 0.1 * (epoch + 1)})
        writer.on_epoch_end(epoch, logs)
        states[epoch + 1] = _state(model)
    return states


def _assert_state(model, expected):
    for got, want in zip(_state(model), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_finished_epoch_writes_checkpoints_history_and_two_backups(tmp_path):
    _write_epochs(tmp_path, 3)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "epoch-0002.json",
        "epoch-0002.weights.h5",
        "epoch-0003.json",
        "epoch-0003.weights.h5",
    ]
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "history.csv"))] == ["1", "2", "3"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 3 and state["checkpoints"] == {"best_error": pytest.approx(0.7), "best_epoch": 3}
    assert not RunDir(tmp_path).partial_files()


def test_resume_falls_back_to_the_newest_loadable_state(tmp_path):
    states = _write_epochs(tmp_path, 3)
    run = RunDir(tmp_path)
    model = _tiny()
    record, note = CB.restore(model, run)
    assert record["epoch"] == 3 and note == "resuming from the end of epoch 3 (backup/epoch-0003.weights.h5)"
    _assert_state(model, states[3])

    # state.json is one more record of the newest backup; damaged, it is named and passed over.
    (tmp_path / "state.json").write_text("{not json")
    record, note = CB.restore(_tiny(), run)
    assert note.startswith("state.json is unreadable") and record["weights"] == "backup/epoch-0003.weights.h5"

    # A backup cut short, as a kill or a full disk leaves it: last.keras has the same epoch.
    weights = tmp_path / "backup" / "epoch-0003.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    model = _tiny()
    record, note = CB.restore(model, run)
    assert "epoch-0003.weights.h5 is unreadable" in note and note.endswith("(checkpoints/last.keras)")
    _assert_state(model, states[3])

    # last.keras unreadable too: the other backup copy.
    (tmp_path / "checkpoints" / "last.keras").write_bytes(b"PK\x03\x04 not a zip")
    model = _tiny()
    record, note = CB.restore(model, run)
    assert record["epoch"] == 2 and note.endswith("resuming from the end of epoch 2 (backup/epoch-0002.weights.h5)")
    _assert_state(model, states[2])

    # Its record corrupt as well: the start, said in one line.
    (tmp_path / "backup" / "epoch-0002.json").write_text('{"epoch": ')
    record, note = CB.restore(_tiny(), run)
    assert record is None and note.endswith("no loadable state: starting again from epoch 1")
    assert "\n" not in note and note.count("unreadable") == 4


def test_resume_refuses_weights_that_changed_since_their_record(tmp_path):
    _write_epochs(tmp_path, 2)
    other = tmp_path / "other"
    _write_epochs(other, 1)
    # A complete, loadable file, but not the one the record describes.
    os.replace(other / "backup" / "epoch-0001.weights.h5", tmp_path / "backup" / "epoch-0002.weights.h5")
    record, note = CB.restore(_tiny(), RunDir(tmp_path))
    assert "epoch-0002.weights.h5 is unreadable (changed or cut short" in note and record["epoch"] == 2
    assert record["weights"] == "checkpoints/last.keras"


# --- non-finite values never reach a file ------------------------------------------
class _PoisonAt(keras.callbacks.Callback):
    """Makes one weight NaN in the last batch of an epoch, after the loss of that batch was computed."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.params["steps"] - 1:
            w = self.model.weights[0]
            w.assign(np.where(np.arange(w.shape[-1]) == 0, np.nan, np.array(w)).astype("float32"))


def test_non_finite_weights_stop_before_anything_is_written(tmp_path):
    model = _tiny()
    schedule = CB.LearningRateSchedule(0.1, echo=lambda *_: None)
    writer = CB.RunWriter(RunDir(tmp_path), schedule, [])
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.arange(8) % 3
    with pytest.raises(CB.NonFinite, match="non-finite weights .* at the end of epoch 2"):
        model.fit(
            x, y, batch_size=4, epochs=3, verbose=0, callbacks=[CB.FiniteGuard(), _PoisonAt(epoch=1), schedule, writer]
        )
    assert writer.finished == 1
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 1
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "history.csv"))] == ["1"]
    restored = _tiny()
    assert CB.restore(restored, RunDir(tmp_path))[0]["epoch"] == 1
    assert CB.non_finite_variable(restored.variables) is None


def test_non_finite_loss_stops_at_its_batch():
    model = _tiny()
    x = np.random.default_rng(0).normal(size=(8, 4))
    x[5] = np.nan  # the second batch of 4
    with pytest.raises(CB.NonFinite, match=r"non-finite loss \(nan\) at epoch 1 batch 2"):
        model.fit(x, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0, callbacks=[CB.FiniteGuard()])
