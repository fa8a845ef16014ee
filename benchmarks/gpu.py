"""GPU throughput: alexnet-keras on Keras/JAX (bf16) against torch, for a CUDA machine without TF.

    python -m benchmarks.gpu                 # batch 1024, bf16; appends to benchmarks/RESULTS.md
    python -m benchmarks.gpu --smoke         # JAX and torch on CPU, batch 2, 2 steps: does it run?

It needs JAX (with CUDA) and torch; TensorFlow need not be installed and is never
imported (`import alexnet_keras` and `AlexNet` pull in no TF; the run checks).

Entries, each timed for training (one optimizer step per call) and inference:

* `keras-jax ours 2012 split|grouped`, `keras-jax ours owt`: the package's models
  through `alexnet_keras.training.loop.build_model` (PaperSGD, the paper's loss and
  metrics) with `jit_compile=True` (jax.jit), under the `mixed_bfloat16` dtype
  policy, timed with `train_on_batch` / `predict_on_batch` on device arrays.
  `split` is the default tower implementation; `grouped` runs conv2/4/5 as one
  grouped convolution (cuDNN's native kernel), same weights.
* `keras-jax reference 2012`: a plain Keras model written here, not the package:
  `Conv2D(groups=2)`, an `ops`-level LRN (shifted sums, `ops.power`), Dropout,
  `keras.optimizers.SGD(momentum=0.9)`; same shapes and policy.
* `keras-jax ours 2012 data parallel`: `keras.distribution.DataParallel` over every
  local device (one device: the plain step under a distribution), the batch split.
* `keras-jax ours 2012 towers`: `alexnet_keras.training.towers.distribution("2012")`,
  the paper's split, on two devices (skipped with fewer; `--smoke` forces two CPU
  devices), the whole batch on each.
* `torch eager|compile 2012|owt`: `benchmarks.peers` (the torch 2012 network and
  torchvision's alexnet), channels-last, `torch.autocast(bfloat16)`,
  `cudnn.benchmark`; `torch.compile` wraps the module (default mode).

Keras-JAX and torch run in two child processes, one after the other, so the two
CUDA stacks never share a process or the GPU's memory. Every entry is the
median img/s over the timed steps after warm-up (compiles happen in warm-up).
Inputs are synthetic in-memory arrays (no tf.data, no TensorFlow import).
`--precision` sets the Keras side's dtype policy (`TrainConfig(precision=...)` for
ours, the global policy for the reference model; default mixed_bfloat16) and
torch's autocast (float32: none).
The whole run keeps to `--budget-s` (default 280 s, compiles included): an entry
that would start too late is skipped and listed as such.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.harness import REPO, package_constants, time_calls

RESULTS = REPO / "benchmarks" / "RESULTS.md"
# --precision: the Keras dtype policy, and the torch autocast dtype that matches it.
AUTOCAST = {"float32": None, "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
INPUT_SIZE = package_constants().INPUT_SIZE

# (part, name, variant, kind): run in this order, most important first.
ENTRIES = [
    ("keras", "keras-jax ours 2012 split", "2012", "split"),
    ("keras", "keras-jax ours 2012 grouped", "2012", "grouped"),
    ("keras", "keras-jax ours owt", "owt", "ours"),
    ("keras", "keras-jax reference 2012 (Conv2D groups=2)", "2012", "reference"),
    ("keras", "keras-jax ours 2012 data parallel (all devices)", "2012", "data"),
    ("keras", "keras-jax ours 2012 towers (2 devices)", "2012", "towers"),
    ("torch", "torch eager 2012", "2012", "eager"),
    ("torch", "torch eager owt", "owt", "eager"),
    ("torch", "torch compile 2012", "2012", "compile"),
    ("torch", "torch compile owt", "owt", "compile"),
]
# Rough seconds an entry needs on an H100 (compiles included); an entry starts only
# if this much of the budget is left.
NEEDS_S = {
    "split": 30,
    "grouped": 30,
    "ours": 25,
    "reference": 30,
    "data": 30,
    "towers": 40,
    "eager": 10,
    "compile": 60,
}
# Issue 9's targets (JAX, bf16, batch 1024): (what, ours, against, at least).
TARGETS = [
    ("2012 ours / plain Keras-JAX groups=2", "keras-jax ours 2012", "keras-jax reference 2012 (Conv2D groups=2)", 2.0),
    ("2012 ours / torch.compile", "keras-jax ours 2012", "torch compile 2012", 1.5),
    ("owt ours / torch.compile", "keras-jax ours owt", "torch compile owt", 1.0),
]


def _entry_result(name, variant, batch, train_s, infer_s, started, extra=None):
    row = {
        "name": name,
        "variant": variant,
        "batch": batch,
        "train_img_s": round(batch / statistics.median(train_s), 1),
        "infer_img_s": round(batch / statistics.median(infer_s), 1),
        "steps": len(train_s),
        "seconds_incl_compile": round(time.perf_counter() - started, 1),
    }
    row.update(extra or {})
    return row


# --- Keras on JAX -----------------------------------------------------------------
def reference_2012(classes=1000):
    """A plain Keras AlexNet 2012 as a user would write it: Conv2D(groups=2) + LRN."""
    import keras
    from keras import layers, ops

    class LRN(keras.layers.Layer):
        """Across-channel LRN, the paper's constants, shifted sums of zero-padded squares."""

        def call(self, x):
            squared = ops.pad(ops.square(x), ((0, 0), (0, 0), (0, 0), (2, 2)))
            c = x.shape[-1]
            window = sum(squared[..., i : i + c] for i in range(5))
            return x * ops.power(2.0 + 1e-4 * window, -0.75)

    size = INPUT_SIZE["2012"]
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(96, 11, strides=4, activation="relu")(inputs)
    x = layers.MaxPooling2D(3, 2)(LRN()(x))
    x = layers.Conv2D(256, 5, padding="same", groups=2, activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(LRN()(x))
    x = layers.Conv2D(384, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(384, 3, padding="same", groups=2, activation="relu")(x)
    x = layers.Conv2D(256, 3, padding="same", groups=2, activation="relu")(x)
    x = layers.Flatten()(layers.MaxPooling2D(3, 2)(x))
    x = layers.Dropout(0.5)(layers.Dense(4096, activation="relu")(x))
    x = layers.Dropout(0.5)(layers.Dense(4096, activation="relu")(x))
    outputs = layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="reference_2012")
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
    )
    return model


