"""CPU throughput and memory of alexnet-keras against PyTorch peers, in one process.

    python -m benchmarks.cpu            # full run: a table (7 to 20 min on 2 cores, by load)
    python -m benchmarks.cpu --json     # the same as one JSON object
    python -m benchmarks.cpu --quick    # batch 64 only, 5 steps (the CI smoke test)

What is timed (all on the same cores, ours and the peer alternating step by step):

* train: `alexnet_keras.training.loop.build_model(TrainConfig(variant, classes=1000,
  batch_size=B))`, the very model and compiled train step `alexnet-keras train`
  runs (PaperSGD, loss, acc and top-5 metrics), fed in-memory synthetic tensors
  through `model.train_on_batch`. Peer: torchvision `alexnet()` (owt) or the
  torch 2012 network in `benchmarks.peers` (2012), one SGD step (momentum 0.9,
  weight decay 5e-4) with cross-entropy.
* infer: `model.predict_on_batch`, the compiled predict step that `predict` and
  `evaluate` use. Peer: `model.eval()` under `torch.inference_mode()`.

Every number is the median of the timed steps after warm-up; ratio = ours / peer.
Torch runs with `torch.set_num_threads(os.cpu_count())`; TensorFlow keeps its
defaults (which use every core).

Also measured: the input pipeline (`alexnet_keras.data.load` on imagenette,
batches iterated without a model) against the model's training img/s, and the
peak TF memory of a training step (`tf.config.experimental.get_memory_info`)
against the planner (`alexnet_keras.simulations.memory.plan`, within its
`CALIBRATION_TOLERANCE`).

Everything runs on TensorFlow: no row needs JAX, so none is skipped without it.

Other processes on the machine slow both sides; the load average is recorded
next to every row. Compare ratios, not absolute img/s, across runs.
"""

import argparse
import gc
import json
import os
import pathlib
import statistics
import sys
import time

# torch and torchvision before TensorFlow: the other order segfaults (TF 2.21, torchvision 0.29.1).
try:
    import torch

    from benchmarks import peers  # imports torchvision
except ImportError as e:  # the peers are the point of the benchmark: say how to get them
    print(
        f"benchmarks.cpu: error: the torch peers need torch and torchvision ({e}); "
        "pip install '.[torch]' (CPU-only builds: see the README)",
        file=sys.stderr,
    )
    sys.exit(2)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_keras import profile  # noqa: E402
from alexnet_keras.constants import DEFAULT_PREPROCESSING  # noqa: E402
from alexnet_keras.simulations import memory  # noqa: E402
from alexnet_keras.training.config import TrainConfig  # noqa: E402
from alexnet_keras.training.loop import build_model  # noqa: E402
from benchmarks import harness  # noqa: E402

VARIANTS = ("owt", "2012")  # the order the rows run in (constants.VARIANTS lists 2012 first)
TARGETS = {  # issue 6: minimum ratios at batch 64
    ("owt", "train"): 1.5,
    ("2012", "train"): 2.0,
    ("owt", "infer"): 1.5,
    ("2012", "infer"): 2.0,
}
PIPELINE_TARGET = 2.0  # input pipeline img/s >= 2x model training img/s


def default_data_path():
    shared = os.environ.get("ALEXNET_SHARED") or str(harness.REPO.parent / "shared")
    return pathlib.Path(shared) / "data" / "imagenette"


def framework_info():
    """Versions and thread settings of the frameworks timed here, for `harness.machine_info`."""
    import torchvision

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


def _row(variant, mode, batch, ours, peer, load_before):
    ours_rate, peer_rate = harness.rate(batch, ours), harness.rate(batch, peer)
    return {
        "variant": variant,
        "mode": mode,
        "batch": batch,
        "ours_img_s": round(ours_rate, 2),
        "peer_img_s": round(peer_rate, 2),
        "ratio": round(ours_rate / peer_rate, 3),
        # Median over steps of peer_seconds / ours_seconds for the two calls of one round,
        # which ran back to back: less swayed by load that drifts during the run.
        "ratio_paired_median": round(statistics.median(p / o for o, p in zip(ours, peer, strict=True)), 3),
        "steps": len(ours),
        "ours_img_s_min_max": [round(batch / max(ours), 2), round(batch / min(ours), 2)],
        "peer_img_s_min_max": [round(batch / max(peer), 2), round(batch / min(peer), 2)],
        "load_average": [load_before, harness.load_average()],
    }


