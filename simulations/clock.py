"""The 2012 clock: how long a workload would have taken on the paper's two GTX 580s.

Calibration, from [P] §5: about 90 epochs of about 1.2 million images took 5 to 6
days on two GTX 580 3 GB cards. We use the midpoint, 5.5 days, which gives
90 x 1.2e6 / (5.5 x 86400) = 227.3 training images per second for the pair
(the range is 208 to 250). Work is scaled by multiply-accumulates per image
relative to the 2012 network, so a smaller model "runs" proportionally faster.
Inference is taken as one third of a training step (forward only; the backward
pass costs about twice the forward); that ratio is an assumption, not a measurement.

This module imports no Keras: pass MACs per image in, for example
`alexnet_keras.profile.totals(profile_model(model))["macs"]`.

The split ([P] §3.2): each card does half of every layer's MACs, and the cards
exchange activations at conv3 and the fully connected layers over PCIe
(`simulations.memory.towers_plan`). `split_breakdown` divides the calibrated
time per image into the cards' compute and the exchange: the exchange at the
PCIe 2.0 x16 peak (`data/gtx580.csv`; a lower bound, no measured peer-to-peer
rate was found), not overlapped with compute (an assumption), and the rest is
compute, which scales with MACs. `gtx580_seconds(..., exchange_bytes_per_image=...)`
then prices another net or layout by its own MACs and exchange.

Example:
>>> round(IMAGES_PER_SECOND, 1)
227.3
>>> format_duration(gtx580_seconds(EPOCHS * IMAGES_PER_EPOCH))
'5.5 days'
"""

import re

from .hardware import GTX580

# MACs per image of AlexNet("2012") at 227x227 with 1000 classes, from
# alexnet_keras.profile (the paper's grouped network).
REFERENCE_MACS = 724_406_816
EPOCHS = 90  # [P] §5: "roughly 90 cycles"
IMAGES_PER_EPOCH = 1_200_000  # [P] §5: "1.2 million images"
DAYS = (5.0, 6.0)  # [P] §5: "five to six days on two NVIDIA GTX 580 3GB GPUs"
DAYS_MIDPOINT = sum(DAYS) / 2
CARDS = 2
IMAGES_PER_SECOND = EPOCHS * IMAGES_PER_EPOCH / (DAYS_MIDPOINT * 86400)
FORWARD_SHARE = 1.0 / 3.0  # inference / training cost per image (assumed)
# Bytes one card sends the other per training image in the 2012 split, from
# memory.towers_plan(profile_model(AlexNet("2012")), batch).sent_bytes_per_card / batch:
# forward halves of pool2 (13x13x128), pool5 (6x6x128), fc6 and fc7 (2048 each) and
# the logits (500), their gradients back (logits: none), float32:
# (2 x (21632 + 4608 + 2048 + 2048) + 500) x 4.
REFERENCE_EXCHANGE_BYTES = (2 * (13 * 13 * 128 + 6 * 6 * 128 + 2048 + 2048) + 500) * 4


def pcie_bytes_per_second():
    """One direction of a GTX 580's PCIe 2.0 x16 link: lanes x GT/s x 8/10 (8b/10b) / 8 bits.

    Example:
    >>> pcie_bytes_per_second() / 1e9
    8.0
    """
    lanes, rate = GTX580.value("pcie_lanes"), GTX580.value("pcie_transfer_rate")
    derived = lanes * rate * 1e9 * 8 / 10 / 8
    stated = GTX580.value("pcie_bandwidth") * 1e9
    if abs(derived - stated) > 1e6:  # the file's derived row must follow from its raw rows
        raise ValueError(f"gtx580.csv: pcie_bandwidth {stated:g} disagrees with lanes x rate x 8/10 / 8 = {derived:g}")
    return derived


