"""The `plan`, `evaluate` and `compete` commands, run through `alexnet_keras.cli.main`."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from alexnet_keras.cli import main

# imagenette's classes (shared/data/imagenette/README.txt), typed here so no shared data is needed.
IMAGENETTE_WNIDS = [
    "n01440764",
    "n02102040",
    "n02979186",
    "n03000684",
    "n03028079",
    "n03394916",
    "n03417042",
    "n03425413",
    "n03445777",
    "n03888257",
]
EXE = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")


def run(args, capsys):
    """(exit code, stdout, stderr) of one in-process CLI call."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("alexnet-keras: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


# --- the table ---------------------------------------------------------------
def test_compete_prints_the_2012_table(capsys):
    code, out, _ = run(["compete"], capsys)
    assert code == 0
    for value in (
        "15.315",
        "16.422",
        "26.172",
        "26.602",
        "26.646",
        "26.952",
        "26.979",
        "27.058",
        "27.079",
        "27.302",
        "29.576",
        "33.419",
        "34.464",
        "36.184",
        "38.006",
        "41.048",
    ):
        assert value in out
    assert re.search(r"^\s+16\s+LEAR-XRCE\s+41\.048", out, re.M)
    assert "10.857 points" in out
    assert re.search(r"2010\s+NEC-UIUC\s+28\.200", out) and "2011" in out