def bench_variant(variant, batch, steps, warmup, echo):
    """Train and infer rows for one variant and batch, plus the step's peak memory."""
    gc.collect()
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]  # what earlier runs left
    model = build_model(TrainConfig(variant=variant, classes=1000, batch_size=batch))
    size = model.input_shape[1]
    x = tf.random.normal((batch, size, size, 3), seed=1)
    y = tf.random.uniform((batch,), 0, 1000, tf.int32, seed=2)
    peer = peers.Peer(variant)
    px, py = peer.batch(batch)

    peaks = []

    def ours_train():
        tf.config.experimental.reset_memory_stats("CPU:0")
        model.train_on_batch(x, y)
        peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - base)

    rows = []
    load = harness.load_average()
    t = harness.alternate({"ours": ours_train, "peer": lambda: peer.train_step(px, py)}, steps, warmup)
    rows.append(_row(variant, "train", batch, t["ours"], t["peer"], load))
    echo(_format_row(rows[-1]))
    load = harness.load_average()
    t = harness.alternate({"ours": lambda: model.predict_on_batch(x), "peer": lambda: peer.infer(px)}, steps, warmup)
    rows.append(_row(variant, "infer", batch, t["ours"], t["peer"], load))
    echo(_format_row(rows[-1]))

    plan = memory.plan([r.as_dict() for r in profile.profile_model(model)], batch)
    timed_peaks = peaks[warmup:]  # the warm-up steps include tracing
    measured = max(timed_peaks)
    mem = {
        "variant": variant,
        "batch": batch,
        "measured_peak_bytes": int(measured),
        "measured_peak_min_bytes": int(min(timed_peaks)),
        "planned_bytes": int(plan.total_bytes),
        "plan_over_measured": round(plan.total_bytes / measured, 3),
        "within_tolerance": abs(plan.total_bytes / measured - 1) <= memory.CALIBRATION_TOLERANCE,
        "method": "tf.config.experimental.get_memory_info('CPU:0')['peak'] after reset_memory_stats, "
        "minus the allocator's bytes in use before the model was built; max over the timed "
        "train_on_batch steps (TF's CPU allocator, not process RSS)",
    }
    model = peer = None  # frees them before the next variant (closures above still name them)
    keras.backend.clear_session()
    gc.collect()
    return rows, mem


def bench_pipeline(data_path, variant, batch, batches, warmup, train_img_s):
    """img/s of the real training input pipeline, iterated without a model."""
    from alexnet_keras import data

    train_ds, _, info = data.load(
        str(data_path), batch_size=batch, spec=DEFAULT_PREPROCESSING[variant], validation=False
    )
    iterator = iter(train_ds.repeat())
    for _ in range(warmup):  # fills and drains the prefetch buffer
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        images, labels = next(iterator)
    seconds = time.perf_counter() - start
    rate = batches * batch / seconds
    return {
        "data": str(data_path),
        "spec": DEFAULT_PREPROCESSING[variant],
        "variant": variant,
        "batch": batch,
        "batches": batches,
        "train_examples": info.train_examples,
        "pipeline_img_s": round(rate, 2),
        "model_train_img_s": train_img_s,
        "pipeline_over_training": round(rate / train_img_s, 3) if train_img_s else None,
        "load_average": harness.load_average(),
    }


def bench_fit_on_pipeline(data_path, variant, batch, steps):
    """Training img/s of `model.fit` on the real pipeline (both share the cores)."""
    from alexnet_keras import data

    train_ds, _, _ = data.load(str(data_path), batch_size=batch, spec=DEFAULT_PREPROCESSING[variant], validation=False)
    model = build_model(TrainConfig(variant=variant, classes=10, batch_size=batch))
    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            stamps.append(time.perf_counter())

    model.fit(train_ds.repeat(), steps_per_epoch=steps + 2, epochs=1, verbose=0, shuffle=False, callbacks=[Stamp()])
    rate = harness.rate(batch, np.diff(stamps[1:]))  # drop the first step (tracing)
    model = None
    keras.backend.clear_session()
    gc.collect()
    return round(rate, 2)