def split_breakdown(
    macs_per_image=REFERENCE_MACS, exchange_bytes_per_image=REFERENCE_EXCHANGE_BYTES, days=DAYS_MIDPOINT
):
    """Seconds per training image on the pair, as each card's compute plus the PCIe exchange.

    The 2012 net's calibrated time per image (1 / 227.3 s) minus its exchange at
    the PCIe peak is its compute; a net's compute scales with its MACs (each card
    doing half of every layer's), its exchange with the bytes a card sends.
    Time per image is the pair's: both cards work on every image at once.

    Example:
    >>> b = split_breakdown()
    >>> round(b["images_per_second"], 1), round(b["exchange_share"], 3)
    (227.3, 0.007)
    """
    reference = (days * 86400) / (EPOCHS * IMAGES_PER_EPOCH)
    link = pcie_bytes_per_second()
    reference_compute = reference - REFERENCE_EXCHANGE_BYTES / link
    compute = reference_compute * macs_per_image / REFERENCE_MACS
    exchange = exchange_bytes_per_image / link
    per_card_flops = 3 * 2 * REFERENCE_MACS / CARDS / reference_compute  # forward + backward twice as costly
    return {
        "seconds_per_image": compute + exchange,
        "images_per_second": 1 / (compute + exchange),
        "compute_seconds_per_image": compute,
        "exchange_seconds_per_image": exchange,
        "exchange_share": exchange / (compute + exchange),
        "macs_per_card_per_image": macs_per_image / CARDS,
        "exchange_bytes_per_image": exchange_bytes_per_image,
        "pcie_bytes_per_second": link,
        "per_card_flops_achieved": per_card_flops,
        "per_card_utilisation": per_card_flops / GTX580.peak_flops,
        "assumptions": "exchange at the PCIe 2.0 x16 peak (8 GB/s each way, both cards sending at once), "
        "not overlapped with compute; compute scales with MACs",
    }


def gtx580_seconds(
    images, macs_per_image=REFERENCE_MACS, training=True, days=DAYS_MIDPOINT, exchange_bytes_per_image=None
):
    """Seconds the paper's pair of GTX 580s would need for `images` images.

    Args:
        images: images processed (training examples seen, or images scored).
        macs_per_image: the model's forward multiply-accumulates per image.
        training: False for inference (forward only, a third of the compute).
        days: the calibration (5.5 by default; 5.0 or 6.0 give the range).
        exchange_bytes_per_image: bytes one card sends the other per image in this
            mode (see `split_breakdown`). None: the whole calibrated time scales
            with MACs, exchange included (the 2012 net's own exchange share).

    Example:
    >>> round(gtx580_seconds(227.27, training=True), 2)
    1.0
    >>> round(gtx580_seconds(227.27, exchange_bytes_per_image=REFERENCE_EXCHANGE_BYTES), 2)
    1.0
    """
    if exchange_bytes_per_image is not None:
        b = split_breakdown(macs_per_image, exchange_bytes_per_image, days)
        compute = b["compute_seconds_per_image"] * (1 if training else FORWARD_SHARE)
        return images * (compute + b["exchange_seconds_per_image"])
    rate = EPOCHS * IMAGES_PER_EPOCH / (days * 86400)
    seconds = images * (macs_per_image / REFERENCE_MACS) / rate
    return seconds if training else seconds * FORWARD_SHARE


def gtx580_range(images, macs_per_image=REFERENCE_MACS, training=True):
    """(fastest, slowest) seconds over [P]'s 5-to-6-day range."""
    return tuple(gtx580_seconds(images, macs_per_image, training, days=d) for d in DAYS)


def achieved_utilisation():
    """The fraction of the pair's FP32 peak the 2012 training reached (about 0.31).

    Training FLOPs per image = 3 x 2 x MACs (forward plus a backward twice as costly).
    """
    flops = IMAGES_PER_SECOND * 3 * 2 * REFERENCE_MACS
    return flops / (CARDS * GTX580.peak_flops)


def format_duration(seconds):
    """Human-readable duration: '850 ms', '42.0 s', '3 min 12 s', '4 h 05 min', '5.5 days'.

    Example:
    >>> format_duration(3 * 3600 + 5 * 60)
    '3 h 05 min'
    """
    seconds = float(seconds)
    if seconds < 0:
        raise ValueError("durations are not negative")
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs} s"
    if seconds < 2 * 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes:02d} min"
    return f"{seconds / 86400:.1f} days"


_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
}


