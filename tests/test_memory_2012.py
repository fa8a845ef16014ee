"""The 2012 cuda-convnet memory model (issue 14 item 6): hand-computed values, the split, the verdict."""

import json

import pytest

from alexnet_keras.constants import GTX580_MEMORY_BYTES
from alexnet_keras.errors import UserError
from alexnet_keras.simulations import memory
from alexnet_keras.simulations.memory import CC2012Assumptions, CCLayer

NO_CONTEXT = CC2012Assumptions(context_bytes=0)

# data (3x4x4) -> conv (2 filters 2x2, 3x3 positions, partialSum 3) -> relu -> cmrnorm -> fc (4) -> dropout
# -> softmax -> logreg cost. Two weight layers.
TINY = [
    CCLayer("data", "data", 48, gpu=-1),
    CCLayer("labels", "data", 1, gpu=-1),
    CCLayer("conv", "conv", 18, 0, ("data",), params=26, weights_per_input=24, modules=9, partial_sum=3),
    CCLayer("conv_neuron", "neuron", 18, 0, ("conv",)),
    CCLayer("norm", "cmrnorm", 18, 0, ("conv_neuron",)),
    CCLayer("fc", "fc", 4, 0, ("norm",), params=76),
    CCLayer("hs", "hs", 4, 0, ("fc",)),
    CCLayer("probs", "softmax", 4, 0, ("hs",)),
    CCLayer("cost", "cost", 0, 0, ("labels", "probs"), classes=4),
]


