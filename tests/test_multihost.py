"""Several processes: settings, refusals, and real two-process runs on localhost (CPU, gloo).

The fast tests check how `training.multihost` reads the cluster from flags and Keras'
environment variables, and what it refuses. The slow ones start real processes: a tiny
Keras model (the watchdog's kill path, in seconds) and `alexnet-keras train` itself
(identical weights on both processes, equal to a one-process two-device run, one run
directory; kill -9 of a worker, then --resume).
"""

import os
import pathlib
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from alexnet_keras.errors import UserError
from alexnet_keras.training import multihost
from alexnet_keras.training.config import TrainConfig, resumed_config
from alexnet_keras.training.rundir import RunDir

TESTS = pathlib.Path(__file__).resolve().parent
HOOK = TESTS / "multihost_hook"  # sitecustomize: each process dumps its weights after every epoch
CLI = [sys.executable, "-m", "alexnet_keras_cli"]
ENV_KEYS = (multihost.ENV_ADDRESSES, multihost.ENV_NUM_PROCESSES, multihost.ENV_PROCESS_ID)


def _config(**fields):
    return TrainConfig().update(**fields)


# --- settings ----------------------------------------------------------------------
def test_single_process_by_default():
    assert multihost.cluster(_config(), environ={}) is None
    assert multihost.cluster(_config(num_processes=1), environ={}) is None


def test_cluster_from_flags():
    c = multihost.cluster(_config(coordinator="10.0.0.1:1234", num_processes=4, process_id=3), environ={})
    assert (c.coordinator, c.num_processes, c.process_id, c.source) == ("10.0.0.1:1234", 4, 3, "flags")
    assert c.describe(128) == "process 3 of 4 (coordinator 10.0.0.1:1234); global batch 128, 32 images per process"


def test_cluster_from_keras_environment_coordinator_first():
    env = {
        multihost.ENV_ADDRESSES: "10.0.0.1:1234, 10.0.0.2:2345",
        multihost.ENV_NUM_PROCESSES: "2",
        multihost.ENV_PROCESS_ID: "1",
    }
    c = multihost.cluster(_config(), environ=env)
    assert (c.coordinator, c.num_processes, c.process_id, c.source) == ("10.0.0.1:1234", 2, 1, "environment")


def test_flags_win_over_environment():
    env = {multihost.ENV_ADDRESSES: "10.0.0.1:1", multihost.ENV_NUM_PROCESSES: "8", multihost.ENV_PROCESS_ID: "5"}
    c = multihost.cluster(_config(coordinator="h:2", process_id=0), environ=env)
    assert (c.coordinator, c.num_processes, c.process_id) == ("h:2", 8, 0)


@pytest.mark.parametrize(
    "fields, env, fragment",
    [
        ({"num_processes": 2, "process_id": 0}, {}, "give --coordinator HOST:PORT"),
        ({"num_processes": 2, "coordinator": "h:1"}, {}, "give --process-id I (0 to 1"),
        ({"num_processes": 2, "coordinator": "h:1", "process_id": 2}, {}, "out of range for 2 processes"),
        ({"process_id": 1}, {}, "needs --num-processes"),
        ({"num_processes": 2, "coordinator": "h", "process_id": 0}, {}, "is not HOST:PORT"),
        ({"num_processes": 2, "coordinator": "h:99999", "process_id": 0}, {}, "is not HOST:PORT"),
        ({}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "two"}, "KERAS_DISTRIBUTION_NUM_PROCESSES='two' is not a whole"),
        ({}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "0"}, "is not a whole number >= 1"),
        ({"num_processes": 2}, {"KERAS_DISTRIBUTION_PROCESS_ID": "-1"}, "KERAS_DISTRIBUTION_PROCESS_ID='-1'"),
        (
            {"process_id": 0},
            {"KERAS_DISTRIBUTION_NUM_PROCESSES": "3", "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2"},
            "lists 2 addresses but there are 3 processes",
        ),
    ],
)
def test_bad_settings_are_one_line(fields, env, fragment):
    with pytest.raises(UserError) as e:
        multihost.cluster(_config(**fields), environ=env)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_startup_wait():
    assert multihost.startup_seconds({}) == multihost.STARTUP_SECONDS
    assert multihost.startup_seconds({multihost.ENV_STARTUP: "7"}) == 7
    with pytest.raises(UserError, match="ALEXNET_KERAS_STARTUP_TIMEOUT='soon'"):
        multihost.startup_seconds({multihost.ENV_STARTUP: "soon"})


