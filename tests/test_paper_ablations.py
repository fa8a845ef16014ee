"""simulations/data/paper_ablations.csv: [P]'s ablation claims, sourced, and the interval check."""

import re

import pytest

from alexnet_keras.simulations import ablations
from conftest import shared_path

# Typed by hand from [P]'s text (read while writing the data file), not imported:
# (top-1 change, top-5 change) in ablations' sign convention, design minus ablated.
HAND = {
    "lrn": (-0.014, -0.012),
    "pool": (-0.004, -0.003),
    "relu": (None, None),
    "dropout": (None, None),
    "pca": (-0.01, None),
    "towers": (-0.017, -0.012),
    "depth": (-0.02, None),
}
COMPARABLE = {"lrn", "pool", "pca", "towers", "depth"}


def test_ids_are_exactly_the_seven_ablations():
    ids = [c["id"] for c in ablations.claims()]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(HAND) == set(ablations.IDS)


def test_every_row_has_a_source_and_a_quote():
    for c in ablations.claims():
        assert c["source"].startswith("[P] "), c["id"]
        assert len(c["quote"]) > 40, c["id"]
        assert isinstance(c["verified"], bool)


def test_numbers_parse_to_the_papers_values():
    for c in ablations.claims():
        assert (c["top1_change"], c["top5_change"]) == HAND[c["id"]], c["id"]


def test_each_number_is_printed_in_its_quote():
    # A claimed change of -0.014 must come from a "1.4%" in the quoted sentence.
    for c in ablations.claims():
        for value in (c["top1_change"], c["top5_change"]):
            if value is not None:
                assert value < 0, c["id"]
                assert f"{-value * 100:g}%" in c["quote"], (c["id"], value)


def test_comparable_flags():
    flags = {c["id"]: c["comparable"] for c in ablations.claims()}
    assert {i for i, f in flags.items() if f} == COMPARABLE
    # Every comparable row carries a top-1 number to check against.
    assert all(ablations.claim(i)["top1_change"] is not None for i in COMPARABLE)


def test_pooling_row_matches_the_checked_facts_file():
    facts = shared_path("reference", "alexnet-facts.md").read_text(encoding="utf-8")
    line = next(x for x in facts.splitlines() if "§3.4, overlapping pooling" in x)
    top1, top5 = (float(v) / 100 for v in re.search(r"by ([\d.]+)% and ([\d.]+)%", line).groups())
    pool = ablations.claim("pool")
    assert (pool["top1_change"], pool["top5_change"]) == pytest.approx((-top1, -top5))
    assert pool["verified"]


def test_non_imagenet_numbers():
    assert ablations.claim("relu")["other_value"] == 6  # six times faster to 25% training error
    assert ablations.claim("dropout")["other_value"] == 2  # roughly doubles the iterations
    assert ablations.claim("lrn")["other_value"] == pytest.approx(0.11 - 0.13)  # CIFAR-10 test error


def test_change_is_design_minus_ablated():
    assert ablations.change(0.40, 0.43) == pytest.approx(-0.03)


@pytest.mark.parametrize(
    ("claimed", "low", "high", "expected"),
    [
        (-0.004, -0.010, 0.001, True),
        (-0.004, -0.004, -0.004, True),  # both ends inclusive
        (-0.004, -0.003, 0.002, False),  # interval wholly above the claim
        (-0.014, -0.030, -0.015, False),  # wholly below
        (-0.014, 0.0, 0.01, False),  # the wrong sign: ablation looked better
    ],
)
def test_contains(claimed, low, high, expected):
    assert ablations.contains(claimed, low, high) is expected


def test_contains_rejects_a_reversed_interval():
    with pytest.raises(ValueError, match="low above high"):
        ablations.contains(-0.01, 0.01, -0.01)


def test_agrees_reads_the_bound():
    assert ablations.agrees("lrn", "top5", -0.02, -0.01)
    assert not ablations.agrees("lrn", "top1", -0.01, 0.0)
    # "over 1%": any part of the interval below -0.01 is consistent with it.
    assert ablations.agrees("pca", "top1", -0.011, 0.02)
    assert not ablations.agrees("pca", "top1", -0.01, 0.02)


@pytest.mark.parametrize(
    ("ablation_id", "metric"), [("relu", "top1"), ("dropout", "top5"), ("pca", "top5"), ("depth", "top5")]
)
def test_agrees_refuses_claims_without_a_number(ablation_id, metric):
    with pytest.raises(ValueError, match="gives no"):
        ablations.agrees(ablation_id, metric, -1.0, 1.0)


def test_unknown_id():
    with pytest.raises(ValueError, match="unknown ablation"):
        ablations.claim("batchnorm")