def _keras_model(kind, variant, batch, precision):
    """One Keras entry's compiled model; `data` and `towers` under their distribution (set here)."""
    import jax
    import keras

    from alexnet_keras.training.config import TrainConfig
    from alexnet_keras.training.loop import build_model

    keras.distribution.set_distribution(None)
    if kind == "reference":
        keras.config.set_dtype_policy(precision)
        try:
            return reference_2012()
        finally:
            keras.config.set_dtype_policy("float32")
    if kind == "data":
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    elif kind == "towers":
        if len(jax.devices()) < 2:
            raise _Skip(f"needs 2 devices, this machine has {len(jax.devices())}")
        from alexnet_keras.training import towers

        keras.distribution.set_distribution(towers.distribution("2012", devices=jax.devices()[:2]))
    tower = kind if kind in ("split", "grouped") else "split"
    config = TrainConfig(
        variant=variant, classes=1000, batch_size=batch, jit_compile=True, tower_impl=tower, precision=precision
    )
    return build_model(config)


class _Skip(Exception):
    """An entry this machine cannot run (e.g. towers on one device)."""


def run_keras(entries, batch, steps, warmup, deadline, emit, precision="mixed_bfloat16"):
    import jax
    import keras
    import numpy as np

    emit(
        {
            "part": "keras",
            "device": str(jax.devices()[0].device_kind),
            "platform": jax.devices()[0].platform,
            "jax": jax.__version__,
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "dtype_policy": precision,
            "device_count": len(jax.devices()),
        }
    )
    rng = np.random.default_rng(0)
    data = {}
    for _, name, variant, kind in entries:
        if time.time() + NEEDS_S[kind] > deadline:
            emit({"name": name, "skipped": "time budget"})
            continue
        started = time.perf_counter()
        model = None
        try:
            model = _keras_model(kind, variant, batch, precision)
            if variant not in data:  # synthetic, in memory: the path needs no tf.data
                size = INPUT_SIZE[variant]
                x = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
                y = rng.integers(0, 1000, batch).astype(np.int32)
                data[variant] = (x, y)
            x, y = data[variant]
            if kind not in ("data", "towers"):  # under a distribution Keras places (shards) the batch itself
                x, y = jax.device_put(x), jax.device_put(y)
            train_s = time_calls(lambda model=model, x=x, y=y: model.train_on_batch(x, y), steps, warmup)
            infer_s = time_calls(lambda model=model, x=x: model.predict_on_batch(x), steps, warmup)
            extra = {"devices": len(jax.devices()) if kind == "data" else 2} if kind in ("data", "towers") else {}
            emit(_entry_result(name, variant, batch, train_s, infer_s, started, extra))
        except _Skip as e:
            emit({"name": name, "skipped": str(e)})
        except Exception as e:  # noqa: BLE001 -- one failed entry (OOM, ...) must not stop the rest
            emit({"name": name, "error": f"{type(e).__name__}: {str(e)[:500]}"})
        model = None
        keras.distribution.set_distribution(None)
        keras.backend.clear_session()
    emit({"part": "keras", "tensorflow_imported": "tensorflow" in sys.modules})


