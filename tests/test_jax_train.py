"""`train` on the JAX backend and `--parallel data`.

This pytest process runs on the TF backend, and JAX's device count is fixed when
JAX starts, so every JAX check runs in a subprocess with KERAS_BACKEND=jax and two
forced host CPU devices (the paper's two cards). References: the single-device
step, TF's forward pass of the same `.keras` file, an uninterrupted run.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
JAX_ENV = {
    "KERAS_BACKEND": "jax",
    "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    "CUDA_VISIBLE_DEVICES": "",
}
TINY = ["--set", "synthetic_classes=10", "--set", "synthetic_val_examples=8", "--batch-size", "8"]
STEPS = ["--steps-per-epoch", "2"]


def jax_env():
    return {**os.environ, **JAX_ENV}


def run_jax(code, timeout=600):
    """Runs `code` in a fresh JAX process; returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=jax_env()
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def jax_cli(*args, timeout=900):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=jax_env())


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


# --- fast: where the variables and the batch live, and dropout per device -------

DATA_PARALLEL_LAYOUT = """
import jax, numpy as np, keras
from jax.sharding import PartitionSpec
from keras.src.backend.jax.trainer import _distribute_data  # what fit and train_on_batch call per batch
from alexnet_keras.training import distribute
from alexnet_keras import AlexNet
from alexnet_keras.training.config import TrainConfig
from alexnet_keras.training.optimizers import PaperSGD

import tensorflow as tf

hidden, show = [], tf.config.set_visible_devices  # a spy: the real call still runs


def spy(devices, device_type=None):
    hidden.append((list(devices), device_type))
    return show(devices, device_type)


tf.config.set_visible_devices = spy
devices = distribute.setup(TrainConfig(parallel="data", batch_size=8, classes=10))
assert hidden == [([], "GPU")], hidden  # TF reserves no accelerator memory while JAX trains
assert (devices.kind, devices.name, devices.replicas, devices.per_device_batch) == ("jax", "data", 2, 4), devices
assert len(jax.devices()) == 2
with devices.scope():
    model = AlexNet(classes=10)
    model.compile(optimizer=PaperSGD(0.01), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
for v in model.variables + model.optimizer.variables:
    sharding = v.value.sharding
    assert sharding.is_fully_replicated and len(sharding.device_set) == 2, (v.path, sharding)
with devices.fit_scope():
    x, y, _ = _distribute_data((np.zeros((8, 227, 227, 3), "float32"), np.arange(8) % 10, None))
for array, rank in ((x, 4), (y, 1)):
    assert array.sharding.spec == PartitionSpec("batch", *[None] * (rank - 1)), array.sharding.spec
    shards = array.addressable_shards
    assert sorted(s.data.shape[0] for s in shards) == [4, 4] and len({s.device for s in shards}) == 2
print("variables", len(model.variables), "replicated; batch spec", x.sharding.spec)
"""


def test_data_parallel_replicates_the_variables_and_shards_the_batch():
    out = run_jax(DATA_PARALLEL_LAYOUT)
    assert "replicated" in out


DROPOUT_PER_DEVICE = """
import functools, jax, numpy as np, keras
from keras.src.backend.jax.trainer import _distribute_data
from alexnet_keras.layers import AlexNetDropout

distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
with distribution.scope():
    inputs = keras.Input((512,))
    model = keras.Model(inputs, AlexNetDropout(0.5, mode="paper", seed=3)(inputs))
    half = np.random.default_rng(0).uniform(1, 2, (4, 512)).astype("float32")
    (x,) = _distribute_data((np.concatenate([half, half]),))  # two identical halves, one per device

    # As the JAX trainer's step runs the model: stateless_call, jitted, state replicated.
    @functools.partial(jax.jit, static_argnames="training")
    def forward(trainable, non_trainable, x, training):
        return model.stateless_call(trainable, non_trainable, x, training=training)[0]

    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    train_out = forward(*state, x, True)
    test_out = forward(*state, x, False)
shards = sorted(train_out.addressable_shards, key=lambda s: s.index[0].start)
assert len({s.device for s in shards}) == 2
first, second = (np.asarray(s.data) != 0 for s in shards)
assert first.shape == second.shape == (4, 512)
# Each device drops about half its units, and not the same ones as the other device.
assert 0.4 < first.mean() < 0.6 and 0.4 < second.mean() < 0.6, (first.mean(), second.mean())
differ = (first != second).mean()
assert differ > 0.3, differ  # independent masks differ on about half the units
np.testing.assert_array_equal(np.asarray(test_out), np.concatenate([half, half]) * 0.5)  # paper: x keep-prob
print("masks differ between the devices on", differ)
"""


