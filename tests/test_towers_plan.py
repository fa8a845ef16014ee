"""The paper's two-card split as arithmetic: `memory.towers_plan`, the split 2012 clock, `plan --parallel towers`.

Every expected figure is computed here by hand from the layer shapes of [P] Fig. 2,
not read back from the code under test.
"""

import json

import pytest

from alexnet_keras.constants import GTX580_MEMORY_BYTES
from alexnet_keras.errors import UserError
from alexnet_keras.simulations import clock, memory

FLOAT = 4
# Floats one card holds of each tensor the cards exchange (half of its channels), per image.
POOL2_HALF = 13 * 13 * 128  # conv3's input
POOL5_HALF = 6 * 6 * 128  # fc6's input (flattened)
FC_HALF = 4096 // 2  # fc7's and fc8's inputs
LOGITS_HALF = 1000 // 2


@pytest.fixture(scope="module")
def rows():
    from alexnet_keras import profile
    from alexnet_keras.models import AlexNet

    return [r.as_dict() for r in profile.profile_model(AlexNet("2012"))]


def _main(args, capsys):
    from alexnet_keras.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


# A toy net with every kind of layer the split treats differently.
TOY = [
    {"name": "image", "kind": "InputLayer", "params": 0, "activation_bytes": 100},
    {"name": "conv", "kind": "Conv2D", "params": 10, "activation_bytes": 200},  # reads the image: no gather
    {"name": "lrn", "kind": "LocalResponseNormalization", "params": 0, "activation_bytes": 200},
    {"name": "gconv", "kind": "GroupedConv2D", "params": 6, "activation_bytes": 40},  # own tower only
    {"name": "flat", "kind": "Flatten", "params": 0, "activation_bytes": 40},
    {"name": "fc", "kind": "Dense", "params": 8, "activation_bytes": 20},  # gathers flat
    {"name": "drop", "kind": "AlexNetDropout", "params": 0, "activation_bytes": 20},
    {"name": "out", "kind": "Dense", "params": 4, "activation_bytes": 12},  # gathers drop, then the logits
]


def test_toy_split_by_hand():
    p = memory.towers_plan(TOY, batch_size=4, budget_bytes=10_000, update_temporaries=2)
    # own halves: image whole 100; conv 100, lrn 100, gconv 20, flat 20, fc 10, drop 10, out 6
    # kept: 100 + 100 + 3*100 + 20 + 0 + 10 + 2*10 + 6 = 556 (no split-tower input copy)
    assert [d["kept_bytes"] for d in p.layers] == [100, 100, 300, 20, 0, 10, 20, 6]
    # gathered: fc the other half of flat (20), out the other half of drop (10) and of the logits (6)
    assert [d["gathered_bytes"] for d in p.layers] == [0, 0, 0, 0, 0, 20, 0, 16]
    assert [(e["point"], e["forward_bytes"], e["backward_bytes"]) for e in p.exchanges] == [
        ("fc input", 80, 80),
        ("out input", 40, 40),
        ("logits", 24, 0),
    ]
    assert p.sent_bytes_per_card == 264 and p.exchanged_bytes_per_step == 528
    weights = (5 + 3 + 4 + 2) * 4  # half of every layer's parameters
    assert p.weights_bytes == p.gradients_bytes == p.optimizer_bytes == weights == 56
    assert p.activations_bytes == 556 * 4 and p.gathered_bytes == 36 * 4
    assert p.transient_bytes == 2 * 100 * 4  # the whole image is the largest tensor on a card
    assert p.workspace_bytes == 2 * 5 * 4  # temporaries of the largest half layer (conv)
    assert p.exchange_buffer_bytes == 80  # the largest single transfer
    assert p.total_bytes == 3 * 56 + 2224 + 144 + 800 + 40 + 80 == 3456
    assert p.fits and p.max_batch == (10_000 - (3 * 56 + 40)) // (556 + 36 + 200 + 20)