def test_batch_must_divide_across_processes():
    assert multihost.check_batch(128, 4) == 32
    with pytest.raises(UserError, match="batch size 9 does not divide across 2 processes"):
        multihost.check_batch(9, 2)


def test_tf_multi_worker_is_refused_naming_the_jax_path_and_the_bug():
    for config, env in ((_config(strategy="multi-worker"), {}), (_config(), {"TF_CONFIG": '{"cluster": {}}'})):
        with pytest.raises(UserError) as e:
            multihost.refuse_tf_multi_worker(config, environ=env)
        assert "keras-team/keras#20585" in str(e.value) and "KERAS_BACKEND=jax" in str(e.value)
    multihost.refuse_tf_multi_worker(_config(), environ={})  # nothing to refuse
    multihost.refuse_tf_multi_worker(_config(), environ={"TF_CONFIG": "{}"}, tf_config=False)  # JAX ignores it


def test_resume_takes_the_processes_of_this_launch_not_the_saved_ones():
    saved = {"config": _config(coordinator="old:1", num_processes=4, process_id=0).as_dict()}
    here = _config(run_dir="R", num_processes=2, coordinator="new:2", process_id=1)
    config, changed = resumed_config(saved, here, {"num_processes", "coordinator", "process_id", "run_dir"})
    assert (config.coordinator, config.num_processes, config.process_id) == ("new:2", 2, 1)
    assert changed == {}
    alone, _ = resumed_config(saved, _config(run_dir="R"), {"run_dir"})
    assert (alone.coordinator, alone.num_processes, alone.process_id) == (None, None, None)


def test_lost_peer_errors_are_recognised():
    # The texts JAX 0.10.2 raised on this machine when the other process was killed.
    gloo = "UNKNOWN: Gloo all-reduce failed: [external/gloo/gloo/transport/tcp/pair.cc:547] Connection closed by peer"
    assert multihost.lost_peer_error(ValueError(gloo))
    assert not multihost.lost_peer_error(ValueError("shapes (3,) and (4,) do not match"))


def test_non_chief_runs_model_writes_in_a_scratch_folder_and_leaves_the_run_untouched(tmp_path):
    # Saving a model sharded over processes is a step every process must take; only the chief keeps it.
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_text("weights")

    worker = RunDir(tmp_path / "R", chief=False)
    worker.write_with("checkpoints/last.keras", write, everywhere=True)
    worker.write_with("history.csv", write)  # plain files: skipped
    assert len(seen) == 1 and seen[0].name == "last.keras"
    assert tmp_path / "R" not in seen[0].parents and not seen[0].parent.exists()
    assert not (tmp_path / "R").exists()
    RunDir(tmp_path / "R").write_with("checkpoints/last.keras", write, everywhere=True)
    assert (tmp_path / "R" / "checkpoints" / "last.keras").read_text() == "weights"


def test_validation_keeps_whole_global_batches_under_several_processes(monkeypatch):
    import tensorflow as tf

    ds = tf.data.Dataset.range(10).batch(8)  # 8 + a partial 2: split over 2 processes, 4 + 2 against 4
    assert [len(b) for b in multihost.whole_batches(ds, 8)] == [8, 2]  # one process: unchanged
    monkeypatch.setattr(multihost, "process_count", lambda: 2)
    assert [b.numpy().tolist() for b in multihost.whole_batches(ds, 8)] == [list(range(8))]