def _keras_block_fns(layers, output_grad, input_grad):
    """tf.functions for a run of Keras layers: forward, and forward+backward.

    Closures, not default arguments: tf.function would turn variables and tensors
    given as defaults into inputs, and the gradients would silently become None.
    """
    weights = [w for layer in layers for w in layer.trainable_weights]

    def forward(x):
        for layer in layers:
            x = layer(x, training=True)
        return x

    def forward_backward(x):
        with tf.GradientTape() as tape:
            if input_grad:
                tape.watch(x)
            y = forward(x)
        grads = tape.gradient(y, weights + ([x] if input_grad else []), output_gradients=output_grad)
        assert all(g is not None for g in grads), "a gradient is None"
        return grads

    return tf.function(forward), tf.function(forward_backward)


def profile_layers(variant, batch, steps, warmup, echo):
    """Per-layer times of ours and the peer, each block timed alone, alternating.

    Forward (training mode) and forward+backward (weight gradients, plus the input
    gradient except for the first block, as in a train step), and the optimizer
    update on its own. Blocks run alone lose what a whole step overlaps or fuses,
    so the sums differ from the step times; the split between layers is the point.
    """
    model = build_model(TrainConfig(variant=variant, classes=1000, batch_size=batch))
    peer = peers.Peer(variant)
    peer.model.train()
    by_name = {layer.name: layer for layer in model.layers}
    rows = []
    for index, (name, keras_names, torch_parts) in enumerate(peers.BLOCKS[variant]):
        layers = [by_name[n] for n in keras_names]
        first = index == 0
        in_shape = (batch,) + tuple(layers[0].input.shape[1:])
        x = tf.random.normal(in_shape, seed=index)

        g = tf.random.normal((batch,) + tuple(layers[-1].output.shape[1:]), seed=100 + index)
        ours_f, ours_fb = _keras_block_fns(layers, g, input_grad=not first)

        block = peers.torch_block(peer.model, torch_parts)
        tx = torch.randn(*(in_shape[:1] + in_shape[3:] + in_shape[1:3]) if len(in_shape) == 4 else in_shape)
        tx.requires_grad_(not first)
        with torch.no_grad():
            tg = torch.randn_like(block(tx.detach()))

        def peer_f(block=block, tx=tx):
            with torch.no_grad():  # like ours: a forward that records nothing for backprop
                return float(block(tx).reshape(-1)[0])

        def peer_fb(block=block, tx=tx, tg=tg):
            for p in block.parameters():
                p.grad = None
            tx.grad = None
            block(tx).backward(tg)
            return float(next(block.parameters()).grad.reshape(-1)[0]) if list(block.parameters()) else 0.0

        t = harness.alternate(
            {
                "ours_f": lambda f=ours_f, x=x: np.asarray(f(x)).ravel()[0],
                "peer_f": peer_f,
                "ours_fb": lambda f=ours_fb, x=x: [np.asarray(v).ravel()[0] for v in f(x) if v is not None],
                "peer_fb": peer_fb,
            },
            steps,
            warmup,
        )
        row = {"block": name, "keras_layers": keras_names}
        for key, column in (
            ("ours_f", "ours_fwd_ms"),
            ("peer_f", "peer_fwd_ms"),
            ("ours_fb", "ours_fwd_bwd_ms"),
            ("peer_fb", "peer_fwd_bwd_ms"),
        ):
            row[column] = round(statistics.median(t[key]) * 1e3, 1)
        rows.append(row)
        echo(
            f"{variant:>5} {name:<14} fwd {row['ours_fwd_ms']:8.1f} / {row['peer_fwd_ms']:8.1f} ms   "
            f"fwd+bwd {row['ours_fwd_bwd_ms']:8.1f} / {row['peer_fwd_bwd_ms']:8.1f} ms  (ours / peer)"
        )

    # The optimizer update alone: random gradients into each side's own optimizer.
    variables = model.trainable_variables
    grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    ours_update = tf.function(lambda: model.optimizer.apply_gradients(zip(grads, variables, strict=True)))
    params = list(peer.model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    t = harness.alternate(
        {
            "ours": lambda: (ours_update(), variables[0].numpy().ravel()[0]),
            "peer": lambda: (peer.optimizer.step(), float(params[0].detach().reshape(-1)[0])),
        },
        steps,
        warmup,
    )
    rows.append(
        {
            "block": "optimizer update",
            "keras_layers": [],
            "ours_fwd_ms": 0.0,
            "peer_fwd_ms": 0.0,
            "ours_fwd_bwd_ms": round(statistics.median(t["ours"]) * 1e3, 1),
            "peer_fwd_bwd_ms": round(statistics.median(t["peer"]) * 1e3, 1),
        }
    )
    echo(
        f"{variant:>5} {'optimizer':<14} update {rows[-1]['ours_fwd_bwd_ms']:8.1f} / {rows[-1]['peer_fwd_bwd_ms']:8.1f} ms"
    )
    model = peer = None  # frees them before the next variant (closures above still name them)
    keras.backend.clear_session()
    gc.collect()
    return {"variant": variant, "batch": batch, "steps": steps, "blocks": rows, "load_average": harness.load_average()}


def _format_row(r):
    return (
        f"{r['variant']:>5} {r['mode']:>5} {r['batch']:>5} {r['ours_img_s']:>10.1f} "
        f"{r['peer_img_s']:>10.1f} {r['ratio']:>7.2f} {r['ratio_paired_median']:>7.2f}   load {r['load_average'][0]:.1f}"
    )


def _targets(results, pipelines, memories):
    checks = []
    for r in results:
        target = TARGETS.get((r["variant"], r["mode"])) if r["batch"] == 64 else None
        if target is not None:
            checks.append(
                {
                    "name": f"{r['variant']} {r['mode']} batch 64 ratio",
                    "value": r["ratio"],
                    "target": f">= {target}",
                    "met": r["ratio"] >= target,
                }
            )
    for p in pipelines:
        if p["pipeline_over_training"] is not None:
            checks.append(
                {
                    "name": f"pipeline ({p['spec']}) / {p['variant']} training, batch {p['batch']}",
                    "value": p["pipeline_over_training"],
                    "target": f">= {PIPELINE_TARGET}",
                    "met": p["pipeline_over_training"] >= PIPELINE_TARGET,
                }
            )
    for m in memories:
        checks.append(
            {
                "name": f"memory plan / measured peak, {m['variant']} batch {m['batch']}",
                "value": m["plan_over_measured"],
                "target": f"1 +- {memory.CALIBRATION_TOLERANCE}",
                "met": m["within_tolerance"],
            }
        )
    return checks


def run(
    quick=False,
    variants=VARIANTS,
    batches=None,
    steps=None,
    warmup=None,
    data_path=None,
    pipeline=True,
    profile_layers_too=False,
    echo=print,
):
    batches = batches or ([64] if quick else [64, 128])
    steps = steps or (5 if quick else 10)
    warmup = warmup if warmup is not None else (1 if quick else 2)
    torch.set_num_threads(os.cpu_count())
    machine = harness.machine_info(framework_info())
    echo(f"{'var':>5} {'mode':>5} {'batch':>5} {'ours img/s':>10} {'peer img/s':>10} {'ratio':>7} {'paired':>7}")
    results, memories = [], []
    for batch in batches:
        for variant in variants:
            rows, mem = bench_variant(variant, batch, steps, warmup, echo)
            results += rows
            memories.append(mem)

    pipelines, notes = [], []
    data_path = pathlib.Path(data_path) if data_path else default_data_path()
    if pipeline and data_path.is_dir():
        train_rate = {(r["variant"], r["batch"]): r["ours_img_s"] for r in results if r["mode"] == "train"}
        pipe_batch = batches[0]
        for variant in variants:
            p = bench_pipeline(
                data_path,
                variant,
                pipe_batch,
                6 if quick else 20,
                3 if quick else 5,
                train_rate.get((variant, pipe_batch)),
            )
            if not quick:
                p["fit_on_pipeline_train_img_s"] = bench_fit_on_pipeline(data_path, variant, pipe_batch, steps)
            pipelines.append(p)
            echo(
                f"input pipeline ({p['spec']}, batch {pipe_batch}): {p['pipeline_img_s']:.1f} img/s = "
                f"{p['pipeline_over_training']:.2f}x {variant} training"
                + (f"; fit on it: {p['fit_on_pipeline_train_img_s']:.1f} img/s" if not quick else "")
            )
    elif pipeline:
        notes.append(f"input pipeline not measured: {data_path} not found")

    layer_profiles = []
    if profile_layers_too:
        for variant in variants:
            layer_profiles.append(profile_layers(variant, batches[0], steps, warmup, echo))

    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "machine": machine,
        "command": " ".join(["python -m benchmarks.cpu"] + sys.argv[1:]),
        "settings": {
            "steps": steps,
            "warmup": warmup,
            "batches": batches,
            "variants": list(variants),
            "statistic": "median img/s over the timed steps; ratio = ours / peer",
            "ours": "alexnet_keras.training.loop.build_model (jit_compile False, steps_per_execution 1): "
            "train_on_batch / predict_on_batch on in-memory tensors",
            "peers": "owt: torchvision.models.alexnet; 2012: benchmarks.peers.AlexNet2012 "
            "(Conv2d groups=2, LocalResponseNorm(5, 5e-4, 0.75, 2)); SGD momentum 0.9, weight decay 5e-4",
        },
        "results": results,
        "pipeline": pipelines,
        "memory": memories,
        "targets": _targets(results, pipelines, memories),
        "layer_profiles": layer_profiles,
        "notes": notes,
    }


