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


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_cpu_quick_json_schema():
    require_torch()
    proc = _run(["benchmarks.cpu", "--quick", "--json"], timeout=1800)
    report = json.loads(proc.stdout)  # stdout is exactly one JSON object

    machine = report["machine"]
    for key in ("cpu", "cores", "tensorflow", "keras", "torch", "torchvision", "load_average_start"):
        assert key in machine, key
    assert machine["cores"] >= 1 and len(machine["load_average_start"]) == 3

    results = report["results"]
    assert {(r["variant"], r["mode"]) for r in results} == {(v, m) for v in ("owt", "2012") for m in ("train", "infer")}
    for r in results:
        assert RESULT_KEYS <= set(r), r
        assert r["batch"] == 64
        assert _positive(r["ours_img_s"]) and _positive(r["peer_img_s"]) and _positive(r["ratio"])
        # ratio is ours / peer, computed before rounding the two rates to 2 decimals
        assert r["ratio"] == pytest.approx(r["ours_img_s"] / r["peer_img_s"], rel=5e-3, abs=2e-3)
        assert _positive(r["ratio_paired_median"]) and r["steps"] >= 1

    for m in report["memory"]:
        assert _positive(m["measured_peak_bytes"]) and _positive(m["planned_bytes"])
        assert m["plan_over_measured"] == pytest.approx(m["planned_bytes"] / m["measured_peak_bytes"], abs=1e-3)
    for p in report["pipeline"]:  # empty where the shared imagenette data is absent
        assert _positive(p["pipeline_img_s"])
        assert p["pipeline_over_training"] == pytest.approx(p["pipeline_img_s"] / p["model_train_img_s"], rel=5e-3)
    for t in report["targets"]:
        assert {"name", "value", "target", "met"} <= set(t)


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
    assert len(names) == 8 and len(set(names)) == 8
    for e in report["entries"]:
        assert "skipped" not in e and "error" not in e, e
        assert _positive(e["train_img_s"]) and _positive(e["infer_img_s"])
    keras_part = report["parts"]["keras"]
    assert keras_part["keras_backend"] == "jax" and keras_part["dtype_policy"] == "mixed_bfloat16"
    # The script is for machines without TensorFlow: neither part may import it.
    assert report["parts"]["keras"]["tensorflow_imported"] is False
    assert report["parts"]["torch"]["tensorflow_imported"] is False
    text = results.read_text()
    assert text.startswith("# results\n") and "## GPU run" in text and "keras-jax ours 2012 split" in text