def test_2012_exchanges_per_step_by_hand(rows):
    p = memory.towers_plan(rows, 128)
    ex = {e["point"]: e for e in p.exchanges}
    assert list(ex) == ["conv3 input", "fc6 input", "fc7 input", "fc8 input", "logits"]
    # conv3's input: each card sends its 13x13x128 half of pool2 for all 128 images, and the gradient back
    assert ex["conv3 input"]["forward_bytes"] == 128 * 13 * 13 * 128 * 4 == 11_075_584
    assert ex["conv3 input"]["backward_bytes"] == 11_075_584
    assert ex["fc6 input"]["forward_bytes"] == ex["fc6 input"]["backward_bytes"] == 128 * POOL5_HALF * FLOAT
    for point in ("fc7 input", "fc8 input"):
        assert ex[point]["forward_bytes"] == ex[point]["backward_bytes"] == 128 * FC_HALF * FLOAT
    assert ex["logits"]["forward_bytes"] == 128 * LOGITS_HALF * FLOAT and ex["logits"]["backward_bytes"] == 0
    per_image = (2 * (POOL2_HALF + POOL5_HALF + 2 * FC_HALF) + LOGITS_HALF) * FLOAT
    assert p.sent_bytes_per_card == 128 * per_image == 31_320_064
    assert p.exchanged_bytes_per_step == 2 * 31_320_064
    # the clock's constant is this figure, per image
    assert clock.REFERENCE_EXCHANGE_BYTES == per_image == 244_688


def test_2012_card_holds_half_of_every_layer_for_the_whole_batch(rows):
    t = memory.towers_plan(rows, 128)
    d = memory.plan(rows, 128, replicas=2)
    assert t.weights_bytes == 60_965_224 // 2 * FLOAT == d.weights_bytes // 2
    by_name = {x["name"]: x for x in t.layers}
    assert by_name["image"]["own_bytes"] == 227 * 227 * 3 * FLOAT  # every card reads the whole image
    assert by_name["conv1"]["own_bytes"] == 55 * 55 * 48 * FLOAT  # 48 of 96 kernels
    assert by_name["lrn1"]["kept_bytes"] == 3 * 55 * 55 * 48 * FLOAT
    assert by_name["conv3"]["gathered_bytes"] == POOL2_HALF * FLOAT
    assert by_name["conv2"]["gathered_bytes"] == by_name["conv4"]["gathered_bytes"] == 0  # within a tower
    # all 128 images on a card: twice the images of a data-parallel replica, half the channels
    assert t.activations_bytes == 128 * sum(x["kept_bytes"] for x in t.layers)
    assert t.fits and t.total_bytes < d.total_bytes < GTX580_MEMORY_BYTES


def test_agrees_with_the_cuda_convnet_models_exchanges(rows):
    """Two models written separately: the cuda-convnet graph of model 145 sends the same conv3/fc6/fc7 bytes."""
    cc = memory.why_two_gpus(rows, 128).split
    cc_forward = {(e["layer"], e["to_gpu"]): e["forward_bytes"] for e in cc.exchanges}
    ex = {e["point"]: e for e in memory.towers_plan(rows, 128).exchanges}
    assert cc_forward["pool2a", 1] == ex["conv3 input"]["forward_bytes"]
    assert cc_forward["pool3a_neuron", 1] == ex["fc6 input"]["forward_bytes"]
    assert cc_forward["hs1a", 1] == ex["fc7 input"]["forward_bytes"]


def test_why_two_gpus_shows_the_towers_plan_beside(rows):
    w = memory.why_two_gpus(rows, 128)
    t = memory.towers_plan(rows, 128)
    assert w.tf_towers.total_bytes == t.total_bytes and w.tf_towers.sent_bytes_per_card == 31_320_064
    assert w.as_dict()["tf_estimate_towers_per_card"]["per_card_bytes"]["total"] == t.total_bytes
    assert f"{t.total_bytes / 2**20:,.1f} MiB per card" in memory.format_why_two_gpus(w)