def format_report(report):
    lines = [
        f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores; "
        f"TF {report['machine']['tensorflow']}, Keras {report['machine']['keras']}, "
        f"torch {report['machine']['torch']}; load {report['machine']['load_average_start']} -> "
        f"{report['machine']['load_average_end']}",
        "",
        f"{'variant':>7} {'mode':>5} {'batch':>5} {'ours img/s':>10} {'peer img/s':>10} {'ratio':>7} {'paired':>7}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['variant']:>7} {r['mode']:>5} {r['batch']:>5} {r['ours_img_s']:>10.1f} "
            f"{r['peer_img_s']:>10.1f} {r['ratio']:>7.2f} {r['ratio_paired_median']:>7.2f}"
        )
    lines.append(
        "ratio = median ours img/s / median peer img/s; paired = median over rounds of "
        "(peer step time / ours step time), the two run back to back"
    )
    if report["pipeline"]:
        lines.append("")
        for p in report["pipeline"]:
            lines.append(
                f"input pipeline {p['spec']:<11} batch {p['batch']}: {p['pipeline_img_s']:.1f} img/s, "
                f"{p['pipeline_over_training']:.2f}x {p['variant']} training ({p['model_train_img_s']:.1f} img/s)"
            )
    lines.append("")
    for m in report["memory"]:
        lines.append(
            f"memory {m['variant']:>4} batch {m['batch']:>3}: measured peak {m['measured_peak_bytes'] / 2**20:,.0f} MiB, "
            f"plan {m['planned_bytes'] / 2**20:,.0f} MiB (plan/measured {m['plan_over_measured']:.2f})"
        )
    for prof in report.get("layer_profiles", []):
        lines += [
            "",
            f"per-layer ms, {prof['variant']} batch {prof['batch']} (each block alone; ours / peer):",
            f"{'block':<16} {'fwd ours':>9} {'fwd peer':>9} {'f+b ours':>9} {'f+b peer':>9}",
        ]
        for b in prof["blocks"]:
            lines.append(
                f"{b['block']:<16} {b['ours_fwd_ms']:>9.1f} {b['peer_fwd_ms']:>9.1f} "
                f"{b['ours_fwd_bwd_ms']:>9.1f} {b['peer_fwd_bwd_ms']:>9.1f}"
            )
        lines.append(
            f"{'sum':<16} "
            + " ".join(
                f"{sum(b[k] for b in prof['blocks']):>9.1f}"
                for k in ("ours_fwd_ms", "peer_fwd_ms", "ours_fwd_bwd_ms", "peer_fwd_bwd_ms")
            )
        )
    lines.append("")
    for t in report["targets"]:
        lines.append(f"{'met ' if t['met'] else 'MISS'} {t['name']}: {t['value']} (target {t['target']})")
    lines += report["notes"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="batch 64 only, 5 timed steps (CI smoke test)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: owt,2012")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 64,128; 64 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; 5 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2; 1 with --quick)")
    parser.add_argument("--data", default=None, help="imagenette folder (default ../shared/data/imagenette)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline measurement")
    parser.add_argument(
        "--profile-layers",
        action="store_true",
        help="also time each layer alone, ours against the peer's (first batch size)",
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}; choose from {VARIANTS}")
    batches = [int(b) for b in args.batches.split(",")] if args.batches else None
    # With --json, progress goes to stderr so stdout holds exactly one JSON object.
    echo = (
        (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else (lambda line: print(line, flush=True))
    )
    report = run(
        quick=args.quick,
        variants=variants,
        batches=batches,
        steps=args.steps,
        warmup=args.warmup,
        data_path=args.data,
        pipeline=not args.no_pipeline,
        profile_layers_too=args.profile_layers,
        echo=echo,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print()
        print(format_report(report))


if __name__ == "__main__":
    main()
