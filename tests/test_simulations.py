"""alexnet_keras.simulations: leaderboards and their report, GTX 580, the 2012 clock and the memory plan."""

import gc
import hashlib
import json
import math
import re
from importlib import resources

import pytest

from alexnet_keras.constants import GTX580_MEMORY_BYTES
from alexnet_keras.errors import UserError
from alexnet_keras.simulations import _data, clock, hardware, leaderboard, memory, report
from conftest import shared_path

# Typed by hand from the results page, independent of the shared facts file.
HAND_2012 = [
    ("SuperVision", 0.15315),
    ("SuperVision", 0.16422),
    ("ISI", 0.26172),
    ("OXFORD_VGG", 0.26979),
    ("XRCE/INRIA", 0.27058),
    ("University of Amsterdam", 0.29576),
    ("LEAR-XRCE", 0.41048),
]


def _facts_2012_table():
    """(team, entry, top5) rows of the ILSVRC2012 Task 1 table in alexnet-facts.md."""
    text = shared_path("reference", "alexnet-facts.md").read_text(encoding="utf-8")
    section = text.split("## ILSVRC2012 Task 1", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("team", "") or set(cells[2]) <= set("-"):
            continue
        entry = re.sub(r"\s*\((extra data:[^)]*|supplied data only)\)$", "", cells[1])
        rows.append((cells[0], entry, cells[2]))
    return rows


# --- leaderboard -------------------------------------------------------------
def test_2012_table_equals_facts_file():
    facts = _facts_2012_table()
    assert len(facts) == 16
    ours = [(e.team, e.entry, e.top5_error) for e in leaderboard.load(2012)]
    assert ours == [(t, e, float(v)) for t, e, v in facts]


def _rows_digest(rows):
    return hashlib.sha256(repr([(t, e, f"{float(v):.5f}") for t, e, v in rows]).encode()).hexdigest()


def _verified(name):
    text = (resources.files("alexnet_keras.simulations") / "data" / "verified_tables.json").read_text(encoding="utf-8")
    return json.loads(text)[name]


def test_2012_table_equals_its_verified_digest():
    # Runs without ../shared: the digest was recorded when the table matched the facts file.
    verified = _verified("ilsvrc2012_task1.csv")
    table = leaderboard.load(2012)
    assert len(table) == verified["rows"] == 16
    assert _rows_digest([(e.team, e.entry, e.top5_error) for e in table]) == verified["sha256"]


def test_verified_digest_is_the_facts_files():
    assert _rows_digest(_facts_2012_table()) == _verified("ilsvrc2012_task1.csv")["sha256"]


def test_2012_table_hand_typed_subset():
    table = leaderboard.load(2012)
    assert len(table) == 16
    pairs = [(e.team, e.top5_error) for e in table]
    for row in HAND_2012:
        assert row in pairs
    assert [e.top5_error for e in table] == sorted(e.top5_error for e in table)
    assert sum(e.team == "XRCE/INRIA" for e in table) == 2
    assert [e.extra_data for e in table].count(True) == 1 and table[0].extra_data


def test_winning_margin_is_10_857_points():
    assert leaderboard.runner_up(2012).team == "ISI"
    assert leaderboard.winning_margin(2012) == pytest.approx(26.172 - 15.315)
    assert round(leaderboard.winning_margin(2012), 3) == 10.857


def test_every_data_row_has_a_source():
    for name in ("ilsvrc2012_task1.csv", "ilsvrc_winners.csv", "gtx580.csv", "paper_tables.csv", "paper_cnn_star.csv"):
        rows = _data.read_csv(name)
        assert rows and all(r["source"].strip() for r in rows)


def test_winners_verification_flags_are_honest():
    everything = {(e.year, e.top5_error): e.verified for e in leaderboard.winners(primary_only=False)}
    assert everything[(2010, 0.282)] is True  # [P] Table 1
    assert everything[(2010, 0.28191)] is False
    assert everything[(2011, 0.2577)] is False
    assert everything[(2012, 0.15315)] is True
    assert [e.team for e in leaderboard.load(2010)] == ["NEC-UIUC"]
    assert leaderboard.load(2011)[0].team.startswith("XRCE")


def test_unverified_flags_follow_the_facts_file():
    text = shared_path("reference", "alexnet-facts.md").read_text(encoding="utf-8")
    for figure in ("0.28191", "0.2577"):
        assert re.search(re.escape(figure) + r"[^\n]*\*\*unverified\*\*", text)
        assert not any(e.verified for e in leaderboard.winners(primary_only=False) if e.top5_error == float(figure))


def test_progression_2010_to_2012():
    p = leaderboard.progression()
    assert [(r["year"], r["top5_error"], r["verified"]) for r in p] == [
        (2010, 0.282, True),
        (2011, 0.2577, False),
        (2012, 0.15315, True),
    ]
    assert "unverified" in report.format_progression()


def test_place_inserts_and_computes_margins():
    p = leaderboard.place(2012, 0.20, ci95=(0.19, 0.21))
    assert p.rank == 3 and not p.would_have_won
    assert p.margin_vs_runner_up == pytest.approx(6.172)  # 26.172 - 20
    assert p.margin_vs_winner == pytest.approx(-4.685)  # 15.315 - 20
    ranked = p.ranked()
    assert len(ranked) == 17
    assert [(r, e.team) for r, e, you in ranked if you] == [(3, "your entry")]
    assert [r for r, _, _ in ranked] == list(range(1, 18))


def test_place_winner_tie_and_last():
    assert leaderboard.place(2012, 0.15).would_have_won
    tie = leaderboard.place(2012, 0.15315)
    assert tie.rank == 1 and not tie.would_have_won  # a tie does not win
    assert leaderboard.place(2012, 0.5).rank == 17
    with pytest.raises(ValueError):
        leaderboard.place(2012, 15.0)  # a percentage, not a fraction
    with pytest.raises(ValueError):
        leaderboard.load(2013)


def test_not_comparable_entry_is_not_ranked():
    p = leaderboard.place(2012, 0.30, comparable=False, reason="10 classes")
    assert p.rank == 12
    assert all(not you for _, _, you in p.ranked()) and len(p.ranked()) == 16
    text = report.format_table(placement=p)
    table_part, rest = text.split("not comparable", 1)
    assert "your entry" not in table_part
    assert "would rank 12" in rest and "10 classes" in rest


def test_text_table_shows_exact_percentages():
    text = report.format_table(2012)
    for _team, err in HAND_2012:
        assert f"{err * 100:.3f}" in text
    assert "10.857" in text


# A model's score as `evaluation.Score.as_dict()` gives it (hand-made: 200 images, 10 classes).
SCORE = {
    "top1_error": 0.5,
    "top5_error": 0.2,
    "top1_ci95": [0.43, 0.57],
    "top5_ci95": [0.15, 0.26],
    "ci95": {"top1": [0.43, 0.57], "top5": [0.15, 0.26]},
    "images": 200,
    "classes": 10,
    "model_classes": 10,
    "comparable": False,
    "reason": "10 classes, not ImageNet-1k's 1000",
    "label": "ImageNet subset (200 images, 10 classes)",
    "ten_crop": True,
    "models": 1,
    "nonfinite": 0,
    "warnings": ["a warning"],
}


def test_compete_report_adds_the_score_and_clock():
    placement = report.place_score(2012, SCORE, name="tiny")
    assert (placement.you.team, placement.rank, placement.comparable) == ("tiny", 3, False)  # 20% is third
    assert placement.ci95 == (0.15, 0.26) and placement.top1_error == 0.5
    table = report.compete_report(2012)
    assert table["you"] is None and table == report.report(2012)
    placed = report.compete_report(2012, placement, SCORE, clock="it took 1 s")
    you = placed["you"]
    assert (you["name"], you["rank"], you["would_have_won"], you["clock"]) == ("tiny", 3, False, "it took 1 s")
    assert {
        k: you[k] for k in ("images", "classes", "model_classes", "label", "ten_crop", "nonfinite", "warnings")
    } == {
        "images": 200,
        "classes": 10,
        "model_classes": 10,
        "label": SCORE["label"],
        "ten_crop": True,
        "nonfinite": 0,
        "warnings": ["a warning"],
    }
    assert you["ci95"] == {"top1": [0.43, 0.57], "top5": [0.15, 0.26]} and you["top5_ci95"] == [0.15, 0.26]
    assert you["margin_vs_winner"] == pytest.approx(15.315 - 20.0)
    assert {k: placed[k] for k in placed if k != "you"} == {k: table[k] for k in table if k != "you"}


def test_compete_text_puts_the_score_above_the_table():
    placement = report.place_score(2012, SCORE, name="tiny")
    text = report.compete_text(2012, placement, "SUMMARY", "CLOCK")
    table = report.format_table(2012, placement)
    assert text == "\n".join(
        ["SUMMARY", "CLOCK", "", table, "", report.format_paper_models_cost(), "", report.format_progression()]
    )
    assert report.compete_text(2012) == "\n\n".join(
        [report.format_table(2012), report.format_paper_models_cost(), report.format_progression()]
    )
    assert report.compete_text(2010) == report.format_table(2010) + "\n\n" + report.format_progression()
    assert "would rank 3 of 17" in text and "why: 10 classes" in text


# --- [P]'s own models as reference rows (issue 14, item 5) -------------------
# Typed by hand from [P] Table 2 (2012) and Table 1 / §6 (2010): model, split, top-1, top-5.
HAND_TABLE2 = [
    ("1 CNN", "val", 0.407, 0.182),
    ("5 CNNs", "val", 0.381, 0.164),
    ("5 CNNs", "test", None, 0.164),
    ("1 CNN*", "val", 0.390, 0.166),
    ("7 CNNs*", "val", 0.367, 0.154),
    ("7 CNNs*", "test", None, 0.153),
]
HAND_TABLE1 = [("CNN", "test", 0.375, 0.170), ("CNN (centre patch only)", "test", 0.390, 0.183)]


def test_reference_rows_are_the_papers_tables():
    for year, hand in ((2012, HAND_TABLE2), (2010, HAND_TABLE1)):
        rows = leaderboard.references(year)
        assert [(r["model"], r["split"], r["top1_error"], r["top5_error"]) for r in rows] == hand
        assert all(r["source"].startswith("[P]") for r in rows)
    assert leaderboard.references(2011) == []
    # each Table 2 test row is the SuperVision entry whose error rounds to it, none for validation rows
    entered = {(r["model"], r["split"]): r["entered_as"] for r in leaderboard.references(2012)}
    assert entered[("5 CNNs", "test")] == {"entry": "test-preds-131-137-145-135-145f.txt", "top5_error": 0.16422}
    assert entered[("7 CNNs*", "test")]["top5_error"] == 0.15315
    assert [k for k, v in entered.items() if v is None] == [(m, sp) for m, sp, *_ in HAND_TABLE2 if sp == "val"]


def test_table1_best_2010_entry_is_the_stored_2010_winner():
    from alexnet_keras.simulations import paper

    best = [r for r in paper.tables() if r["year"] == 2010 and not r["paper_model"]]
    assert [(r["model"], r["top1_error"], r["top5_error"]) for r in best] == [("best ILSVRC-2010 entry", 0.471, 0.282)]
    winner = leaderboard.load(2010)[0]
    assert (winner.top1_error, winner.top5_error) == (0.471, 0.282)
    assert not any(r["model"].startswith("best") for r in leaderboard.references(2010))


def test_relative_cut_is_41_5_percent_of_the_runner_ups_error():
    assert leaderboard.relative_cut(2012) == pytest.approx((26.172 - 15.315) / 26.172)  # not of the winner's (70.9%)
    assert round(leaderboard.relative_cut(2012) * 100, 1) == 41.5
    assert leaderboard.relative_cut(2010) is None  # only the winner is stored
    assert (
        "SuperVision won by 10.857 points over ISI (26.172 - 15.315), a cut of 41.5% of ISI's error (10.857 / 26.172)."
    ) in report.format_table(2012)
    assert report.report(2012)["winning_margin_relative"] == pytest.approx(10.857 / 26.172, abs=1e-6)


def test_2010_result_placed_against_that_years_winner():
    cnn, centre = leaderboard.references(2010)
    assert cnn["vs_winner"]["team"] == "NEC-UIUC"
    assert cnn["vs_winner"]["top5_points"] == pytest.approx(28.2 - 17.0)
    assert cnn["vs_winner"]["top5_cut"] == pytest.approx((28.2 - 17.0) / 28.2)
    assert cnn["vs_winner"]["top1_points"] == pytest.approx(47.1 - 37.5)
    assert centre["vs_winner"]["top5_points"] == pytest.approx(28.2 - 18.3)
    assert centre["vs_winner"]["top1_points"] == pytest.approx(47.1 - 39.0)
    assert all(r["vs_winner"] is None for r in leaderboard.references(2012))  # 2012's test rows are entries
    text = report.format_table(2010)
    assert (
        "CNN: top-5 11.2 points ahead of NEC-UIUC, a cut of 39.7% of its error; top-1 9.6 points ahead of it." in text
    )
    assert (
        "CNN (centre patch only): top-5 9.9 points ahead of NEC-UIUC, a cut of 35.1% of its error; "
        "top-1 8.1 points ahead of it."
    ) in text


def test_reference_rows_are_never_ranked():
    table = report.format_table(2012)
    ranked, refs = table.split("[P]'s own models", 1)
    ranks = [int(m) for m in re.findall(r"^\s+(\d+)\s{2}\S", ranked, re.M)]
    assert ranks == list(range(1, 17))  # the 16 entries, as before
    assert "CNN" not in ranked
    for model, split, top1, top5 in HAND_TABLE2:
        word = {"val": "validation", "test": "test"}[split]
        t1 = "-" if top1 is None else f"{top1 * 100:.1f}"
        assert re.search(rf"^\s+{re.escape(model)}\s+{word}\s+{re.escape(t1)}\s+{top5 * 100:.1f}\b", refs, re.M), model
    r = report.report(2012)
    assert len(r["entries"]) == 16 and [e["rank"] for e in r["entries"]][-1] == 16
    assert len(r["references"]) == 6 and not any("rank" in x for x in r["references"])
    placed = leaderboard.place(2012, 0.16)  # a placed entry is ranked among the entries only
    assert placed.rank == 2 and len(placed.ranked()) == 17


def test_paper_models_cost_on_the_2012_clock():
    day = 86400
    c = clock.paper_models_cost()
    assert c["one_cnn_seconds"] == pytest.approx(5.5 * day)
    assert c["five_cnns_seconds"] == pytest.approx(5 * 5.5 * day)  # 5 x the one net's 90 epochs
    assert c["five_cnns_range"] == (pytest.approx(25 * day), pytest.approx(30 * day))
    s = c["cnn_star"]
    assert (s["pretrain_images"], s["pretrain_classes"], s["extra_conv_layers"]) == (15_000_000, 22_000, 1)
    assert s["pretrain_epochs"] is None and s["finetune_epochs"] is None  # not in [P]
    # by hand: the 2012 net's MACs plus fc7 (4096) x 21,000 more outputs, at 227.27 images/s for the pair
    macs = 724_406_816 + 4096 * (22_000 - 1000)
    assert s["macs_per_image_at_least"] == macs
    rate = 90 * 1.2e6 / (5.5 * day)
    assert s["pretrain_epoch_seconds_at_least"] == pytest.approx(15e6 * macs / 724_406_816 / rate)
    assert s["finetune_epoch_seconds_at_least"] == pytest.approx(1.2e6 / rate)
    text = report.format_paper_models_cost(c)
    assert "5 x 90 epochs: 27.5 days of the pair's time (25.0 days to 30.0 days); an estimate" in text
    assert "1 CNN*:  no total: [P] gives neither the epochs of pre-training nor of fine-tuning" in text
    assert "one epoch of ImageNet Fall 2011 (about 15M images, 22K classes): at least 20 h 31 min" in text
    assert "not the sixth conv layer" in text and "7 CNNs*: the 5 CNNs (27.5 days)" in text
    assert (
        report.compete_report(2012)["paper_models_cost"] == c
        and report.compete_report(2010)["paper_models_cost"] is None
    )


def test_cnn_star_figures_are_sourced_in_the_data():
    rows = {r["key"]: r for r in _data.read_csv("paper_cnn_star.csv")}
    for key in ("pretrain_images", "pretrain_classes"):
        assert "(15M images, 22K categories)" in rows[key]["source"] and "§6" in rows[key]["source"]
    for key in ("pretrain_epochs", "finetune_epochs", "sixth_conv_kernels"):
        assert rows[key]["value"] == "" and rows[key]["source"].startswith("not given")


# --- hardware ----------------------------------------------------------------
def test_gtx580_figures():
    g = hardware.GTX580
    assert g.cuda_cores == 512
    assert g.shader_clock_hz == 1544e6
    assert g.memory_bandwidth == 192.4e9
    assert g.memory_bytes == 3 * 2**30 == GTX580_MEMORY_BYTES  # the sourced CSV row and the package's constant
    assert g.cards_in_paper == 2
    assert g.peak_flops == 512 * 2 * 1.544e9
    assert round(g.peak_flops / 1e9) == 1581
    assert g.specs["peak_fp32"][2] is True  # marked as derived


# --- clock -------------------------------------------------------------------
def test_clock_calibration():
    # 90 epochs x 1.2M images in 5.5 days
    assert clock.IMAGES_PER_SECOND == pytest.approx(90 * 1.2e6 / (5.5 * 86400))
    assert clock.gtx580_seconds(90 * 1.2e6) == pytest.approx(5.5 * 86400)
    lo, hi = clock.gtx580_range(90 * 1.2e6)
    assert (lo, hi) == (pytest.approx(5 * 86400), pytest.approx(6 * 86400))
    # 208 to 250 images/s for the pair (facts file)
    assert 90 * 1.2e6 / hi == pytest.approx(208.3, abs=0.1) and 90 * 1.2e6 / lo == 250


def test_clock_scales_with_macs():
    full = clock.gtx580_seconds(1000)
    assert clock.gtx580_seconds(1000, macs_per_image=clock.REFERENCE_MACS / 2) == pytest.approx(full / 2)
    assert clock.gtx580_seconds(1000, training=False) == pytest.approx(full / 3)
    assert clock.gtx580_seconds(2000) == pytest.approx(2 * full)


def test_reference_macs_match_the_profile():
    from alexnet_keras import profile
    from alexnet_keras.models import AlexNet

    assert profile.totals(profile.profile_model(AlexNet()))["macs"] == clock.REFERENCE_MACS


def test_format_duration_and_sentence():
    assert clock.format_duration(0.25) == "250 ms"
    assert clock.format_duration(42) == "42.0 s"
    assert clock.format_duration(192) == "3 min 12 s"
    assert clock.format_duration(4 * 3600 + 5 * 60) == "4 h 05 min"
    assert clock.format_duration(5.5 * 86400) == "5.5 days"
    rate = 90 * 1.2e6 / (5.5 * 86400)
    assert clock.sentence(90, rate * 30) == (
        "this run took 1 min 30 s here; it would have taken 30.0 s on 2× GTX 580 in 2012"
    )


def test_utilisation_is_plausible():
    # 227 img/s x 3 x 2 x 724M FLOPs over 2 x 1581 GFLOP/s
    assert clock.achieved_utilisation() == pytest.approx(227.27 * 6 * 724_406_816 / (2 * 1581.056e9), rel=1e-3)


# --- memory plan -------------------------------------------------------------
TOY = [
    {"name": "image", "kind": "InputLayer", "params": 0, "activation_bytes": 100},
    {"name": "conv", "kind": "Conv2D", "params": 10, "activation_bytes": 200},
    {"name": "lrn", "kind": "LocalResponseNormalization", "params": 0, "activation_bytes": 200},
    {"name": "gconv", "kind": "GroupedConv2D", "params": 6, "activation_bytes": 50},
    {"name": "flat", "kind": "Flatten", "params": 0, "activation_bytes": 50},
    {"name": "drop", "kind": "AlexNetDropout", "params": 0, "activation_bytes": 50},
]


def test_plan_by_hand():
    p = memory.plan(TOY, batch_size=4, replicas=2, budget_bytes=10_000, update_temporaries=2)
    # kept per image: 100 + 200 + 3*200 + (50 + 200 input copy) + 0 + 2*50 = 1250
    assert [d["kept_bytes"] for d in p.layers] == [100, 200, 600, 250, 0, 100]
    assert p.per_replica_batch == 2
    assert p.weights_bytes == p.gradients_bytes == p.optimizer_bytes == 16 * 4
    assert p.activations_bytes == 1250 * 2
    assert p.transient_bytes == 2 * 200 * 2
    assert p.workspace_bytes == 2 * 10 * 4
    assert p.allreduce_bytes == 64
    assert p.total_bytes == 64 * 3 + 2500 + 800 + 80 + 64 == 3636
    assert p.fits
    assert p.max_per_replica_batch == (10_000 - (64 * 3 + 80 + 64)) // (1250 + 400)
    assert p.as_dict()["per_replica_bytes"]["total"] == 3636


def test_plan_accepts_objects_and_validates():
    from alexnet_keras.profile import LayerProfile

    rows = [LayerProfile("fc", "Dense", (10,), 110, 10, 100, 40)]
    # default workspace: PaperSGD's 4 temporaries of the largest layer's parameters
    assert memory.plan(rows, 8, replicas=1).total_bytes == 110 * 4 * 3 + 8 * (40 + 80) + 4 * 110 * 4
    with pytest.raises(UserError):
        memory.plan(rows, 3, replicas=2)
    with pytest.raises(UserError):
        memory.plan(rows, 0)


def test_check_fits():
    assert memory.check_fits(TOY, 4, budget_bytes=10_000).fits
    with pytest.raises(UserError, match="does not fit"):
        memory.check_fits(TOY, 400, budget_bytes=10_000)


@pytest.fixture(scope="module")
def alexnet_rows():
    from alexnet_keras import profile
    from alexnet_keras.models import AlexNet

    return profile.profile_model(AlexNet())


def test_alexnet_on_two_gtx580(alexnet_rows):
    fits = memory.check_fits(alexnet_rows, 128, replicas=2)
    assert fits.per_replica_batch == 64 and fits.weights_bytes == 60_965_224 * 4
    assert "fits" in memory.format_plan(fits)
    with pytest.raises(UserError):
        memory.check_fits(alexnet_rows, 4096, replicas=2)


def _measured_peak(variant, batch, optimizer, steps=3):
    """Peak TF CPU allocator bytes over training steps, minus what was live before.

    `get_memory_info("CPU:0")` works on CPU in TF 2.21 (it tracks TF's own allocator,
    not the Python process).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from alexnet_keras.models import AlexNet
    from alexnet_keras.training.optimizers import PaperSGD

    # Earlier tests' models in this process, freed mid-measurement, would sink below `base`:
    # free them first, so `base` holds only what stays live.
    keras.backend.clear_session()
    gc.collect()
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    model = AlexNet(variant, seed=0)
    size = model.input_shape[1]
    opt = PaperSGD(0.01) if optimizer == "paper_sgd" else keras.optimizers.SGD(0.01, momentum=0.9)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, size, size, 3), dtype=np.float32))
    y = tf.constant(rng.integers(0, 1000, batch))
    model.train_on_batch(x, y)  # builds the optimizer slots and traces
    peaks = []
    for _ in range(steps):
        tf.config.experimental.reset_memory_stats("CPU:0")
        model.train_on_batch(x, y)
        peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - base)
    return max(peaks), model


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant,batch,optimizer",
    [("2012", 32, "paper_sgd"), ("2012", 64, "paper_sgd"), ("2012", 64, "sgd"), ("owt", 64, "sgd")],
)
def test_plan_within_calibration_tolerance_of_measured_peak(variant, batch, optimizer):
    from alexnet_keras import profile

    peak, model = _measured_peak(variant, batch, optimizer)
    rows = profile.profile_model(model)
    estimate = memory.plan(rows, batch, update_temporaries=memory.UPDATE_TEMPORARIES[optimizer]).total_bytes
    print(
        f"{variant} {optimizer} batch {batch}: estimate {estimate / 2**20:.0f} MiB, "
        f"measured peak {peak / 2**20:.0f} MiB ({estimate / peak - 1:+.1%})"
    )
    assert math.isclose(estimate, peak, rel_tol=memory.CALIBRATION_TOLERANCE)