def test_owt_has_no_towers(rows):
    from alexnet_keras import profile
    from alexnet_keras.models import AlexNet

    with pytest.raises(UserError, match="owt.*--parallel data"):
        memory.towers_plan(profile.profile_model(AlexNet("owt")), 128)
    with pytest.raises(UserError, match="does not fit the towers split"):
        memory.check_towers_fits(rows, 1024)


def test_split_clock_by_hand():
    link = 16 * 5.0e9 * 8 / 10 / 8  # PCIe 2.0 x16, one direction (gtx580.csv)
    assert clock.pcie_bytes_per_second() == link == 8e9
    b = clock.split_breakdown()
    per_image = 5.5 * 86400 / (90 * 1.2e6)  # the calibration: 227.27 img/s for the pair
    assert b["seconds_per_image"] == pytest.approx(per_image)
    assert b["exchange_seconds_per_image"] == pytest.approx(244_688 / 8e9)
    assert b["compute_seconds_per_image"] == pytest.approx(per_image - 244_688 / 8e9)
    assert b["macs_per_card_per_image"] == clock.REFERENCE_MACS / 2
    # each card's share: 3 x 2 x half the MACs per image, in the compute time
    assert b["per_card_flops_achieved"] == pytest.approx(3 * 724_406_816 / b["compute_seconds_per_image"])
    # more bytes cost exactly their PCIe time; half the MACs halve only the compute
    images = 1000
    base = clock.gtx580_seconds(images, exchange_bytes_per_image=clock.REFERENCE_EXCHANGE_BYTES)
    assert base == pytest.approx(clock.gtx580_seconds(images))
    more = clock.gtx580_seconds(images, exchange_bytes_per_image=2 * clock.REFERENCE_EXCHANGE_BYTES)
    assert more - base == pytest.approx(images * 244_688 / 8e9)
    half = clock.gtx580_seconds(
        images, macs_per_image=clock.REFERENCE_MACS / 2, exchange_bytes_per_image=clock.REFERENCE_EXCHANGE_BYTES
    )
    assert half == pytest.approx(images * (b["compute_seconds_per_image"] / 2 + 244_688 / 8e9))


def test_pcie_rows_are_sourced():
    from alexnet_keras.simulations import hardware

    g = hardware.GTX580
    assert g.value("pcie_lanes") == 16 and g.value("pcie_transfer_rate") == 5.0
    assert "PCI Express 2.0 x16" in g.source("pcie_lanes") and "PCI-SIG" in g.source("pcie_transfer_rate")
    assert g.specs["pcie_bandwidth"][2] is True and "ASSUMPTION" in g.source("pcie_bandwidth")


def test_plan_parallel_towers_json(capsys):
    code, out, err = _main(["plan", "--parallel", "towers", "--simulate-gtx580", "--json"], capsys)
    assert code in (0, None), err
    report = json.loads(out)
    assert report["parallel"] == "towers" and report["cards"] == 2 and report["fits"]
    conv3 = report["exchanges"][0]
    assert conv3["point"] == "conv3 input" and conv3["forward_bytes"] == 128 * 13 * 13 * 128 * 4
    assert report["per_card_bytes"]["weights"] == 60_965_224 // 2 * 4
    split = report["gtx580_split"]
    assert split["exchange_bytes_per_image"] == 244_688
    assert report["gtx580_epoch_seconds"] == pytest.approx(1.2e6 * 5.5 * 86400 / (90 * 1.2e6))


def test_plan_parallel_towers_text_and_refusals(capsys):
    code, out, err = _main(["plan", "--parallel", "towers"], capsys)
    assert code in (0, None), err
    assert "towers plan for batch 128" in out and "conv3 input" in out and "over PCIe" in out
    code, out, err = _main(["plan", "--parallel", "towers", "--variant", "owt"], capsys)
    assert code == 2 and err.count("\n") == 1 and "use --parallel data" in err and "Traceback" not in err
    code, out, err = _main(["plan", "--parallel", "towers", "--batch-size", "1024"], capsys)
    assert code == 2 and "does not fit the towers split" in err and "Traceback" not in err