def test_paper_dropout_draws_a_different_mask_on_each_device():
    out = run_jax(DROPOUT_PER_DEVICE)
    assert "differ" in out


def test_setup_on_tf_keeps_the_strategies_and_refuses_towers():
    import keras

    from alexnet_keras.errors import UserError
    from alexnet_keras.training import distribute
    from alexnet_keras.training.config import TrainConfig

    assert keras.backend.backend() == "tensorflow"
    with pytest.raises(UserError, match="KERAS_BACKEND=jax"):
        distribute.setup(TrainConfig(parallel="towers"))
    default = distribute.setup(TrainConfig(batch_size=8))
    assert (default.kind, default.name, default.replicas, default.per_device_batch) == ("tf", "default", 1, 8)
    data = distribute.setup(TrainConfig(batch_size=8, parallel="data"))
    assert data.name == "data" and type(data.strategy).__name__ == "MirroredStrategy"
    assert data.replicas == data.strategy.num_replicas_in_sync and data.per_device_batch * data.replicas == 8


def test_configured_backend_reads_keras_own_settings_without_keras(tmp_path):
    from alexnet_keras.training import distribute

    assert distribute.configured_backend({"KERAS_BACKEND": "jax", "KERAS_HOME": str(tmp_path)}) == "jax"
    assert distribute.configured_backend({"KERAS_HOME": str(tmp_path)}) == "tensorflow"  # no keras.json
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    assert distribute.configured_backend({"KERAS_HOME": str(tmp_path)}) == "torch"
    (tmp_path / "keras.json").write_text("{not json")
    assert distribute.configured_backend({"KERAS_HOME": str(tmp_path)}) == "tensorflow"
    distribute.require_backend_package({"KERAS_BACKEND": "tensorflow"})  # installed: nothing to say


# --- slow: real steps and runs -----------------------------------------------------

STEP_EQUALITY = """
import numpy as np, keras
from alexnet_keras.training import distribute
from alexnet_keras.training.config import TrainConfig
from alexnet_keras.training.loop import build_model

config = TrainConfig(classes=10, batch_size=8, init="paper", dropout="paper", dropout_rate=0.0, seed=0)
rng = np.random.default_rng(0)
x = rng.normal(0, 50, (8, 227, 227, 3)).astype("float32")
y = np.arange(8) % 10

def one_step(devices, start=None):
    keras.utils.set_random_seed(0)
    with devices.scope():
        model = build_model(config)
        model.optimizer.build(model.trainable_variables)
        if start is not None:  # jitted sharded initialisers may differ by an ulp: start from the same weights
            for v, value in zip(model.trainable_variables, start, strict=True):
                v.assign(value)
    before = [np.asarray(v) for v in model.trainable_variables]
    with devices.fit_scope():
        logs = model.train_on_batch(x, y, return_dict=True)
    return before, [np.asarray(v) for v in model.trainable_variables], logs["loss"], model

single_before, single, single_loss, _ = one_step(distribute.setup(TrainConfig(classes=10, batch_size=8)))
data = distribute.setup(TrainConfig(classes=10, batch_size=8, parallel="data"))
assert data.replicas == 2
data_before, parallel, data_loss, model = one_step(data, single_before)
assert all(v.value.sharding.is_fully_replicated for v in model.trainable_variables)
worst_weight, worst_update = 0.0, 0.0
for b0, b1, a, b in zip(single_before, data_before, single, parallel, strict=True):
    np.testing.assert_array_equal(b0, b1)  # the same start
    worst_weight = max(worst_weight, float(np.max(np.abs(b - a)) / np.max(np.abs(a))))
    update = a - b0
    if np.any(update):
        worst_update = max(worst_update, float(np.linalg.norm((b - b0) - update) / np.linalg.norm(update)))
print(json.dumps({"loss_single": float(single_loss), "loss_data": float(data_loss),
                  "max_rel_weight_error": worst_weight, "max_rel_update_error": worst_update}))
"""


@pytest.mark.slow
def test_data_parallel_step_equals_the_single_device_step():
    out = run_jax("import json\n" + STEP_EQUALITY)
    numbers = json.loads(out.strip().splitlines()[-1])
    print(numbers)
    assert numbers["loss_data"] == pytest.approx(numbers["loss_single"], rel=1e-5)
    assert numbers["max_rel_weight_error"] < 1e-5, numbers
    assert numbers["max_rel_update_error"] < 1e-5, numbers


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """An uninterrupted two-epoch JAX run: the run-dir test reads it, the kill test compares with it."""
    run = tmp_path_factory.mktemp("jax") / "R"
    started = time.perf_counter()
    result = jax_cli("train", "--epochs", "2", *STEPS, "--run-dir", str(run), *TINY)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    print(f"2-epoch JAX run: {time.perf_counter() - started:.1f} s")
    return run, result


