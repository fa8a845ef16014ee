"""LRN, paper dropout and the grouped convolution against reference implementations."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.layers import AlexNetDropout, GroupedConv2D, LocalResponseNormalization
from conftest import require_torch

PAPER = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("scale", [1.0, 50.0, 300.0])
def test_lrn_matches_tf(batch, scale):
    x = np.random.default_rng(batch).normal(size=(batch, 7, 5, 96)).astype("float32") * scale
    ours = LocalResponseNormalization(**PAPER)(x)
    ref = tf.nn.local_response_normalization(x, **PAPER)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_lrn_gradient_matches_tf():
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 6, 6, 32)).astype("float32") * 30.0)
    layer = LocalResponseNormalization(**PAPER)
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype("float32"))
    grads = []
    for fn in (layer, lambda t: tf.nn.local_response_normalization(t, **PAPER)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x) * weights)  # a non-uniform upstream gradient
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_lrn_groups_normalise_each_tower_alone():
    x = np.random.default_rng(2).normal(size=(2, 5, 5, 96)).astype("float32") * 40.0
    ours = LocalResponseNormalization(groups=2, **PAPER)(x)
    halves = [tf.nn.local_response_normalization(h, **PAPER) for h in (x[..., :48], x[..., 48:])]
    np.testing.assert_allclose(ours, np.concatenate(halves, -1), rtol=1e-5, atol=1e-6)
    # The towers really are separate: the ungrouped layer differs at the seam.
    ungrouped = LocalResponseNormalization(**PAPER)(x)
    assert not np.allclose(ungrouped[..., 46:50], ours[..., 46:50], rtol=1e-5, atol=1e-6)


def test_lrn_matches_torch():
    torch = require_torch()
    x = np.random.default_rng(3).normal(size=(3, 9, 9, 64)).astype("float32") * 40.0
    ref = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(
        torch.from_numpy(x).permute(0, 3, 1, 2)
    ).permute(0, 2, 3, 1)
    np.testing.assert_allclose(LocalResponseNormalization(**PAPER)(x), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_lrn_config_round_trip():
    layer = LocalResponseNormalization(depth_radius=3, bias=1.0, alpha=2e-4, beta=0.5, groups=2)
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_paper_dropout_inference_is_exactly_scaled():
    x = np.random.default_rng(4).normal(size=(4, 100)).astype("float32")
    out = AlexNetDropout(0.5, mode="paper")(x, training=False)
    np.testing.assert_array_equal(out, x * np.float32(0.5))
    out = AlexNetDropout(0.3, mode="paper")(x, training=False)
    np.testing.assert_array_equal(out, x * np.float32(0.7))


def test_paper_dropout_mean_over_masks_matches_inference():
    rate, n = 0.5, 4000
    x = np.random.default_rng(5).uniform(1, 2, size=(1, 64)).astype("float32")
    layer = AlexNetDropout(rate, mode="paper", seed=7)
    masks = np.stack([np.asarray(layer(x, training=True))[0] for _ in range(n)])
    kept = masks != 0
    np.testing.assert_array_equal(masks[kept], np.broadcast_to(x[0], masks.shape)[kept])  # no rescaling
    mean = masks.mean(0)
    # Each unit's mean has std x * sqrt(r(1-r)/n); allow 5 standard errors.
    tol = 5 * x[0] * np.sqrt(rate * (1 - rate) / n)
    assert np.all(np.abs(mean - np.asarray(layer(x, training=False))[0]) < tol)


def test_inverted_dropout_matches_keras_semantics():
    x = np.ones((2, 1000), "float32")
    layer = AlexNetDropout(0.25, mode="inverted", seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    out = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.05


def test_dropout_config_and_validation():
    layer = AlexNetDropout(0.4, mode="inverted", seed=3)
    assert AlexNetDropout.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="mode"):
        AlexNetDropout(0.5, mode="caffe")
    with pytest.raises(ValueError, match="rate"):
        AlexNetDropout(1.0)


@pytest.mark.parametrize("implementation", ["split", "grouped"])
def test_grouped_conv_matches_tf_grouped_conv(implementation):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 9, 9, 8)).astype("float32")
    layer = GroupedConv2D(6, 3, groups=2, implementation=implementation)
    out = layer(x)
    layer.bias.assign(rng.normal(size=6).astype("float32"))
    out = layer(x)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    # Reference: each tower convolved on its own, by hand with tf.nn.conv2d.
    towers = [
        tf.nn.conv2d(x[..., 4 * g : 4 * g + 4], kernel[..., 3 * g : 3 * g + 3], 1, "SAME")
        for g in range(2)
    ]
    np.testing.assert_allclose(out, tf.concat(towers, -1) + bias, rtol=1e-5, atol=1e-5)


def test_grouped_conv_matches_torch_groups():
    torch = require_torch()
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 7, 7, 6)).astype("float32")
    layer = GroupedConv2D(4, 3, groups=2)
    out = layer(x)
    conv = torch.nn.Conv2d(6, 4, 3, padding=1, groups=2)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.kernel.numpy().transpose(3, 2, 0, 1)))
        conv.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        ref = conv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


# --- the two LRN conventions (issue 14) --------------------------------------
def _lrn_by_hand(x, k, alpha, beta, radius):
    """Loops over channels: the centred window, clipped at the edges, in float64."""
    x = np.asarray(x, "float64")
    out = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):
        lo, hi = max(0, c - radius), min(channels, c + radius + 1)
        out[..., c] = x[..., c] / (k + alpha * np.sum(x[..., lo:hi] ** 2, axis=-1)) ** beta
    return out


@pytest.mark.parametrize("convention, alpha_per_square", [("paper", 1e-4), ("cuda-convnet", 1e-4 / 5)])
def test_lrn_conventions_against_hand_computed(convention, alpha_per_square):
    x = np.random.default_rng(5).normal(size=(2, 3, 3, 16)).astype("float32") * 60.0
    ours = LocalResponseNormalization(**PAPER, convention=convention)(x)
    np.testing.assert_allclose(ours, _lrn_by_hand(x, 2.0, alpha_per_square, 0.75, 2), rtol=2e-5)


def test_lrn_one_hand_value_per_convention():
    # One channel set to 10 among zeros: the sum is 100 at it and its neighbours.
    x = np.zeros((1, 1, 1, 8), "float32")
    x[..., 3] = 10.0
    paper = LocalResponseNormalization(**PAPER, convention="paper")(x)[0, 0, 0, 3]
    cc = LocalResponseNormalization(**PAPER, convention="cuda-convnet")(x)[0, 0, 0, 3]
    assert float(paper) == pytest.approx(10.0 / (2.0 + 1e-4 * 100) ** 0.75, rel=1e-6)
    assert float(cc) == pytest.approx(10.0 / (2.0 + 2e-5 * 100) ** 0.75, rel=1e-6)


def test_lrn_cuda_convnet_matches_torch_lrn_per_tower():
    torch = require_torch()
    x = np.random.default_rng(6).normal(size=(2, 6, 6, 96)).astype("float32") * 40.0
    ours = LocalResponseNormalization(**PAPER, groups=2, convention="cuda-convnet")(x)
    lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    halves = []
    for h in (x[..., :48], x[..., 48:]):
        t = torch.from_numpy(np.ascontiguousarray(h.transpose(0, 3, 1, 2)))
        halves.append(lrn(t).numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(ours, np.concatenate(halves, -1), rtol=1e-5, atol=1e-6)


def test_lrn_convention_round_trips_and_rejects_unknown():
    layer = LocalResponseNormalization(convention="cuda-convnet")
    assert LocalResponseNormalization.from_config(layer.get_config()).convention == "cuda-convnet"
    with pytest.raises(ValueError, match="convention"):
        LocalResponseNormalization(convention="caffe")