def test_compete_json_schema(capsys):
    code, out, _ = run(["compete", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["year"] == 2012 and report["you"] is None
    entries = report["entries"]
    assert len(entries) == 16
    assert all({"team", "entry", "top5_error", "rank"} <= set(e) for e in entries)
    assert (entries[0]["team"], entries[0]["top5_error"], entries[0]["rank"]) == ("SuperVision", 0.15315, 1)
    assert (entries[2]["team"], entries[2]["top5_error"]) == ("ISI", 0.26172)
    assert report["winning_margin_points"] == pytest.approx(10.857)
    assert [p["year"] for p in report["progression"]] == [2010, 2011, 2012]


def test_compete_other_years(capsys):
    code, out, _ = run(["compete", "--year", "2011", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["entries"][0]["verified"] is False
    code, out, _ = run(["compete", "--year", "2010"], capsys)
    assert code == 0 and "28.200" in out and "28.191, unverified" in out


# [P] Table 2 and Table 1 / §6, typed by hand: (model, split as printed, top-1, top-5).
PAPER_2012 = [
    ("1 CNN", "validation", "40.7", "18.2"),
    ("5 CNNs", "validation", "38.1", "16.4"),
    ("5 CNNs", "test", "-", "16.4"),
    ("1 CNN*", "validation", "39.0", "16.6"),
    ("7 CNNs*", "validation", "36.7", "15.4"),
    ("7 CNNs*", "test", "-", "15.3"),
]
PAPER_2010 = [("CNN", "test", "37.5", "17.0"), ("CNN (centre patch only)", "test", "39.0", "18.3")]


def _reference_lines(out):
    """(model, split, top-1, top-5) of the reference rows printed under "[P]'s own models"."""
    section = out.split("[P]'s own models", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in section.splitlines()[2:]:
        m = re.match(r"^\s+(\S.*?)\s+(validation|test)\s+(-|\d+\.\d)\s+(\d+\.\d)\b", line)
        if m:
            rows.append(m.groups())
    return rows


def test_compete_shows_the_papers_models_unranked(capsys):
    code, out, _ = run(["compete"], capsys)
    assert code == 0
    assert _reference_lines(out) == PAPER_2012
    ranked = out.split("[P]'s own models", 1)[0]
    assert re.findall(r"^\s+(\d+)\s{2}\S", ranked, re.M) == [str(i) for i in range(1, 17)]
    assert "CNN" not in ranked
    assert "entered as test-preds-131-137-145-135-145f.txt (16.422)" in out
    assert "a cut of 41.5% of ISI's error (10.857 / 26.172)" in out
    assert "5 CNNs:  5 x 90 epochs: 27.5 days of the pair's time" in out
    assert "1 CNN*:  no total" in out and "about 15M images, 22K classes" in out


def test_compete_json_reference_rows(capsys):
    code, out, _ = run(["compete", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and len(report["entries"]) == 16
    refs = [(r["model"], r["split"], r["top1_error"], r["top5_error"]) for r in report["references"]]
    assert refs == [
        (
            m,
            "val" if sp == "validation" else sp,
            None if t1 == "-" else pytest.approx(float(t1) / 100),
            pytest.approx(float(t5) / 100),
        )
        for m, sp, t1, t5 in PAPER_2012
    ]
    assert not any("rank" in r for r in report["references"])
    assert report["winning_margin_relative"] == pytest.approx(0.414833, abs=1e-6)  # 10.857 / 26.172
    cost = report["paper_models_cost"]
    assert cost["five_cnns_seconds"] == pytest.approx(5 * 5.5 * 86400)
    assert cost["cnn_star"]["pretrain_epochs"] is None


def test_compete_2010_places_the_papers_result_against_the_winner(capsys):
    code, out, _ = run(["compete", "--year", "2010"], capsys)
    assert code == 0
    assert _reference_lines(out) == PAPER_2010
    assert "against the winner, NEC-UIUC (47.1 top-1, 28.2 top-5)" in out
    assert "CNN: top-5 11.2 points ahead of NEC-UIUC, a cut of 39.7% of its error; top-1 9.6 points ahead" in out
    assert "[P]'s models on the 2012 clock" not in out
    code, out, _ = run(["compete", "--year", "2010", "--json"], capsys)
    report = json.loads(out)
    cnn = report["references"][0]
    assert (cnn["model"], cnn["split"], cnn["top5_error"]) == ("CNN", "test", 0.17)
    assert cnn["vs_winner"]["top5_points"] == pytest.approx(11.2)
    assert cnn["vs_winner"]["top1_points"] == pytest.approx(9.6)
    assert [e["team"] for e in report["entries"]] == ["NEC-UIUC"]  # still the only ranked row


def test_compete_plot_draws_the_papers_models_apart(capsys):
    from alexnet_keras.plots import leaderboard_figure

    for year, rows in ((2012, PAPER_2012), (2010, PAPER_2010)):
        ax = leaderboard_figure(year).axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        entries = len(labels) - len(rows)
        assert labels[entries:] == [f"[P] {m} ({sp})" for m, sp, _, _ in rows]
        [refs] = [c for c in ax.collections if c.get_gid() == "paper_references"]
        boxes = [p.vertices for p in refs.get_paths()]  # each outline's corners, in data coordinates
        assert [round(b[:, 0].max() - b[:, 0].min(), 1) for b in boxes] == [float(t5) for *_, t5 in rows]
        assert all(b[:, 0].min() == 0 for b in boxes)
        # below every ranked bar, after a gap, and never among them
        assert len(ax.patches) == entries
        assert min(b[:, 1].min() for b in boxes) > max(p.get_y() + p.get_height() for p in ax.patches) + 0.5


def test_compete_plot_without_model(tmp_path, capsys):
    png = tmp_path / "table.png"
    code, out, _ = run(["compete", "--plot", str(png)], capsys)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and f"wrote {png}" in out


def test_compete_plot_path_is_checked_first_and_written_as_asked(tmp_path, capsys):
    code, out, err = run(["compete", "--plot", str(tmp_path / "table.xyz")], capsys)
    assert_one_line_error(code, err, "table.xyz", ".xyz is not an image format", ".png")
    assert out == "" and list(tmp_path.iterdir()) == []  # refused before the table was printed
    bare = tmp_path / "table"  # no extension: PNG, under exactly the name given
    code, out, _ = run(["compete", "--plot", str(bare)], capsys)
    assert code == 0 and bare.read_bytes()[:4] == b"\x89PNG" and f"wrote {bare}\n" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


# --- plan --------------------------------------------------------------------
def test_plan_accepts_128_on_two_gtx580(capsys):
    code, out, err = run(["plan", "--simulate-gtx580", "--batch-size", "128"], capsys)
    assert code == 0, err
    assert "fits:" in out and "2 x 64" in out
    assert "conv1" in out and "55x55x96" in out and "210,830,400" in out  # conv1 FLOPs


def test_plan_refuses_a_batch_that_does_not_fit(capsys):
    code, out, err = run(["plan", "--simulate-gtx580", "--batch-size", "4096"], capsys)
    assert_one_line_error(code, err, "does not fit")
    assert "does not fit:" in out  # the plan is still printed


def test_plan_json(capsys):
    code, out, _ = run(["plan", "--variant", "owt", "--batch-size", "64", "--json"], capsys)
    plan = json.loads(out)
    assert code == 0 and plan["fits"] and plan["replicas"] == 1
    assert plan["per_replica_bytes"]["weights"] == 61_100_840 * 4


# --- bad input ---------------------------------------------------------------
def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    missing = str(tmp_path / "missing.keras")
    assert_one_line_error(*run(["compete", "--model", missing, "--data", "synthetic"], capsys)[::2], "not found")
    assert_one_line_error(*run(["compete", "--model", missing], capsys)[::2], "--data")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"\x00" * 100)
    assert_one_line_error(
        *run(["evaluate", "--model", str(corrupt), "--data", "synthetic"], capsys)[::2], "cannot load"
    )
    assert_one_line_error(*run(["evaluate", "--data", "synthetic"], capsys)[::2], "--model")
    assert_one_line_error(*run(["compete", "--year", "2013"], capsys)[::2])


def test_console_script_has_no_traceback(tmp_path):
    if not os.path.exists(EXE):
        pytest.skip("console script not installed")
    proc = subprocess.run(
        [EXE, "compete", "--model", str(tmp_path / "nope.keras"), "--data", "synthetic"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("alexnet-keras:")]
    assert ours == [f"alexnet-keras: error: model file not found: {tmp_path / 'nope.keras'}"]


# --- end to end with a tiny saved model ----------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from alexnet_keras.models import AlexNet

    path = tmp_path_factory.mktemp("model") / "owt10.keras"
    AlexNet("owt", classes=10, class_wnids=IMAGENETTE_WNIDS, classifier_activation=None, seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """val/<wnid>/ with 3 small JPEGs per imagenette class (30 images)."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for wnid in IMAGENETTE_WNIDS:
        folder = root / "val" / wnid
        folder.mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            (folder / f"{wnid}_{i}.JPEG").write_bytes(tf.io.encode_jpeg(pixels).numpy())
    return root


def test_compete_places_a_tiny_model(tiny_model, tiny_folder, tmp_path, capsys):
    png = tmp_path / "placed.png"
    code, out, err = run(
        ["compete", "--model", str(tiny_model), "--data", str(tiny_folder), "--json", "--plot", str(png)], capsys
    )
    assert code == 0, err
    you = json.loads(out)["you"]
    assert you["images"] == 30 and you["classes"] == 10 and you["model_classes"] == 10
    assert you["comparable"] is False and "10 classes" in you["reason"]
    assert 1 <= you["rank"] <= 17
    lo, hi = you["ci95"]["top5"]
    assert lo <= you["top5_error"] <= hi
    assert you["label"] == "ImageNet subset (30 images, 10 classes)"
    assert you["nonfinite"] == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_compete_text_with_ten_crops(tiny_model, tiny_folder, capsys):
    code, out, err = run(
        ["compete", "--model", str(tiny_model), "--data", str(tiny_folder), "--ten-crop", "--name", "tiny"], capsys
    )
    assert code == 0, err
    assert "ten crops" in out and "95% CI" in out and "non-finite outputs: 0 of 30 images" in out
    table, section = out.split("not comparable (not ranked", 1)
    assert "tiny" not in table.split("ILSVRC2012 classification", 1)[1]
    assert re.search(r"tiny: top-5 \d+\.\d{3}, 95% CI [\d.]+-[\d.]+; would rank \d+ of 17", section)
    assert "2× GTX 580" in out


def test_evaluate_on_imagenette_val_only(tiny_model, imagenette, capsys):
    code, out, err = run(
        ["evaluate", "--model", str(tiny_model), "--data", str(imagenette), "--only-imagenet-val", "--json"], capsys
    )
    assert code == 0, err
    score = json.loads(out)
    n = sum(1 for p in (imagenette / "val").glob("*/ILSVRC2012_val_*"))
    assert score["images"] == n and score["label"] == f"ImageNet subset ({n} images, 10 classes)"
    assert score["warnings"] == [] and not score["comparable"]


def test_empty_data_folder_is_a_user_error(tiny_model, tmp_path, capsys):
    (tmp_path / "val" / IMAGENETTE_WNIDS[0]).mkdir(parents=True)
    code, _, err = run(["evaluate", "--model", str(tiny_model), "--data", str(tmp_path)], capsys)
    assert_one_line_error(code, err)


# --- broken models: NaN and constant outputs (issue 13) ------------------------
def plain_classifier(path, fill=None):
    """A tiny Keras image classifier (8x8x3 -> 10-way softmax) saved at `path`.

    fill=None keeps random weights; a number sets every weight to it (NaN: a
    diverged model; 0: the same probabilities for every class on every image).
    """
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    if fill is not None:
        model.set_weights([np.full_like(w, fill) for w in model.get_weights()])
    model.save(path)
    return path


@pytest.mark.parametrize("command", ["compete", "evaluate"])
def test_a_nan_model_is_refused_not_ranked(command, tmp_path, capsys):
    """The issue's repro: a NaN model scored 0% error and 'would rank 1 of 17'."""
    model = plain_classifier(tmp_path / "best.keras", fill=np.nan)
    code, out, err = run([command, "--model", str(model), "--data", "synthetic", "--json"], capsys)
    assert_one_line_error(code, err, f"{model} gave non-finite outputs (NaN or inf) for 128 of 128 images")
    assert out == ""


def test_a_constant_model_gains_nothing_from_ties(tmp_path, capsys):
    model = plain_classifier(tmp_path / "flat.keras", fill=0.0)  # softmax of zeros: ten equal scores
    code, out, err = run(["compete", "--model", str(model), "--data", "synthetic", "--json"], capsys)
    assert code == 0, err
    you = json.loads(out)["you"]
    assert (you["top1_error"], you["top5_error"], you["nonfinite"]) == (1.0, 1.0, 0)
    assert you["rank"] == 17 and not you["would_have_won"]  # last, behind all 16 entries