# --- torch --------------------------------------------------------------------------
def run_torch(entries, batch, steps, warmup, deadline, emit, smoke, precision="mixed_bfloat16"):
    import torch

    from benchmarks import peers

    cuda = torch.cuda.is_available() and not smoke
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(os.cpu_count())
    emit(
        {
            "part": "torch",
            "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "autocast": AUTOCAST[precision],
        }
    )
    autocast = getattr(torch, AUTOCAST[precision]) if AUTOCAST[precision] else None
    for _, name, variant, kind in entries:
        if time.time() + NEEDS_S[kind] > deadline:
            emit({"name": name, "skipped": "time budget"})
            continue
        started = time.perf_counter()
        try:
            peer = peers.Peer(variant, device=device, compile=kind == "compile", channels_last=True, autocast=autocast)
            x, y = peer.batch(batch)
            train_s = time_calls(lambda peer=peer, x=x, y=y: peer.train_step(x, y), steps, warmup)
            infer_s = time_calls(lambda peer=peer, x=x: peer.infer(x), steps, warmup)
            emit(_entry_result(name, variant, batch, train_s, infer_s, started))
        except Exception as e:  # noqa: BLE001 -- one failed entry (OOM, compile error) must not stop the rest
            emit({"name": name, "error": f"{type(e).__name__}: {str(e)[:500]}"})
        peer = x = y = None
        if cuda:
            torch.cuda.empty_cache()
    emit({"part": "torch", "tensorflow_imported": "tensorflow" in sys.modules})


def child(args):
    """One part (keras or torch) in this process; one JSON line per entry to --out."""
    out = open(args.out, "a")

    def emit(record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    entries = [e for e in ENTRIES if e[0] == args.part and (args.only is None or args.only in e[1])]
    try:
        if args.part == "keras":
            run_keras(entries, args.batch, args.steps, args.warmup, args.deadline, emit, args.precision)
        else:
            run_torch(entries, args.batch, args.steps, args.warmup, args.deadline, emit, args.smoke, args.precision)
    except Exception as e:  # noqa: BLE001 -- report and let the other part run
        emit({"part": args.part, "error": f"{type(e).__name__}: {e}"})
        raise


# --- the parent: runs the parts, collects, reports ----------------------------------
def _child_env(smoke):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if smoke:
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
        # two CPU devices, so the data-parallel and towers entries run their distributed paths
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    else:
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")  # its own process: most of the GPU
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run(batch, steps, warmup, budget_s, smoke, only=None, echo=print, precision="mixed_bfloat16"):
    start = time.time()
    deadline = start + budget_s
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("keras", "torch"):
            out = pathlib.Path(tmp) / f"{part}.jsonl"
            left = deadline - time.time()
            command = (
                [
                    sys.executable,
                    "-m",
                    "benchmarks.gpu",
                    "--part",
                    part,
                    "--out",
                    str(out),
                    "--batch",
                    str(batch),
                    "--steps",
                    str(steps),
                    "--warmup",
                    str(warmup),
                    "--deadline",
                    str(deadline),
                    "--precision",
                    precision,
                ]
                + (["--smoke"] if smoke else [])
                + (["--only", only] if only else [])
            )
            echo(f"running the {part} part ({left:.0f} s of the budget left)")
            try:
                proc = subprocess.run(
                    command, cwd=REPO, env=_child_env(smoke), timeout=max(left, 1) + 30, capture_output=True, text=True
                )
                if proc.returncode:
                    echo(f"{part} part exited {proc.returncode}: " + proc.stderr.strip()[-2000:])
            except subprocess.TimeoutExpired:
                echo(f"{part} part ran past the budget and was stopped")
            if out.exists():
                for line in out.read_text().splitlines():
                    record = json.loads(line)
                    records.append(record)
                    if "name" in record:
                        echo(_format_entry(record))
    parts = {r["part"]: {k: v for k, v in r.items() if k != "part"} for r in records if "part" in r and "device" in r}
    for r in records:
        if "part" in r and "tensorflow_imported" in r:
            parts.setdefault(r["part"], {})["tensorflow_imported"] = r["tensorflow_imported"]
        if "part" in r and "error" in r:
            parts.setdefault(r["part"], {})["error"] = r["error"]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()},
        "smoke": smoke,
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "budget_s": budget_s,
        "wall_s": round(time.time() - start, 1),
        "precision": precision,
        "parts": parts,
        "entries": [r for r in records if "name" in r],
        "targets": targets([r for r in records if "name" in r]),
    }