@pytest.mark.slow
def test_jax_train_writes_the_run_directory(jax_run):
    run, result = jax_run
    assert "strategy: default with 1 replica(s), 8 images each (keras jax)" in result.stdout
    record = json.loads((run / "config.json").read_text())
    assert record["versions"]["keras_backend"] == "jax" and "jax" in record["versions"]
    rows = history(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss", "acc", "val_loss", "val_acc"))
    for name in ("checkpoints/last.keras", "checkpoints/best.keras", "state.json", "backup/epoch-0002.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_completed"] == 2 and summary["stopped"] is None and summary["strategy"] == "default"
    assert np.isfinite(summary["val_top1_error"]) and summary["images_per_second"] > 0


FORWARD = """
import sys, numpy as np
from alexnet_keras.weights.io import load_keras
model = load_keras(sys.argv[1])
x = np.random.default_rng(1).normal(0, 50, (4, 227, 227, 3)).astype("float32")
np.save(sys.argv[2], np.asarray(model(x, training=False)))
"""


def _jax_forward(path, out):
    result = subprocess.run(
        [sys.executable, "-c", FORWARD, str(path), str(out)], capture_output=True, text=True, timeout=600, env=jax_env()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out)


def _tf_forward(path):
    from alexnet_keras.weights.io import load_keras

    model = load_keras(path)
    x = np.random.default_rng(1).normal(0, 50, (4, 227, 227, 3)).astype("float32")
    return np.asarray(model(x, training=False))


@pytest.mark.slow
def test_a_keras_file_trained_on_jax_gives_the_same_outputs_on_tf(jax_run, tmp_path):
    path = jax_run[0] / "checkpoints" / "last.keras"
    on_jax = _jax_forward(path, tmp_path / "jax.npy")
    on_tf = _tf_forward(path)
    np.testing.assert_allclose(on_tf, on_jax, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.log(on_tf), np.log(on_jax), rtol=1e-5, atol=1e-5)  # the logits, up to a constant


@pytest.mark.slow
def test_a_keras_file_trained_on_tf_gives_the_same_outputs_on_jax(tmp_path):
    import keras

    from alexnet_keras.training.config import TrainConfig
    from alexnet_keras.training.loop import build_model

    assert keras.backend.backend() == "tensorflow"
    keras.utils.set_random_seed(0)
    model = build_model(TrainConfig(classes=10, batch_size=4, init="paper", dropout="paper"))
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(0, 50, (4, 227, 227, 3)).astype("float32"), np.arange(4))
    path = tmp_path / "tf.keras"
    model.save(path)
    on_tf = _tf_forward(path)
    on_jax = _jax_forward(path, tmp_path / "jax.npy")
    np.testing.assert_allclose(on_jax, on_tf, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.log(on_jax), np.log(on_tf), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_kill_9_during_a_jax_run_then_resume_matches_the_uninterrupted_run(jax_run, tmp_path):
    reference = jax_run[0]
    run = tmp_path / "R"
    proc = subprocess.Popen(
        [*CLI, "train", "--epochs", "2", *STEPS, "--run-dir", str(run), *TINY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=jax_env(),
    )
    deadline = time.time() + 600
    # Epoch 1 is finished and backed up once its record appears; the kill lands in epoch 2.
    while proc.poll() is None and time.time() < deadline and not (run / "backup/epoch-0001.json").exists():
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists() and len(history(run)) == 1  # killed mid-run
    result = jax_cli("train", "--resume", "--run-dir", str(run))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    got, want = history(run), history(reference)
    assert [r["epoch"] for r in got] == ["1", "2"]
    for a, b in zip(got, want, strict=True):
        for key in ("loss", "acc", "val_loss", "val_acc"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), (a["epoch"], key)
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 2
    assert not [p for p in run.rglob("*.tmp*") if "tensorboard" not in p.parts]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data", "towers"])
def test_parallel_runs_match_the_single_device_run(jax_run, tmp_path, mode):
    """JAX draws each random mask over the global batch, so even with the paper's dropout
    a two-device run (2 replicas, or 2 towers) sees the single-device run's masks and losses."""
    run = tmp_path / "R"
    result = jax_cli("train", "--epochs", "1", *STEPS, "--run-dir", str(run), *TINY, "--parallel", mode)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    replicas = 2 if mode == "data" else 1
    assert f"strategy: {mode} with {replicas} replica(s), {8 // replicas} images each (keras jax)" in result.stdout
    assert json.loads((run / "summary.json").read_text())["strategy"] == mode
    (got,), want = history(run), history(jax_run[0])[0]
    for key in ("loss", "acc", "val_loss", "val_acc"):
        assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-5, abs=1e-6), key
