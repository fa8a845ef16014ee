"""Bad-input cases: train. See badinput.py for the fields.

Runs go to `R` under the case's tmp dir (the harness's cwd). Cases whose setup
trains a real epoch, or that train after a fallback, are slow.
"""

import json
import pathlib
import subprocess
import sys

from badinput import case

TINY = (
    "--set",
    "synthetic_classes=10",
    "--set",
    "synthetic_val_examples=8",
    "--batch-size",
    "8",
    "--steps-per-epoch",
    "2",
)
RUN = ("--run-dir", "R")
# JAX on two forced CPU devices (the device count is fixed when JAX starts).
JAX_TWO_CPUS = {
    "KERAS_BACKEND": "jax",
    "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    "CUDA_VISIBLE_DEVICES": "",
}
# A sitecustomize that makes writes under $ALEXNET_TEST_FAULT's folder fail inside the CLI process.
FAULT_HOOK = str(pathlib.Path(__file__).resolve().parent / "fault_hook")
# A folder whose `jax` package fails to import, as on a machine without JAX.
NO_JAX = str(pathlib.Path(__file__).resolve().parent / "no_jax")


def _config(content):
    def setup(tmp):
        (tmp / "c.json").write_bytes(content)
        return {}

    return setup


def _user_folder(tmp):
    """A folder of someone else's results: not a run of this package."""
    run = tmp / "R"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text('{"mine": true}\n')
    (run / "history.csv").write_text("step,score\n1,0.5\n")
    (run / "checkpoints" / "model.bin").write_bytes(b"\0" * 16)
    return {}


def _ours(tmp, **changes):
    """A run directory as train writes it before its first epoch ends (no training needed)."""
    run = tmp / "R"
    run.mkdir()
    config = {
        "data": "synthetic",
        "classes": 10,
        "epochs": 1,
        "steps_per_epoch": 2,
        "batch_size": 8,
        "synthetic_classes": 10,
        "synthetic_val_examples": 8,
        "run_dir": str(run),
    }
    (run / "config.json").write_text(json.dumps({"schema": "alexnet-keras/run/1", "config": config}))
    for name, text in changes.items():
        (run / name.replace("__", ".")).write_text(text)
    return {}


def _trained(tmp):
    """A real one-epoch tiny run in R."""
    cmd = [sys.executable, "-m", "alexnet_keras_cli", "train", "--epochs", "1", *RUN, *TINY]
    result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "R"


def _corrupt(what):
    def setup(tmp):
        run = _trained(tmp)
        if what == "state":
            (run / "state.json").write_text("{not json")
        elif what == "metadata":  # every record of the backup: only last.keras is left to fall back on
            for meta in [*(run / "backup").glob("*.json*"), run / "state.json"]:
                meta.write_text('{"epoch": ')
        elif what == "weights":  # the newest backup weights, cut short as a kill mid-write leaves them
            newest = max((run / "backup").glob("*.weights.h5*"), key=lambda p: p.stat().st_mtime)
            newest.write_bytes(newest.read_bytes()[:4096])
        return {}

    return setup


