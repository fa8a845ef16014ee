"""Smoke tests of the benchmark scripts: they run and report well-formed numbers.

No timing is asserted (the CI machine is shared and noisy); only the shape of the
report and its arithmetic, and the shared harness by hand.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from alexnet_keras import constants
from benchmarks import harness
from conftest import REPO, require_torch

RESULT_KEYS = {"variant", "mode", "batch", "ours_img_s", "peer_img_s", "ratio"}


def _run(args, timeout):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("KERAS_BACKEND", None)  # each script picks its own backend
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_alternate_swaps_the_order_every_round():
    calls = []
    times = harness.alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, steps=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then ab, ba, ab
    assert [len(t) for t in times.values()] == [3, 3] and all(s >= 0 for t in times.values() for s in t)


def test_time_calls_and_rate():
    calls = []
    seconds = harness.time_calls(lambda: calls.append(1), steps=4, warmup=2)
    assert len(calls) == 6 and len(seconds) == 4
    assert harness.rate(64, [1.0, 4.0, 2.0]) == 32.0  # the median step, not the mean


def test_package_constants_load_without_keras():
    """The torch part of benchmarks.gpu reads input sizes here: no Keras, JAX or TF may come with them."""
    code = (
        "import json, sys; from benchmarks import harness, peers; c = harness.package_constants(); "
        "print(json.dumps([c.INPUT_SIZE, peers.INPUT_SIZE, "
        "[m for m in ('keras', 'jax', 'tensorflow', 'alexnet_keras') if m in sys.modules]]))"
    )
    require_torch()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sizes, peer_sizes, loaded = json.loads(proc.stdout)
    assert sizes == peer_sizes == constants.INPUT_SIZE and loaded == []


def test_moving_mean_and_within_noise_by_hand():
    assert harness.moving_mean([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert harness.moving_mean([1, 2, 3], 5) == [2.0]  # a window longer than the curve: the whole curve
    f32_a, f32_b = [2.0, 1.0, 1.0, 0.0], [2.0, 2.0, 1.0, 1.0]  # 2-step means 1.5 1 .5 and 2 1.5 1: noise .5
    near = [2.0, 1.0, 1.0, 1.0]  # means 1.5 1 1: gaps 0 0 .5
    far = [3.0, 3.0, 3.0, 3.0]  # means 3 3 3: gaps 1.5 2 2.5
    assert harness.within_noise(f32_a, f32_b, near, 2) == {"window": 2, "noise": 0.5, "gap": 0.5, "within": True}
    assert harness.within_noise(f32_a, f32_b, far, 2) == {"window": 2, "noise": 0.5, "gap": 2.5, "within": False}


def _rounded_ratio(ratio, top, bottom):
    """`ratio` (3 decimals) is top / bottom, each rate rounded to 2 decimals before the report printed it."""
    exact = top / bottom
    return abs(ratio - exact) <= exact * (0.005 / top + 0.005 / bottom) + 5e-4


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_cpu_quick_json_schema():
    require_torch()
    # Small settings: the schema and the arithmetic, not the figures (CI time).
    small = ["--batches", "8", "--steps", "2", "--warmup", "1", "--loss-steps", "6", "--loss-window", "3"]
    proc = _run(["benchmarks.cpu", "--quick", "--json", *small, "--loss-batch", "4"], timeout=1800)
    report = json.loads(proc.stdout)  # stdout is exactly one JSON object

    machine = report["machine"]
    for key in ("cpu", "cores", "tensorflow", "keras", "torch", "torchvision", "load_average_start"):
        assert key in machine, key
    assert machine["cores"] >= 1 and len(machine["load_average_start"]) == 3

    results = report["results"]
    assert {(r["variant"], r["mode"]) for r in results} == {(v, m) for v in ("owt", "2012") for m in ("train", "infer")}
    for r in results:
        assert RESULT_KEYS <= set(r), r
        assert r["batch"] == 8
        assert _positive(r["ours_img_s"]) and _positive(r["peer_img_s"]) and _positive(r["ratio"])
        # ratio is ours / peer, computed before rounding the two rates to 2 decimals
        assert _rounded_ratio(r["ratio"], r["ours_img_s"], r["peer_img_s"])
        assert _positive(r["ratio_paired_median"]) and r["steps"] >= 1

    for m in report["memory"]:
        assert _positive(m["measured_peak_bytes"]) and _positive(m["planned_bytes"])
        assert m["plan_over_measured"] == pytest.approx(m["planned_bytes"] / m["measured_peak_bytes"], abs=1e-3)
    for p in report["pipeline"]:  # empty where the shared imagenette data is absent
        assert _positive(p["pipeline_img_s"])
        assert p["pipeline_over_training"] == pytest.approx(p["pipeline_img_s"] / p["model_train_img_s"], rel=5e-3)
    for t in report["targets"]:
        assert {"name", "value", "target", "met"} <= set(t)

    # JAX against TF: the TF figure is the run's own TF train row; ratio = JAX / TF
    tf_train = {r["variant"]: r["ours_img_s"] for r in results if r["mode"] == "train"}
    assert {r["variant"] for r in report["backends"]} == {"owt", "2012"}
    for r in report["backends"]:
        assert "error" not in r, r
        assert r["tf_img_s"] == tf_train[r["variant"]] and _positive(r["jax_img_s"])
        assert _rounded_ratio(r["jax_over_tf"], r["jax_img_s"], r["tf_img_s"])
        assert r["tensorflow_imported_by_jax_child"] is False
    t = report["towers"]
    assert "error" not in t, t
    assert t["devices"] == 2 and _positive(t["towers_img_s"]) and _positive(t["single_img_s"])
    assert _rounded_ratio(t["towers_over_single"], t["towers_img_s"], t["single_img_s"])
    assert t["first_step_loss_rel_diff"] < 1e-4  # the same step from the same weights

    for r in report["precision"]:
        assert set(r["img_s"]) == {"float32", "mixed_bfloat16"}
        assert _rounded_ratio(r["bf16_over_f32"], r["img_s"]["mixed_bfloat16"], r["img_s"]["float32"])
        assert r["logits_dtype"] == {"float32": "float32", "mixed_bfloat16": "float32"}  # fc8 stays float32
        assert r["conv1_dtype"] == {"float32": "float32", "mixed_bfloat16": "bfloat16"}
    for r in report["loss_check"]:
        curves = r["curves"]
        assert [len(c) for c in curves.values()] == [6, 6, 6]
        expected = harness.within_noise(*curves.values(), window=3)  # recomputed from the reported curves
        assert r["noise"] == pytest.approx(expected["noise"], abs=1e-3) and r["within"] == (r["gap"] <= r["noise"])
    names = [t["name"] for t in report["targets"]]
    assert sum("mixed_bfloat16 / float32" in n for n in names) == 2 and sum("loss" in n for n in names) == 2


@pytest.mark.slow
def test_gpu_script_smoke_on_cpu(tmp_path):
    pytest.importorskip("jax")
    require_torch()
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n")
    # A generous budget: on a busy CPU the compiles alone take minutes; nothing may be skipped.
    proc = _run(["benchmarks.gpu", "--smoke", "--json", "--budget-s", "1500", "--results", str(results)], timeout=1800)
    report = json.loads(proc.stdout)
    assert report["smoke"] and report["batch"] == 2
    names = [e["name"] for e in report["entries"]]
    assert len(names) == 10 and len(set(names)) == 10  # incl. data parallel and towers (2 forced CPU devices)
    for e in report["entries"]:
        assert "skipped" not in e and "error" not in e, e
        assert _positive(e["train_img_s"]) and _positive(e["infer_img_s"])
    keras_part = report["parts"]["keras"]
    assert keras_part["keras_backend"] == "jax" and keras_part["dtype_policy"] == "mixed_bfloat16"
    assert keras_part["device_count"] == 2
    by_name = {e["name"]: e for e in report["entries"]}
    assert by_name["keras-jax ours 2012 towers (2 devices)"]["devices"] == 2
    for t in report["targets"]:  # ratios of this run's own entries
        assert t["value"] is not None and _positive(t["value"]), t
    # The script is for machines without TensorFlow: neither part may import it.
    assert report["parts"]["keras"]["tensorflow_imported"] is False
    assert report["parts"]["torch"]["tensorflow_imported"] is False
    text = results.read_text()
    assert text.startswith("# results\n") and "## GPU run" in text and "keras-jax ours 2012 split" in text


# (report, target name, numerator entry, denominator entry): issue 9's GPU ratios, train img/s of one run.
GPU_TARGETS = [
    ("gpu.json", "2012 ours / plain Keras-JAX groups=2", "keras-jax ours 2012 split", "keras-jax reference 2012"),
    ("gpu.json", "2012 ours / torch.compile", "keras-jax ours 2012 split", "torch compile 2012"),
    ("gpu_owt.json", "owt ours / torch.compile", "keras-jax ours owt", "torch compile owt"),
]


@pytest.mark.parametrize("report_name, target, ours, peer", GPU_TARGETS)
def test_committed_gpu_run_ratios_recompute(report_name, target, ours, peer):
    """The committed H100 run: each target is the ratio of two entries of the same run, as RESULTS.md quotes it."""
    report = json.loads((REPO / "benchmarks" / "results" / "gpu-h100" / report_name).read_text())
    assert report["parts"]["keras"]["device"].startswith("NVIDIA H100") and not report["smoke"]
    assert report["parts"]["keras"]["tensorflow_imported"] is False and report["batch"] == 1024
    entries = {e["name"]: e for e in report["entries"]}
    (num,) = [e for name, e in entries.items() if name.startswith(ours)]
    (den,) = [e for name, e in entries.items() if name.startswith(peer)]
    (row,) = [t for t in report["targets"] if t["name"] == target]
    ratio = num["train_img_s"] / den["train_img_s"]
    assert row["value"] == pytest.approx(ratio, abs=5e-4)
    assert row["met"] is (ratio >= float(row["target"].split(">=")[1]))
    results = (REPO / "benchmarks" / "RESULTS.md").read_text()
    assert (
        f"| {num['name']} | {num['train_img_s']} |" in results
        and f"| {den['name']} | {den['train_img_s']} |" in results
    )