def test_single_process_helpers():
    assert multihost.active() is None
    assert (multihost.process_index(), multihost.process_count(), multihost.is_chief()) == (0, 1, True)
    multihost.finish(0)  # nothing joined: nothing to do


def test_initialize_is_a_no_op_for_one_process():
    config = types.SimpleNamespace(coordinator=None, num_processes=None, process_id=None, batch_size=8, strategy="auto")
    assert multihost.initialize(config, environ={}) is None


# --- real processes ----------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS and k != "TF_CONFIG"}
    env.update(
        KERAS_BACKEND="jax",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(HOOK), str(TESTS), env.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


def _cluster_env(port, pid):
    # Keras' own variables, every address listed (coordinator first), as a launcher would.
    return {
        multihost.ENV_ADDRESSES: f"127.0.0.1:{port},127.0.0.1:{port + 1}",
        multihost.ENV_NUM_PROCESSES: "2",
        multihost.ENV_PROCESS_ID: str(pid),
    }


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("alexnet-keras: error:")]


def _tiny(tmp_path, port, pid, steps, pause=0.0):
    out = open(tmp_path / f"out{pid}", "w")  # noqa: SIM115 -- closed by the caller via the process
    err = open(tmp_path / f"err{pid}", "w")  # noqa: SIM115
    cmd = [sys.executable, str(TESTS / "multihost_tiny.py"), str(steps), str(tmp_path / f"w{pid}.npz"), str(pause)]
    return subprocess.Popen(cmd, stdout=out, stderr=err, env=_env(**_cluster_env(port, pid)), cwd=tmp_path)


@pytest.mark.slow
def test_tiny_model_two_processes_end_identical(tmp_path):
    port = _free_port()
    procs = [_tiny(tmp_path, port, pid, steps=4) for pid in (0, 1)]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0], [(tmp_path / f"err{i}").read_text()[-2000:] for i in (0, 1)]
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert all(np.array_equal(w0[k], w1[k]) for k in w0.files)
    assert "global batch 8, 4 images per process" in (tmp_path / "out0").read_text()


@pytest.mark.slow
def test_tiny_model_kill_a_worker_the_other_stops_in_one_line(tmp_path):
    port = _free_port()
    procs = [_tiny(tmp_path, port, pid, steps=100000, pause=0.2) for pid in (0, 1)]
    try:
        deadline = time.monotonic() + 300
        while "step 3" not in (tmp_path / "out1").read_text():
            assert time.monotonic() < deadline and procs[1].poll() is None, (tmp_path / "err1").read_text()[-2000:]
            time.sleep(0.2)
        procs[1].kill()  # SIGKILL
        killed = time.monotonic()
        code = procs[0].wait(timeout=60)
        took = time.monotonic() - killed
    finally:
        for p in procs:
            p.kill()
    stderr = (tmp_path / "err0").read_text()
    assert code == multihost.LOST_EXIT, stderr[-2000:]
    assert took < 60
    assert "Traceback" not in stderr and "Check failure" not in stderr, stderr[-2000:]
    errors = _error_lines(stderr)
    assert len(errors) == 1 and "relaunch every process with --resume" in errors[0], stderr[-2000:]
    print(f"survivor exited {code} {took:.1f} s after the kill: {errors[0]}")


TINY_TRAIN = (
    "train",
    "--set",
    "synthetic_classes=10",
    "--set",
    "synthetic_train_examples=32",
    "--set",
    "synthetic_val_examples=8",
    "--batch-size",
    "8",
    "--steps-per-epoch",
    "2",
)


def _train(tmp_path, pid, port, dump, *args, log):
    """Process 0 from flags, process 1 from Keras' environment variables: both forms work."""
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"] if pid == 0 else []
    env = _env(ALEXNET_TEST_DUMP=str(dump), **({} if pid == 0 else _cluster_env(port, 1)))
    out = open(tmp_path / f"{log}.out{pid}", "w")  # noqa: SIM115
    err = open(tmp_path / f"{log}.err{pid}", "w")  # noqa: SIM115
    return subprocess.Popen([*CLI, *TINY_TRAIN, *args, *flags], stdout=out, stderr=err, env=env, cwd=tmp_path)