def parse_duration(text):
    """Seconds in a duration such as '1 week', '36h', '2 days', '90 min' or '1.5 hours'; `ValueError` otherwise.

    Example:
    >>> parse_duration("1 week"), parse_duration("36h"), parse_duration("90 min")
    (604800.0, 129600.0, 5400.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*", str(text).lower())
    if not match or match.group(2) not in _UNIT_SECONDS or float(match.group(1)) <= 0:
        units = "s, min, h, day, week"
        raise ValueError(
            f"cannot read the duration {text!r}: give a positive number and a unit ({units}), e.g. '1 week'"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def sentence(here_seconds, images, macs_per_image=REFERENCE_MACS, training=True):
    """'this run took X here; it would have taken Y on 2× GTX 580 in 2012'.

    Example:
    >>> sentence(60, 227.27 * 30)
    'this run took 1 min 0 s here; it would have taken 30.0 s on 2× GTX 580 in 2012'
    """
    then = gtx580_seconds(images, macs_per_image, training)
    return (
        f"this run took {format_duration(here_seconds)} here; "
        f"it would have taken {format_duration(then)} on {CARDS}× GTX 580 in 2012"
    )


def paper_models_cost(days=DAYS_MIDPOINT):
    """What [P]'s ensembles cost on this clock, and what of the CNN* models cannot be computed.

    5 CNNs: five times one net's 90 epochs, in the pair's time (an estimate: [P] §6
    says only "five similar CNNs", so each is assumed to follow the one net's recipe).
    CNN*: [P] gives neither the epochs of pre-training on ImageNet Fall 2011 nor of
    fine-tuning, nor the sixth conv layer's size, so only per-epoch costs are given,
    as lower bounds: the 2012 net's MACs plus the wider output layer (fc7 x the
    Fall 2011 classes instead of x 1000), the sixth conv layer not counted.
    Seconds are at `days` (5.5 by default); the `_range` values over 5 to 6 days.

    Example:
    >>> c = paper_models_cost()
    >>> format_duration(c["one_cnn_seconds"]), format_duration(c["five_cnns_seconds"])
    ('5.5 days', '27.5 days')
    >>> c["cnn_star"]["pretrain_epochs"] is None
    True
    """
    from .paper import cnn_star, fig2_layers

    star = cnn_star()
    neurons = {row["layer"]: row["neurons"] for row in fig2_layers()}
    one_net = EPOCHS * IMAGES_PER_EPOCH
    nets = star["ensemble_nets"]
    # The wider softmax layer is the one part of the CNN*'s extra work [P] sizes.
    star_macs = REFERENCE_MACS + neurons["fc7"] * (star["pretrain_classes"] - neurons["fc8"])

    def both(images, macs=REFERENCE_MACS):
        return gtx580_seconds(images, macs, days=days), gtx580_range(images, macs)

    one, one_range = both(one_net)
    five, five_range = both(nets * one_net)
    pre, pre_range = both(star["pretrain_images"], star_macs)
    fine, fine_range = both(IMAGES_PER_EPOCH)
    return {
        "days_per_90_epochs": days,
        "one_cnn_seconds": one,
        "one_cnn_range": one_range,
        "ensemble_nets": nets,
        "five_cnns_seconds": five,
        "five_cnns_range": five_range,
        "five_cnns_is_estimate": "each of the five nets is assumed to train 90 epochs like the one net; "
        '[P] says only "five similar CNNs"',
        "cnn_star": {
            "extra_conv_layers": star["extra_conv_layers"],
            "pretrain_images": star["pretrain_images"],
            "pretrain_classes": star["pretrain_classes"],
            "pretrain_epochs": star["pretrain_epochs"],
            "finetune_epochs": star["finetune_epochs"],
            "macs_per_image_at_least": star_macs,
            "pretrain_epoch_seconds_at_least": pre,
            "pretrain_epoch_range_at_least": pre_range,
            "finetune_epoch_seconds_at_least": fine,
            "finetune_epoch_range_at_least": fine_range,
            "not_counted": "the sixth conv layer, whose size [P] does not give",
        },
        "star_nets": star["star_nets"],
    }