def test_tiny_net_by_hand():
    p = memory.cc_memory_2012(TINY, 2, NO_CONTEXT)
    c = p.cards[0]
    per_float = 2 * 4  # batch 2, float32
    assert c["weights"] == c["weight_gradients"] == c["weight_increments"] == (26 + 76) * 4
    # outputs: conv 18 + relu 18 + norm 18 + fc 4 + dropout 4 + softmax 4
    assert c["outputs"] == c["activation_gradients"] == 66 * per_float == 528
    assert c["norm_denominators"] == 18 * per_float
    assert c["dropout_masks"] == 4 * per_float
    assert c["input_buffers"] == 2 * (48 + 1) * per_float  # current + next minibatch
    assert c["conv_partial_sums"] == (9 // 3) * 24 * 4
    assert c["cost_and_test_buffers"] == (4 + 2) * per_float
    assert c["exchanged_copies"] == c["cuda_context"] == 0
    assert p.total_bytes == 408 * 3 + 528 * 2 + 144 + 32 + 784 + 288 + 48 == 3576
    assert memory.cc_memory_2012(TINY, 2).total_bytes == 3576 + memory.CUDA_CONTEXT_BYTES


def test_tiny_net_assumptions_change_exactly_their_term():
    base = memory.cc_memory_2012(TINY, 2, NO_CONTEXT).cards[0]
    shared = memory.cc_memory_2012(TINY, 2, NO_CONTEXT.flipped("share_buffers")).cards[0]
    # relu writes into conv's matrix (conv does not use its output, relu not its input) and dropout
    # into fc's; both share their input's gradient. The norm forces its own matrices.
    assert shared["outputs"] == base["outputs"] - (18 + 4) * 8
    assert shared["activation_gradients"] == base["activation_gradients"] - (18 + 4) * 8
    freed = memory.cc_memory_2012(TINY, 2, NO_CONTEXT.flipped("keep_activation_gradients")).cards[0]
    assert freed["activation_gradients"] == 2 * 18 * 8  # the two largest gradients alive at once
    for name, key in (
        ("norm_denominators", "norm_denominators"),
        ("dropout_masks", "dropout_masks"),
        ("conv_partial_sums", "conv_partial_sums"),
    ):
        other = memory.cc_memory_2012(TINY, 2, NO_CONTEXT.flipped(name)).cards[0]
        assert other[key] == 0 and sum(other.values()) == sum(base.values()) - base[key]
    single = memory.cc_memory_2012(TINY, 2, NO_CONTEXT.flipped("input_double_buffer")).cards[0]
    assert single["input_buffers"] == base["input_buffers"] // 2


def test_tiny_net_split_exchanges_by_hand():
    # fc on GPU 1 reads the norm on GPU 0: a copy and a gradient matrix of 18 floats x 2 images on GPU 1
    split = [
        layer
        if layer.name in ("data", "labels", "conv", "conv_neuron", "norm")
        else CCLayer(**{**layer.__dict__, "gpu": 1})
        for layer in TINY
    ]
    p = memory.cc_memory_2012(split, 2, NO_CONTEXT)
    assert p.cards[1]["exchanged_copies"] == 2 * 18 * 8
    assert p.exchanges == [{"layer": "norm", "from_gpu": 0, "to_gpu": 1, "forward_bytes": 144, "backward_bytes": 144}]
    assert p.cards[0]["weights"] == 26 * 4 and p.cards[1]["weights"] == 76 * 4
    assert p.cards[0]["input_buffers"] == 2 * 48 * 8 and p.cards[1]["input_buffers"] == 2 * 1 * 8


def test_bad_graphs_are_one_line_errors():
    with pytest.raises(UserError, match="unknown cuda-convnet kind"):
        memory.cc_memory_2012([CCLayer("x", "lstm", 3)], 2)
    with pytest.raises(UserError, match="batch size"):
        memory.cc_memory_2012(TINY, 0)
    with pytest.raises(UserError, match=r"missing: conv1, lrn1, .*AlexNet\('2012'\)"):
        memory.cc145_layers([{"name": "image", "output_shape": [227, 227, 3], "params": 0}])


@pytest.fixture(scope="module")
def rows():
    from alexnet_keras import profile
    from alexnet_keras.models import AlexNet

    return [r.as_dict() for r in profile.profile_model(AlexNet())]


@pytest.fixture(scope="module")
def why(rows):
    return memory.why_two_gpus(rows)


# floats per image of one tower's layers, from Fig. 2 shapes and [CC] layers-145.cfg:
# conv1 55*55*48, rnorm1 same, pool1 + its relu 27*27*48 each, conv2 + relu 27*27*128 each,
# rnorm2 + cnorm2 same each, pool2 13*13*128, conv3 + relu, conv4 + relu 13*13*192 each,
# conv5 13*13*128, pool3 + relu 6*6*128 each, fc2048 + relu + hs1 + fc2048b + relu + hs2: 2048 each
TOWER = 2 * 145200 + 2 * 34992 + 2 * 93312 + 2 * 93312 + 21632 + 4 * 32448 + 21632 + 2 * 4608 + 6 * 2048


def test_model_145_graph_has_the_cc_only_layers(rows):
    names = {layer.name for layer in memory.cc145_layers(rows)}
    for name in (
        "pool1a_neuron",
        "conv2b_neuron",
        "cnorm2a",
        "cnorm2b",
        "pool3b_neuron",
        "fc2048ba_neuron",
        "hs2b",
        "fc1000",
        "probs",
        "logprob",
        "labels",
    ):
        assert name in names
    assert "conv1a_neuron" not in names and "conv5a_neuron" not in names  # linear in layers-145.cfg


def test_single_card_components_by_hand(why):
    c = why.single.cards[0]
    batch = 128 * 4
    assert TOWER == 928_192
    assert c["weights"] == 60_965_224 * 4  # every parameter of the net on the one card
    assert c["outputs"] == c["activation_gradients"] == (2 * TOWER + 1000 + 1000) * batch  # + fc1000, probs
    assert c["norm_denominators"] == 2 * (145200 + 93312 + 93312) * batch
    # partial sums per tower: conv1 3025/5 x 11*11*3*48, conv2 729/3 x 5*5*48*128, conv3-5 169/13 x 3*3*c*f
    per_tower = 605 * 17424 + 243 * 153600 + 13 * 3 * 3 * 128 * 192 + 13 * 3 * 3 * 192 * 192 + 13 * 3 * 3 * 192 * 128
    assert c["conv_partial_sums"] == 2 * per_tower * 4
    assert c["input_buffers"] == 2 * (227 * 227 * 3 + 1) * batch
    assert c["exchanged_copies"] == 0 and why.single.exchanges == []


def test_two_cards_hold_half_of_each_layer(why):
    one, two = why.single.cards[0], why.split.cards
    fc8 = 4_097_000 * 4  # fc1000 is not split: it lives whole on GPU 0 (layers-145.cfg:294-299)
    assert two[1]["weights"] == (one["weights"] - fc8) // 2
    assert two[0]["weights"] == (one["weights"] - fc8) // 2 + fc8
    for key in ("outputs", "activation_gradients", "norm_denominators", "dropout_masks", "conv_partial_sums"):
        assert two[0][key] + two[1][key] == one[key]
    # each card reads the whole minibatch; the labels only GPU 0
    assert two[1]["input_buffers"] == 2 * 227 * 227 * 3 * 128 * 4
    assert two[0]["input_buffers"] == one["input_buffers"]


def test_exchanged_bytes_at_conv3_and_the_fc_layers(why):
    ex = {(e["layer"], e["to_gpu"]): e for e in why.split.exchanges}
    # conv3 reads pool2 of both towers: 13x13x128 floats x 128 images cross each way, and their gradients back
    assert ex["pool2a", 1]["forward_bytes"] == ex["pool2b", 0]["backward_bytes"] == 13 * 13 * 128 * 4 * 128
    assert ex["pool3a_neuron", 1]["forward_bytes"] == 6 * 6 * 128 * 4 * 128  # into fc2048b
    assert ex["hs1b", 0]["forward_bytes"] == ex["hs2b", 0]["forward_bytes"] == 2048 * 4 * 128
    assert ("hs2a", 1) not in ex  # fc1000 is on GPU 0
    assert len(ex) == 7
    per_step = 2 * 2 * (13 * 13 * 128 + 6 * 6 * 128 + 2048) * 512 + 2 * 2048 * 512
    assert why.split.exchanged_bytes_per_step == per_step
    # what GPU 1 receives: a copy and a gradient matrix of each tower-a matrix it reads
    assert why.split.cards[1]["exchanged_copies"] == 2 * (13 * 13 * 128 + 6 * 6 * 128 + 2048) * 512


def test_verdict_and_deciding_assumption(why, rows):
    budget = GTX580_MEMORY_BYTES
    assert not why.single.fits and why.split.fits
    assert why.deciding[0] == "keep_activation_gradients"
    over = why.single.total_bytes - budget
    assert (
        f"would not have fitted on one 3 GiB card at batch 128: {memory._mib(why.single.total_bytes)}" in why.conclusion
    )
    assert f"{memory._mib(over)} over" in why.conclusion
    assert "Decided by keep_activation_gradients" in why.conclusion
    # flip the deciding assumption: the verdict flips, and the text follows the numbers
    flipped = memory.why_two_gpus(rows, assumptions=CC2012Assumptions(keep_activation_gradients=False))
    assert flipped.single.fits
    spare = budget - flipped.single.total_bytes
    assert f"would have fitted on one 3 GiB card at batch 128, with {memory._mib(spare)} to spare" in flipped.conclusion
    assert "keep_activation_gradients" in flipped.deciding
    # a term that does not decide it alone: the verdict stays
    kept = memory.why_two_gpus(rows, assumptions=CC2012Assumptions(context_bytes=0))
    assert not kept.single.fits
    # the largest batch one card holds: that batch fits, one more does not
    one_card = memory.cc145_layers(rows, two_gpus=False)
    n = why.single_card_max_batch
    assert 0 < n < 128
    assert memory.cc_memory_2012(one_card, n).fits and not memory.cc_memory_2012(one_card, n + 1).fits


def test_budget_decides_the_sentence(rows):
    total = memory.why_two_gpus(rows).single.total_bytes
    assert "would have fitted" in memory.why_two_gpus(rows, budget_bytes=total).conclusion
    assert "would not have fitted" in memory.why_two_gpus(rows, budget_bytes=total - 1).conclusion


def test_tf_estimate_beside_and_json(why, rows):
    assert why.tf_estimate.total_bytes == memory.plan(rows, 128, replicas=1).total_bytes
    d = json.loads(json.dumps(why.as_dict()))
    assert d["single_card"]["cards"]["0"]["total"] == why.single.total_bytes
    assert d["two_cards"]["cards"]["1"]["total"] == why.split.card_total(1)
    assert d["deciding_assumptions"][0] == "keep_activation_gradients"
    text = memory.format_why_two_gpus(why)
    assert why.conclusion in text and "conv partial sums" in text and "ASSUMPTION" in text