def targets(entries):
    """Issue 9's ratios, from the entries of one run (ours: the faster of split and grouped)."""
    rate = {}
    for e in entries:
        if "train_img_s" in e:
            rate[e["name"]] = e["train_img_s"]
    ours_2012 = max(
        (rate[n] for n in ("keras-jax ours 2012 split", "keras-jax ours 2012 grouped") if n in rate), default=None
    )
    rate["keras-jax ours 2012"] = ours_2012
    checks = []
    for what, ours, peer, least in TARGETS:
        if rate.get(ours) and rate.get(peer):
            value = round(rate[ours] / rate[peer], 3)
            checks.append({"name": what, "value": value, "target": f">= {least}", "met": value >= least})
        else:
            checks.append({"name": what, "value": None, "target": f">= {least}", "met": None})
    return checks


def _format_entry(r):
    if "error" in r:
        return f"{r['name']:<45} failed: {r['error'][:200]}"
    if "skipped" in r:
        return f"{r['name']:<45} skipped ({r['skipped']})"
    return (
        f"{r['name']:<45} train {r['train_img_s']:>9.1f} img/s   infer {r['infer_img_s']:>9.1f} img/s"
        f"   ({r['seconds_incl_compile']:.0f} s incl. compile)"
    )


def markdown(report, command):
    keras_part, torch_part = report["parts"].get("keras", {}), report["parts"].get("torch", {})
    lines = [
        f"## GPU run, {report['date'][:10]}: {keras_part.get('device') or torch_part.get('device') or 'unknown device'}",
        "",
        f"Command: `{command}` (wall {report['wall_s']:.0f} s of a {report['budget_s']} s budget; "
        f"batch {report['batch']}, median of {report['steps']} steps after {report['warmup']} warm-up).",
        f"Keras {keras_part.get('keras')} on JAX {keras_part.get('jax')} ({keras_part.get('dtype_policy')}); "
        f"torch {torch_part.get('torch')} (CUDA {torch_part.get('cuda')}, autocast {torch_part.get('autocast')}). "
        f"TensorFlow imported: keras part {keras_part.get('tensorflow_imported')}, torch part "
        f"{torch_part.get('tensorflow_imported')}.",
        "",
        "| entry | train img/s | infer img/s | s incl. compile |",
        "|---|---:|---:|---:|",
    ]
    for r in report["entries"]:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error'][:120]} | | |")
        elif "skipped" in r:
            lines.append(f"| {r['name']} | skipped ({r['skipped']}) | | |")
        else:
            lines.append(
                f"| {r['name']} | {r['train_img_s']:.1f} | {r['infer_img_s']:.1f} | {r['seconds_incl_compile']:.0f} |"
            )
    lines.append("")
    for t in report.get("targets", []):
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "**missed**")
        lines.append(f"- {t['name']}: {t['value']} (target {t['target']}): {verdict}")
    for part in ("keras", "torch"):
        if "error" in report["parts"].get(part, {}):
            lines.append(f"\n{part} part error: `{report['parts'][part]['error']}`")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="JAX and torch on CPU, batch 2, 2 steps")
    parser.add_argument("--batch", type=int, default=None, help="default 1024 (2 with --smoke)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20; 2 with --smoke)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps, compiles included (default 3; 1)")
    parser.add_argument("--budget-s", type=float, default=280.0, help="wall-clock budget for everything")
    parser.add_argument("--only", default=None, help="run only entries whose name contains this")
    parser.add_argument(
        "--results", default=None, help="markdown file to append to (default benchmarks/RESULTS.md; none with --smoke)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--precision",
        choices=tuple(AUTOCAST),
        default="mixed_bfloat16",
        help="Keras dtype policy and torch autocast (default mixed_bfloat16)",
    )
    # internal: one part in a child process
    parser.add_argument("--part", choices=("keras", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch = args.batch or (2 if args.smoke else 1024)
    args.steps = args.steps or (2 if args.smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    if args.part:
        os.environ["KERAS_BACKEND"] = "jax"  # before anything imports keras
        return child(args)

    echo = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    report = run(args.batch, args.steps, args.warmup, args.budget_s, args.smoke, args.only, echo, args.precision)
    command = " ".join(["python -m benchmarks.gpu"] + (argv if argv is not None else sys.argv[1:]))
    results = args.results or (None if args.smoke else str(RESULTS))
    if results:
        with open(results, "a") as f:
            f.write("\n" + markdown(report, command))
        echo(f"appended to {results}")
    if args.json:
        print(json.dumps(report, indent=2))
    ok = (
        bool(report["entries"])
        and not any("error" in p for p in report["parts"].values())
        and not any("error" in r for r in report["entries"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