CASES = [
    case("train-seed-negative", ["train", "--seed", "-1", *RUN], "seed"),
    case("train-seed-huge", ["train", "--seed", "1e20", *RUN], "seed"),
    case("train-set-seed-negative", ["train", "--set", "seed=-1", *RUN], "seed"),
    case("train-set-seed-too-big", ["train", "--set", f"seed={2**64}", *RUN], "seed"),
    case("train-batch-size-0", ["train", "--set", "batch_size=0", *RUN], "batch_size"),
    case("train-batch-size-negative", ["train", "--set", "batch_size=-8", *RUN], "batch_size"),
    case("train-batch-size-abc", ["train", "--set", "batch_size=abc", *RUN], "expected an integer"),
    case("train-variant-bogus", ["train", "--set", "variant=bogus", *RUN], "variant"),
    case("train-init-bogus", ["train", "--set", "init=bogus", *RUN], "init"),
    case("train-dropout-bogus", ["train", "--set", "dropout=bogus", *RUN], "dropout"),
    case("train-tower-impl-bogus", ["train", "--set", "tower_impl=bogus", *RUN], "tower_impl"),
    case("train-dropout-rate-1.5", ["train", "--set", "dropout_rate=1.5", *RUN], "dropout_rate"),
    case("train-steps-per-execution-0", ["train", "--set", "steps_per_execution=0", *RUN], "steps_per_execution"),
    case("train-epochs-0", ["train", "--set", "epochs=0", *RUN], "epochs"),
    case("train-epochs-negative", ["train", "--set", "epochs=-3", *RUN], "epochs"),
    case("train-momentum-nan", ["train", "--set", "momentum=nan", *RUN], "momentum"),
    case("train-lr-inf", ["train", "--set", "lr=inf", *RUN], "lr"),
    case("train-simulate-not-bool", ["train", "--set", "simulate_gtx580=maybe", *RUN], "true or false"),
    case("train-lr-schedule-bogus", ["train", "--lr-schedule", "cc146", *RUN], "cc145"),
    case("train-lr-schedule-step-empty", ["train", "--lr-schedule", "step:", *RUN], "lr-schedule"),
    case("train-fidelity-bogus", ["train", "--fidelity", "cuda", *RUN], "--fidelity"),
    case("train-set-fidelity-bogus", ["train", "--set", "fidelity=cuda", *RUN], "fidelity"),
    case(
        "train-owt-cuda-convnet",
        ["train", "--variant", "owt", "--fidelity", "cuda-convnet", *RUN],
        "--variant 2012 only",
    ),
    case("train-mean-bogus", ["train", "--mean", "images", *RUN], "--mean"),
    case("train-set-mean-bogus", ["train", "--set", "mean=images", *RUN], "mean"),
    case(
        "train-resume-switch-to-cc145",
        ["train", "--resume", "--lr-schedule", "cc145", *RUN],
        "per-layer rates",
        setup=_ours,
    ),
    case("train-config-list", ["train", "--config", "c.json", *RUN], "c.json", setup=_config(b"[1, 2]")),
    case("train-config-null", ["train", "--config", "c.json", *RUN], "c.json", setup=_config(b"null")),
    case(
        "train-config-not-utf8", ["train", "--config", "c.json", *RUN], "c.json", setup=_config(b'{"lr": "\xff\xfe"}')
    ),
    case(
        "train-config-nested-list", ["train", "--config", "c.json", *RUN], "c.json", setup=_config(b'{"config": [1]}')
    ),
    case(
        "train-config-wrong-type",
        ["train", "--config", "c.json", *RUN],
        "batch_size",
        setup=_config(b'{"batch_size": [8]}'),
    ),
    case("train-config-is-folder", ["train", "--config", ".", *RUN], "config"),
    case("train-run-dir-not-ours", ["train", *RUN], "not an alexnet-keras run", setup=_user_folder),
    case("train-resume-not-ours", ["train", "--resume", *RUN], "not an alexnet-keras run", setup=_user_folder),
    case("train-run-dir-is-file", ["train", *RUN], "R", setup=lambda tmp: (tmp / "R").write_text("x") and {}),
    case(
        "train-resume-history-not-ours",
        ["train", "--resume", *RUN],
        "history.csv",
        setup=lambda tmp: _ours(tmp, history__csv="step,score\n1,0.5\n"),
    ),
    case(
        "train-resume-conflicting-batch", ["train", "--resume", "--batch-size", "16", *RUN], "--batch-size", setup=_ours
    ),
    case("train-resume-conflicting-variant", ["train", "--resume", "--variant", "owt", *RUN], "--variant", setup=_ours),
    case(
        "train-enospc",
        ["train", *RUN, *TINY],
        "No space left on device",
        env={"PYTHONPATH": FAULT_HOOK, "ALEXNET_TEST_FAULT": "ENOSPC:R"},
    ),
    case(
        "train-erofs",
        ["train", *RUN, *TINY],
        "Read-only file system",
        env={"PYTHONPATH": FAULT_HOOK, "ALEXNET_TEST_FAULT": "EROFS:R"},
    ),
    # A corrupt backup falls back to an older state and says which, in one line.
    case(
        "train-resume-corrupt-state",
        ["train", "--resume", "--epochs", "2", *RUN],
        "state.json",
        setup=_corrupt("state"),
        expect="skip",
        slow=True,
    ),
    case(
        "train-resume-corrupt-metadata",
        ["train", "--resume", "--epochs", "2", *RUN],
        "last.keras",
        setup=_corrupt("metadata"),
        expect="skip",
        slow=True,
    ),
    case(
        "train-resume-truncated-weights",
        ["train", "--resume", "--epochs", "2", *RUN],
        "unreadable",
        setup=_corrupt("weights"),
        expect="skip",
        slow=True,
    ),
    # JAX backend and --parallel (issue 9). JAX's device count is fixed at start-up: XLA_FLAGS forces two CPUs.
    case(
        "train-parallel-towers-on-tf",
        ["train", *RUN, *TINY, "--parallel", "towers"],
        "KERAS_BACKEND=jax",
        env={"KERAS_BACKEND": "tensorflow"},
    ),
    case(
        "train-jax-not-installed",
        ["train", *RUN, *TINY],
        "pip install 'alexnet-keras[jax]'",
        env={"KERAS_BACKEND": "jax", "PYTHONPATH": NO_JAX},
    ),
    case(
        "train-parallel-data-batch-does-not-divide",
        ["train", *RUN, *TINY, "--parallel", "data", "--batch-size", "7"],
        "does not divide across 2 devices",
        env=JAX_TWO_CPUS,
    ),
    case(
        "train-simulate-gtx580-jax-one-cpu",
        ["train", *RUN, *TINY, "--simulate-gtx580"],
        "XLA_FLAGS=--xla_force_host_platform_device_count=2",
        env={"KERAS_BACKEND": "jax", "XLA_FLAGS": "", "CUDA_VISIBLE_DEVICES": ""},
    ),
    case("train-torch-backend", ["train", *RUN, *TINY], "KERAS_BACKEND is 'torch'", env={"KERAS_BACKEND": "torch"}),
    case(  # the paper's split is checked against 3 GB per card with the towers plan, not the data-parallel one
        "train-simulate-gtx580-towers-batch-does-not-fit",
        ["train", *RUN, *TINY, "--simulate-gtx580", "--parallel", "towers", "--batch-size", "1024"],
        "does not fit the towers split",
        env=JAX_TWO_CPUS,
    ),
]


