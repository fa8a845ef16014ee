"""The committed real `tune` and `ablate` runs (`python -m benchmarks.search`) agree with themselves,
with the issue's minimum size, and with the paper's claims as `simulations/data/paper_ablations.csv` records them.
Every figure is recomputed here from the report's own rows, by the formula the README states."""

import csv
import json
import math
import pathlib
import shlex

import pytest

from alexnet_keras.search.arms import claim_id
from alexnet_keras.training import TrainConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ABLATIONS = RESULTS / "ablations-imagenette"
TUNE = RESULTS / "tune-imagenette"
CLAIMS = REPO / "simulations" / "data" / "paper_ablations.csv"
ALL_ARMS = ["baseline", "lrn", "pool", "relu", "dropout", "pca", "towers", "depth_conv3", "depth_conv4", "depth_conv5"]


def _flag(command, name):
    words = shlex.split(command)
    return words[words.index(name) + 1] if name in words else None


def _committed(folder, report):
    return pytest.mark.skipif(not (folder / report).is_file(), reason=f"{folder.name} is not committed")


@_committed(ABLATIONS, "ablations.json")
def test_committed_ablation_run_is_whole_and_its_intervals_recompute():
    report = json.loads((ABLATIONS / "ablations.json").read_text())
    run = json.loads((ABLATIONS / "run.json").read_text())
    rows = {r["id"]: r for r in report["ablations"]}
    # The minimum: every arm, at least 5 epochs, one seed or more.
    assert list(rows) == ALL_ARMS
    epochs = int(_flag(run["command"], "--epochs-per-trial"))
    assert epochs >= 5 and report["epochs_per_trial"] == epochs
    assert all(r["epochs"] == epochs and r["seeds"] >= 1 for r in rows.values())
    assert _flag(run["command"], "--only") is None
    n = report["validation_images"]
    assert n > 0
    base = rows["baseline"]
    claims = {c["id"]: c for c in csv.DictReader(CLAIMS.open())}
    for arm, r in rows.items():
        assert 0 <= r["top1_error"] <= 1 and r["top5_error"] <= r["top1_error"]
        if arm == "baseline" or r["seeds"] != 1:
            continue
        for m in ("top1", "top5"):
            pb, pa = base[f"{m}_error"], r[f"{m}_error"]
            change = pb - pa
            half = 1.96 * math.sqrt((pb * (1 - pb) + pa * (1 - pa)) / n)
            assert r["change"][m] == pytest.approx(change, abs=1e-12)
            assert r["ci95"][m] == pytest.approx([change - half, change + half], abs=1e-12)
            assert r["interval_excludes_zero"][m] == (not change - half <= 0 <= change + half)
        claim = claims[claim_id(arm)]
        for m in ("top1", "top5"):
            recorded = claim[f"{m}_change"]
            assert r["paper_claim"][f"{m}_change"] == (float(recorded) if recorded else None)
            if claim["bound"] == "about" and recorded and claim["comparable"] == "true":
                low, high = r["ci95"][m]
                assert r["interval_holds_paper"][m] == (low <= float(recorded) <= high)
    # relu's and dropout's shapes: one epoch count per seed; the gaps from the rows' own errors.
    relu = rows["relu"]["epochs_to_threshold"]
    assert relu["threshold"] == report["relu_threshold"]
    assert len(relu["relu"]) == len(relu["tanh"]) == rows["relu"]["seeds"]
    gap = rows["dropout"]["val_minus_train_top1_error"]
    assert gap["with_dropout"] == pytest.approx(base["top1_error"] - base["train_top1_error"])
    assert gap["without_dropout"] == pytest.approx(rows["dropout"]["top1_error"] - rows["dropout"]["train_top1_error"])
    # The CSV is the JSON's table.
    table = list(csv.DictReader((ABLATIONS / "ablations.csv").open()))
    assert [t["id"] for t in table] == ALL_ARMS
    for t in table:
        assert float(t["top1_error"]) == pytest.approx(rows[t["id"]]["top1_error"], rel=1e-5)
    assert run["hours_here"] > 0 and run["machine"]


@_committed(TUNE, "trials.json")
def test_committed_tune_run_is_whole_and_its_best_config_trains():
    report = json.loads((TUNE / "trials.json").read_text())
    run = json.loads((TUNE / "run.json").read_text())
    assert int(_flag(run["command"], "--epochs-per-trial")) >= 3
    done = [t for t in report["trials"] if t["status"] == "COMPLETED"]
    assert len(done) >= 8 and int(_flag(run["command"], "--max-trials")) == len(done)
    assert all(0 <= t["objective"] <= 1 for t in done)
    best = min(done, key=lambda t: t["objective"])
    assert report["best"]["trial_id"] == best["trial_id"]
    # best_config.json is the base recipe with the best trial's values, and `train --config` reads it.
    best_config = json.loads((TUNE / "best_config.json").read_text())
    for name, value in best["hyperparameters"].items():
        if not name.startswith("tuner/"):
            assert best_config[name] == value, name
    config = TrainConfig.from_file(TUNE / "best_config.json").validate()
    assert config.simulate_gtx580 and config.data == _flag(run["command"], "--data")
    # Rejected trials (batches over 2 x 3 GiB) were recorded, not counted as trials.
    for t in report["trials"]:
        assert (t["status"] == "REJECTED") == (t["objective"] is None and t["run_dir"] is None)
    table = list(csv.DictReader((TUNE / "trials.csv").open()))
    assert [t["trial_id"] for t in table] == [t["trial_id"] for t in report["trials"]]
    assert run["hours_here"] > 0 and run["machine"]
    # A trial is flagged as one that did not learn exactly when its best error is within guessing's 95%
    # binomial interval: 1 - 1/10 +- 1.96 sqrt(0.9 x 0.1 / n) for imagenette's 10 classes and n val images.
    n = report["validation_images"]
    assert report["data"].endswith(f"10 classes, 9469 train, {n} val, 227x227")
    chance, half = 0.9, 1.96 * math.sqrt(0.9 * 0.1 / n)
    assert report["chance_top1_error"] == pytest.approx([chance, half])
    for t in done:
        assert t["at_chance"] == (abs(t["objective"] - chance) <= half), t["trial_id"]
    assert [t["trial_id"] for t in done if t["at_chance"]] == ["3", "7"]  # 90.08% and 89.83%, by hand
