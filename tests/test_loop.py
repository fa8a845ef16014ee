"""The 2012 recipe: the optimiser's update rule, the config, the run directory, resume."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from alexnet_keras import train as T
from alexnet_keras.errors import UserError
from alexnet_keras.optimizers import PaperSGD
from alexnet_keras.train import TrainConfig, parse_schedule, train

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
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
    for got, want in zip(ours, expected, strict=True):
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
    with pytest.raises(UserError, match="bad value for epochs: 'many' .expected an integer"):
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

    result = cli("--version")  # the CLI still works; now resume
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


# --- validation: one place, every field ------------------------------------------
@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("seed", -1, "seed"), ("seed", 2**32, "seed"), ("batch_size", 0, "batch_size"), ("batch_size", True, "batch_size"),
        ("batch_size", 8.0, "expected an integer"), ("epochs", 0, "epochs"), ("epochs", -3, "epochs"),
        ("steps_per_execution", 0, "steps_per_execution"), ("classes", 1, "classes"),
        ("variant", "bogus", "choose from 2012, owt"), ("init", "bogus", "init"), ("dropout", "bogus", "dropout"),
        ("tower_impl", "bogus", "tower_impl"), ("strategy", "tpu", "strategy"), ("dropout_rate", 1.5, "dropout_rate"),
        ("dropout_rate", 1.0, "dropout_rate"), ("momentum", float("nan"), "momentum"), ("lr", 0.0, "lr"),
        ("lr", float("inf"), "lr"), ("weight_decay", -1e-4, "weight_decay"), ("simulate_gtx580", "yes", "true or false"),
        ("data", "", "data"), ("run_dir", 5, "run_dir"), ("lr_schedule", "step:0", "lr-schedule"),
    ],
)
def test_validate_names_the_bad_field(field, value, fragment):
    config = dataclasses.replace(TrainConfig(), **{field: value})  # as a notebook or a JSON file may set it
    with pytest.raises(UserError, match=fragment):
        config.validate()


def test_validate_accepts_the_defaults_and_the_edges():
    assert TrainConfig().validate() == TrainConfig()
    TrainConfig(seed=2**32 - 1, dropout_rate=0.0, momentum=0.0, weight_decay=0.0, lr=1, init="caffe",
                dropout="inverted", variant="owt", tower_impl="grouped", lr_schedule="step:2,1").validate()


@pytest.mark.parametrize(
    "content, fragment",
    [(b"[1, 2]", "holds an array"), (b"null", "holds null"), (b'{"config": [1]}', "holds an array"),
     (b'"x"', "holds a string"), (b'{"lr": "\xff"}', "not UTF-8"), (b"{", "not valid JSON")],
)
def test_config_files_that_are_not_objects(tmp_path, content, fragment):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=fragment):
        TrainConfig.from_file(path)


def test_cli_choices_are_the_validated_ones():
    """The CLI offers exactly what validate accepts (both read constants.py)."""
    from alexnet_keras.cli import _TRAIN_FLAGS
    from alexnet_keras.cli import train as train_command

    params = {p.name: p for p in train_command.params}
    flagged = [name for name in T.CHOICES if name in _TRAIN_FLAGS]
    assert flagged == ["variant", "init", "dropout", "strategy"]  # tower_impl is --set only
    for name in flagged:
        assert tuple(params[name].type.choices) == tuple(T.CHOICES[name]), name


# --- the run directory: checks before writes, atomic writes ------------------------


def _ours(run, **config):
    run.mkdir(parents=True)
    saved = TrainConfig(classes=10, epochs=2, init="paper", dropout="paper", run_dir=str(run)).update(**config)
    (run / "config.json").write_text(json.dumps({"schema": T.RUN_SCHEMA, "config": saved.as_dict()}))


def test_new_runs_need_a_new_or_empty_folder(tmp_path):
    fresh = TrainConfig(run_dir=str(tmp_path / "new"))
    T.open_run(fresh, resume=False, given=set())
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "empty").mkdir()
    T.open_run(TrainConfig(run_dir=str(tmp_path / "empty")), resume=False, given=set())
    user = tmp_path / "user"
    user.mkdir()
    (user / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="not an alexnet-keras run"):
        T.open_run(TrainConfig(run_dir=str(user)), resume=False, given=set())
    with pytest.raises(UserError, match="not an alexnet-keras run"):
        T.open_run(TrainConfig(run_dir=str(user)), resume=True, given=set())
    assert [p.name for p in user.iterdir()] == ["summary.json"]
    _ours(tmp_path / "ours")
    with pytest.raises(UserError, match="add --resume"):
        T.open_run(TrainConfig(run_dir=str(tmp_path / "ours")), resume=False, given=set())
    # Only the chief checks: another process of a multi-process run never refuses the folder.
    T.open_run(TrainConfig(run_dir=str(user)), resume=False, given=set(), chief=False)


def test_resume_keeps_the_saved_config_and_applies_allowed_changes(tmp_path):
    run = tmp_path / "R"
    _ours(run, batch_size=8, lr_schedule="paper")
    asked = TrainConfig(run_dir=str(run), batch_size=8, epochs=5, lr_schedule="step:3", variant="2012")
    config, _, _, changed = T.open_run(asked, resume=True, given={"batch_size", "epochs", "lr_schedule", "variant"})
    assert (config.batch_size, config.epochs, config.lr_schedule, config.classes) == (8, 5, "step:3", 10)
    assert changed == {"epochs": [2, 5], "lr_schedule": ["paper", "step:3"]}
    for field, value, flag in [("batch_size", 16, "--batch-size 16"), ("variant", "owt", "--variant owt"),
                               ("data", "/x", "--data /x"), ("init", "caffe", "--init caffe"),
                               ("classes", 5, "--classes 5"), ("seed", 1, "--seed 1")]:
        with pytest.raises(UserError, match=flag):
            T.open_run(TrainConfig(run_dir=str(run)).update(**{field: value}), resume=True, given={field})
    # A field left at its default is not "given", so it does not conflict.
    config, *_ = T.open_run(TrainConfig(run_dir=str(run)), resume=True, given={"run_dir"})
    assert config.epochs == 2


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    import errno

    run = T.RunDir(tmp_path)
    run.write_text("state.json", "old")

    def full_disk(tmp):
        tmp.write_text("half of the new")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(UserError, match="cannot write .*state.json: No space left on device"):
        run.write_with("state.json", full_disk)
    assert (tmp_path / "state.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

    def h5py_error(tmp):  # h5py reports errno failures as its own exception types
        tmp.write_bytes(b"\x89HDF")
        raise RuntimeError("Can't write data (file write failed: errno = 30, error message = 'Read-only file system')")

    with pytest.raises(UserError, match="Read-only file system"):
        run.write_with("state.json", h5py_error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    T.RunDir(tmp_path, chief=False).write_text("state.json", "not the chief")
    assert (tmp_path / "state.json").read_text() == "old"


def test_partial_files_are_found_only_where_a_run_writes(tmp_path):
    for name in ["last.tmp.keras", "last.keras"]:
        (tmp_path / "checkpoints").mkdir(exist_ok=True)
        (tmp_path / "checkpoints" / name).write_text("x")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "epoch-0002.tmp.weights.h5").write_text("x")
    (tmp_path / "state.tmp").write_text("x")  # the name 0.1.0 used
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "a.tmp.b").write_text("x")
    found = [str(p.relative_to(tmp_path)) for p in T.RunDir(tmp_path).partial_files()]
    assert found == ["backup/epoch-0002.tmp.weights.h5", "checkpoints/last.tmp.keras", "state.tmp"]


def test_history_must_be_ours(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n1,2.5\n2,2.0\n")
    assert [r["epoch"] for r in T._read_history(T.RunDir(tmp_path))] == ["1", "2"]
    for text in ["step,score\n1,0.5\n", "epoch,loss\n0,2.5\n", "epoch,loss\nlast,2\n"]:
        (tmp_path / "history.csv").write_text(text)
        with pytest.raises(UserError, match="not a history this package wrote"):
            T._read_history(T.RunDir(tmp_path))


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
    schedule = T.LearningRateSchedule(0.1, echo=lambda *_: None)
    writer = T.RunWriter(T.RunDir(run_path), schedule, [])
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
        "epoch-0002.json", "epoch-0002.weights.h5", "epoch-0003.json", "epoch-0003.weights.h5"]
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "history.csv"))] == ["1", "2", "3"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 3 and state["checkpoints"] == {"best_error": pytest.approx(0.7), "best_epoch": 3}
    assert not T.RunDir(tmp_path).partial_files()


def test_resume_falls_back_to_the_newest_loadable_state(tmp_path):
    states = _write_epochs(tmp_path, 3)
    run = T.RunDir(tmp_path)
    model = _tiny()
    record, note = T.restore(model, run)
    assert record["epoch"] == 3 and note == "resuming from the end of epoch 3 (backup/epoch-0003.weights.h5)"
    _assert_state(model, states[3])

    # state.json is one more record of the newest backup; damaged, it is named and passed over.
    (tmp_path / "state.json").write_text("{not json")
    record, note = T.restore(_tiny(), run)
    assert note.startswith("state.json is unreadable") and record["weights"] == "backup/epoch-0003.weights.h5"

    # A backup cut short, as a kill or a full disk leaves it: last.keras has the same epoch.
    weights = tmp_path / "backup" / "epoch-0003.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    model = _tiny()
    record, note = T.restore(model, run)
    assert "epoch-0003.weights.h5 is unreadable" in note and note.endswith("(checkpoints/last.keras)")
    _assert_state(model, states[3])

    # last.keras unreadable too: the other backup copy.
    (tmp_path / "checkpoints" / "last.keras").write_bytes(b"PK\x03\x04 not a zip")
    model = _tiny()
    record, note = T.restore(model, run)
    assert record["epoch"] == 2 and note.endswith("resuming from the end of epoch 2 (backup/epoch-0002.weights.h5)")
    _assert_state(model, states[2])

    # Its record corrupt as well: the start, said in one line.
    (tmp_path / "backup" / "epoch-0002.json").write_text('{"epoch": ')
    record, note = T.restore(_tiny(), run)
    assert record is None and note.endswith("no loadable state: starting again from epoch 1")
    assert "\n" not in note and note.count("unreadable") == 4


def test_resume_refuses_weights_that_changed_since_their_record(tmp_path):
    _write_epochs(tmp_path, 2)
    other = tmp_path / "other"
    _write_epochs(other, 1)
    # A complete, loadable file, but not the one the record describes.
    os.replace(other / "backup" / "epoch-0001.weights.h5", tmp_path / "backup" / "epoch-0002.weights.h5")
    record, note = T.restore(_tiny(), T.RunDir(tmp_path))
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
    schedule = T.LearningRateSchedule(0.1, echo=lambda *_: None)
    writer = T.RunWriter(T.RunDir(tmp_path), schedule, [])
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.arange(8) % 3
    with pytest.raises(T.NonFinite, match="non-finite weights .* at the end of epoch 2"):
        model.fit(x, y, batch_size=4, epochs=3, verbose=0,
                  callbacks=[T.FiniteGuard(), _PoisonAt(epoch=1), schedule, writer])
    assert writer.finished == 1
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 1
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "history.csv"))] == ["1"]
    restored = _tiny()
    assert T.restore(restored, T.RunDir(tmp_path))[0]["epoch"] == 1
    assert T._non_finite(restored.variables) is None


def test_non_finite_loss_stops_at_its_batch():
    model = _tiny()
    x = np.random.default_rng(0).normal(size=(8, 4))
    x[5] = np.nan  # the second batch of 4
    with pytest.raises(T.NonFinite, match=r"non-finite loss \(nan\) at epoch 1 batch 2"):
        model.fit(x, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0, callbacks=[T.FiniteGuard()])


# --- resumed epochs see the batches the uninterrupted run saw ------------------------
def _batches_seen(epochs_done, epochs, steps):
    """(labels, pixel sum) of every batch `fit` feeds, per epoch, starting after `epochs_done` epochs."""
    import tensorflow as tf

    from alexnet_keras import data

    train_ds, _, info = data.load("synthetic", batch_size=4, seed=3, synthetic_classes=10,
                                  synthetic_train_examples=16, validation=False)
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
    stream = T.training_stream(train_ds, epochs_done, steps, info.steps_per_epoch)
    spy.fit(stream, initial_epoch=epochs_done, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[mark],
            shuffle=False)
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
    result = cli("train", "--simulate-gtx580", "--batch-size", "2048", "--run-dir", str(run),
                 "--set", "synthetic_classes=10", "--set", "synthetic_train_examples=2048",
                 "--set", "synthetic_val_examples=8")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "does not fit" in result.stderr or "GiB" in result.stderr, result.stderr[-2000:]
    assert not run.exists()