# Several processes (training.multihost, issue 9). All refused before anything is written.
def _free_port(tmp):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return {"port": s.getsockname()[1]}


_JAX_CPU = {"KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
_TWO = ("--num-processes", "2")
CASES += [
    case(
        "train-processes-unreachable-coordinator",
        ["train", *RUN, *TINY, "--coordinator", "127.0.0.1:{port}", *_TWO, "--process-id", "1"],
        "cannot reach the coordinator 127.0.0.1:",
        setup=_free_port,
        env={**_JAX_CPU, "ALEXNET_KERAS_STARTUP_TIMEOUT": "2"},
    ),
    case(
        "train-processes-coordinator-alone",
        ["train", *RUN, *TINY, "--coordinator", "127.0.0.1:{port}", *_TWO, "--process-id", "0"],
        "not every process joined within 2 s",
        setup=_free_port,
        env={**_JAX_CPU, "ALEXNET_KERAS_STARTUP_TIMEOUT": "2"},
    ),
    case(
        "train-processes-batch-does-not-divide",
        ["train", *RUN, *TINY, "--batch-size", "9", "--coordinator", "127.0.0.1:1", *_TWO, "--process-id", "0"],
        "batch size 9 does not divide across 2 processes",
        env=_JAX_CPU,
    ),
    case(
        "train-processes-env-count-not-a-number",
        ["train", *RUN, *TINY],
        "KERAS_DISTRIBUTION_NUM_PROCESSES='two' is not a whole number",
        env={**_JAX_CPU, "KERAS_DISTRIBUTION_NUM_PROCESSES": "two"},
    ),
    case(
        "train-processes-env-id-out-of-range",
        ["train", *RUN, *TINY],
        "process id 2 is out of range for 2 processes",
        env={
            **_JAX_CPU,
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:1",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
            "KERAS_DISTRIBUTION_PROCESS_ID": "2",
        },
    ),
    case(
        "train-processes-env-addresses-count",
        ["train", *RUN, *TINY],
        "lists 3 addresses but there are 2 processes",
        env={
            **_JAX_CPU,
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2,c:3",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
            "KERAS_DISTRIBUTION_PROCESS_ID": "0",
        },
    ),
    case(
        "train-processes-bad-coordinator",
        ["train", *RUN, *TINY, "--coordinator", "localhost", *_TWO, "--process-id", "0"],
        "--coordinator 'localhost' is not HOST:PORT",
        env=_JAX_CPU,
    ),
    case(
        "train-process-id-without-count",
        ["train", *RUN, *TINY, "--process-id", "1"],
        "needs --num-processes",
        env=_JAX_CPU,
    ),
    case(
        "train-processes-on-tf",
        ["train", *RUN, *TINY, "--coordinator", "127.0.0.1:1", *_TWO, "--process-id", "0"],
        "train on the JAX backend only",
        env={"KERAS_BACKEND": "tensorflow"},
    ),
    case(
        "train-strategy-multi-worker",
        ["train", *RUN, *TINY, "--strategy", "multi-worker"],
        "keras-team/keras#20585",
        env={"KERAS_BACKEND": "tensorflow"},
    ),
    case(
        "train-tf-config-multi-worker",
        ["train", *RUN, *TINY],
        "keras-team/keras#20585",
        env={
            "KERAS_BACKEND": "tensorflow",
            "TF_CONFIG": '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 1}}',
        },
    ),
]