def _weights(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.slow
def test_train_two_processes_one_run_dir_identical_weights(tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    port = _free_port()
    procs = [_train(tmp_path, pid, port, dump, "--epochs", "1", "--run-dir", "R", log="two") for pid in (0, 1)]
    codes = [p.wait(timeout=1200) for p in procs]
    assert codes == [0, 0], [(tmp_path / f"two.err{i}").read_text()[-3000:] for i in (0, 1)]
    assert "global batch 8, 4 images per process" in (tmp_path / "two.out0").read_text()
    # One run directory, written by process 0 only; process 1 wrote nothing anywhere here.
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["R", "dump"]
    assert (tmp_path / "R" / "checkpoints" / "last.keras").is_file()
    assert (tmp_path / "R" / "backup" / "epoch-0001.weights.h5").is_file()
    w0, w1 = _weights(dump / "p0-e1.npz"), _weights(dump / "p1-e1.npz")
    assert w0.keys() == w1.keys()
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)

    # The same run in one process on two devices: the global batch (8) and the data are the same.
    one = tmp_path / "one"
    one.mkdir()
    env = _env(ALEXNET_TEST_DUMP=str(one), XLA_FLAGS="--xla_force_host_platform_device_count=2")
    r = subprocess.run(
        [*CLI, *TINY_TRAIN, "--epochs", "1", "--run-dir", "R1", "--parallel", "data"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ref = _weights(one / "p0-e1.npz")
    worst = max(float(np.max(np.abs(w0[k] - ref[k]) / (np.abs(ref[k]) + 1e-3))) for k in ref)
    print(f"two processes vs one process on two devices: largest relative difference {worst:.2e}")
    for k in ref:
        np.testing.assert_allclose(w0[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.slow
def test_train_kill_a_worker_then_resume_both(tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    port = _free_port()
    run = ("--epochs", "2", "--run-dir", "R")
    procs = [_train(tmp_path, pid, port, dump, *run, log="first") for pid in (0, 1)]
    try:
        deadline = time.monotonic() + 1200
        while not (tmp_path / "R" / "backup" / "epoch-0001.json").exists():
            assert time.monotonic() < deadline and procs[0].poll() is None and procs[1].poll() is None, [
                (tmp_path / f"first.err{i}").read_text()[-3000:] for i in (0, 1)
            ]
            time.sleep(0.2)
        procs[1].kill()  # SIGKILL, during epoch 2
        killed = time.monotonic()
        code = procs[0].wait(timeout=60)
        took = time.monotonic() - killed
    finally:
        for p in procs:
            p.kill()
    stderr = (tmp_path / "first.err0").read_text()
    assert code == multihost.LOST_EXIT, stderr[-3000:]
    assert "Traceback" not in stderr and "Check failure" not in stderr, stderr[-3000:]
    errors = _error_lines(stderr)
    assert len(errors) == 1 and "--resume" in errors[0], stderr[-3000:]
    print(f"kill -9 of process 1: process 0 exited {code} after {took:.1f} s: {errors[0]}")
    assert not (dump / "p0-e2.npz").exists()  # the kill came before epoch 2 ended

    port = _free_port()
    procs = [_train(tmp_path, pid, port, dump, *run, "--resume", log="again") for pid in (0, 1)]
    codes = [p.wait(timeout=1200) for p in procs]
    assert codes == [0, 0], [(tmp_path / f"again.err{i}").read_text()[-3000:] for i in (0, 1)]
    for pid in (0, 1):
        assert "resuming from the end of epoch 1" in (tmp_path / f"again.out{pid}").read_text()
    history = (tmp_path / "R" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2"]
    w0, w1 = _weights(dump / "p0-e2.npz"), _weights(dump / "p1-e2.npz")
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)
