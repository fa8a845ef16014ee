"""LRN, paper dropout and the grouped convolution: the harness's generic checks, and reference implementations."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.layers import (
    AlexNetDropout,
    GroupedConv2D,
    LocalResponseNormalization,
    SpatialResponseNormalization,
)
from conftest import require_torch
from layer_case import run_layer_test

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
    ref = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(
        0, 2, 3, 1
    )
    np.testing.assert_allclose(LocalResponseNormalization(**PAPER)(x), ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("convention", ["paper", "cuda-convnet"])
def test_lrn_layer_checks(convention):
    x = np.random.default_rng(8).normal(size=(2, 5, 5, 8)).astype("float32") * 40.0
    kwargs = dict(depth_radius=3, bias=1.0, alpha=2e-4, beta=0.5, groups=2, convention=convention)
    alpha = 2e-4 / 7 if convention == "cuda-convnet" else 2e-4
    expected = np.concatenate([_lrn_by_hand(h, 1.0, alpha, 0.5, 3) for h in (x[..., :4], x[..., 4:])], -1)
    run_layer_test(LocalResponseNormalization, kwargs, x, x.shape, expected_output=expected, atol=1e-5)


def test_lrn_float16_does_not_overflow():
    # Squares of 300 overflow float16 (max 65504); the layer sums them in float32.
    x = np.full((1, 1, 1, 8), 300.0, "float32")
    out = LocalResponseNormalization(**PAPER, dtype="mixed_float16")(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    expected = LocalResponseNormalization(**PAPER)(x)
    np.testing.assert_allclose(np.asarray(out, "float32"), expected, rtol=1e-3)


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


@pytest.mark.parametrize("mode, test_gain", [("paper", 0.6), ("inverted", 1.0)])
def test_dropout_layer_checks(mode, test_gain):
    x = np.random.default_rng(9).normal(size=(3, 10)).astype("float32")
    run_layer_test(
        AlexNetDropout,
        {"rate": 0.4, "mode": mode, "seed": 3},
        x,
        (3, 10),
        expected_output=x * np.float32(test_gain),
        atol=0,
    )
    trained = np.asarray(AlexNetDropout(0.4, mode=mode, seed=3)(x, training=True))
    kept = trained != 0
    scale = 1.0 if mode == "paper" else 1 / 0.6
    np.testing.assert_allclose(trained[kept], (x * np.float32(scale))[kept], rtol=1e-6)


def test_dropout_validation():
    with pytest.raises(ValueError, match="mode"):
        AlexNetDropout(0.5, mode="caffe")
    with pytest.raises(ValueError, match="rate"):
        AlexNetDropout(1.0)


@pytest.mark.parametrize("implementation", ["split", "grouped"])
def test_grouped_conv_matches_tf_grouped_conv(implementation):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 9, 9, 8)).astype("float32")
    layer = GroupedConv2D(6, 3, groups=2, implementation=implementation)
    layer.build(x.shape)
    layer.bias.assign(rng.normal(size=6).astype("float32"))
    out = layer(x)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    # Reference: each tower convolved on its own, by hand with tf.nn.conv2d.
    towers = [tf.nn.conv2d(x[..., 4 * g : 4 * g + 4], kernel[..., 3 * g : 3 * g + 3], 1, "SAME") for g in range(2)]
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


# --- the same-map norm of [CC]'s cnorm2 (issue 14; docs/cuda-convnet-2012.md Q1) ----
CNORM2 = dict(size=5, scale=1e-3, power=0.75, bias=1.0)  # layer-params-145.cfg:157-163


def _spatial_norm_by_hand(x, size, scale, power, bias):
    """Loops over pixels: kCNorm's window start - size // 2 + y, clipped at the image, divisor size**2, float64."""
    x = np.asarray(x, "float64")
    out = np.empty_like(x)
    height, width = x.shape[1:3]
    for y in range(height):
        for x_ in range(width):
            y0, x0 = y - size // 2, x_ - size // 2
            window = x[:, max(0, y0) : min(height, y0 + size), max(0, x0) : min(width, x0 + size)]
            total = np.sum(window**2, axis=(1, 2))
            out[:, y, x_] = x[:, y, x_] / (bias + scale / size**2 * total) ** power
    return out


@pytest.mark.parametrize("size", [5, 3, 4])
def test_spatial_norm_against_hand_computed(size):
    # 7x6 maps: with size 5 every border row and column has a clipped window.
    x = np.random.default_rng(13).normal(size=(2, 7, 6, 3)).astype("float32") * 60.0
    ours = SpatialResponseNormalization(size, scale=1e-3, power=0.75)(x)
    np.testing.assert_allclose(ours, _spatial_norm_by_hand(x, size, 1e-3, 0.75, 1.0), rtol=2e-5)


def test_spatial_norm_hand_values_at_a_corner_and_inside():
    # One 100 at the corner (0, 0) of a 7x7 map of zeros: the corner's clipped window holds only
    # it, and the divisor stays 25; (1, 1) sees it too, (3, 3) does not. Each channel on its own.
    x = np.zeros((1, 7, 7, 2), "float32")
    x[0, 0, 0, 0] = 100.0
    x[0, 1, 1, 0] = 10.0
    x[0, 3, 3, 1] = 10.0
    out = np.asarray(SpatialResponseNormalization(**CNORM2)(x))
    alpha = 1e-3 / 25  # 4e-5 per square, as model 145's cnorm2
    assert out[0, 0, 0, 0] == pytest.approx(100.0 / (1 + alpha * (100.0**2 + 10.0**2)) ** 0.75, rel=1e-6)
    assert out[0, 1, 1, 0] == pytest.approx(10.0 / (1 + alpha * (100.0**2 + 10.0**2)) ** 0.75, rel=1e-6)
    assert out[0, 3, 3, 1] == pytest.approx(10.0 / (1 + alpha * 10.0**2) ** 0.75, rel=1e-6)
    assert np.count_nonzero(out) == 3


def test_spatial_norm_layer_checks():
    x = np.random.default_rng(14).normal(size=(2, 6, 6, 4)).astype("float32") * 40.0
    expected = _spatial_norm_by_hand(x, **CNORM2)
    run_layer_test(SpatialResponseNormalization, CNORM2, x, x.shape, expected_output=expected, atol=1e-4)


def test_spatial_norm_float16_does_not_overflow_and_rejects_bad_size():
    x = np.full((1, 5, 5, 2), 300.0, "float32")  # 300**2 overflows float16; the sum runs in float32
    out = SpatialResponseNormalization(**CNORM2, dtype="mixed_float16")(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_allclose(np.asarray(out, "float32"), _spatial_norm_by_hand(x, **CNORM2), rtol=1e-3)
    for size in (0, 2.5):
        with pytest.raises(ValueError, match="size"):
            SpatialResponseNormalization(size)


# --- GroupedConv2D is a Conv2D (issue 12) ---------------------------------------
def _towers_by_hand(x, kernel, bias, groups, strides, padding):
    """Each tower convolved on its own with tf.nn.conv2d, then concatenated."""
    cin, cout = x.shape[-1] // groups, kernel.shape[-1] // groups
    towers = [
        tf.nn.conv2d(x[..., cin * g : cin * (g + 1)], kernel[..., cout * g : cout * (g + 1)], strides, padding.upper())
        for g in range(groups)
    ]
    return tf.concat(towers, -1).numpy() + bias


@pytest.mark.parametrize("implementation", ["split", "grouped"])
@pytest.mark.parametrize("strides, padding, out_side", [(1, "same", 9), (2, "valid", 4)])
def test_grouped_conv_layer_checks(implementation, strides, padding, out_side):
    x = np.random.default_rng(10).normal(size=(2, 9, 9, 8)).astype("float32")
    kwargs = dict(
        filters=6,
        kernel_size=3,
        groups=2,
        strides=strides,
        padding=padding,
        implementation=implementation,
        bias_initializer="glorot_uniform",
    )  # a non-zero bias, so the expected output checks it
    layer = GroupedConv2D(**kwargs)
    layer.build(x.shape)
    expected = _towers_by_hand(x, layer.kernel.numpy(), layer.bias.numpy(), 2, strides, padding)
    assert expected.shape == (2, out_side, out_side, 6)
    run_layer_test(GroupedConv2D, kwargs, x, expected.shape, expected_trainable_weights=2)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_grouped_conv_is_a_conv2d_with_its_options():
    x = np.random.default_rng(11).normal(size=(2, 8, 8, 4)).astype("float32")
    layer = GroupedConv2D(4, 3, strides=2, padding="valid", use_bias=False, kernel_regularizer="l2", activation="relu")
    out = layer(x)
    assert isinstance(layer, keras.layers.Conv2D) and layer.bias is None and len(layer.weights) == 1
    assert out.shape == (2, 3, 3, 4) and float(np.min(out)) >= 0.0
    np.testing.assert_allclose(
        out, np.maximum(_towers_by_hand(x, layer.kernel.numpy(), 0.0, 2, 2, "valid"), 0), rtol=1e-5, atol=1e-5
    )
    assert len(layer.losses) == 1 and float(layer.losses[0]) > 0  # the regulariser is Conv2D's
    with pytest.raises(ValueError, match="implementation"):
        GroupedConv2D(4, 3, implementation="fused")


def test_split_and_grouped_agree_channels_first_on_jax():
    """data_format="channels_first" splits the channel axis 1 (JAX: TF's CPU conv is channels-last only)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    code = """
import numpy as np, keras
from alexnet_keras.layers import GroupedConv2D
x = np.random.default_rng(0).normal(size=(2, 8, 9, 9)).astype("float32")
split = GroupedConv2D(6, 3, data_format="channels_first", implementation="split")
grouped = GroupedConv2D(6, 3, data_format="channels_first", implementation="grouped")
out = split(x); grouped.build(x.shape); grouped.set_weights(split.get_weights())
assert out.shape == (2, 6, 9, 9), out.shape
np.testing.assert_allclose(out, grouped(x), rtol=1e-5, atol=1e-5)
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def _old_saved_model(tmp_path):
    """A .keras file as the pre-Conv2D GroupedConv2D wrote it: its config had these keys only."""
    import zipfile

    inputs = keras.Input((7, 7, 4))
    model = keras.Model(inputs, GroupedConv2D(4, 3, activation="relu", name="towers")(inputs))
    model.save(tmp_path / "new.keras")
    old_config = {
        "name": "towers",
        "trainable": True,
        "dtype": "float32",
        "filters": 4,
        "kernel_size": [3, 3],
        "groups": 2,
        "padding": "same",
        "activation": "relu",
        "implementation": "split",
        "kernel_initializer": {
            "module": "keras.initializers",
            "class_name": "GlorotUniform",
            "config": {"seed": None},
            "registered_name": None,
        },
        "bias_initializer": {
            "module": "keras.initializers",
            "class_name": "Zeros",
            "config": {},
            "registered_name": None,
        },
    }
    with zipfile.ZipFile(tmp_path / "new.keras") as src, zipfile.ZipFile(tmp_path / "old.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                (layer,) = [layer for layer in config["config"]["layers"] if layer["name"] == "towers"]
                layer["config"] = old_config
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return model


def test_old_grouped_conv_configs_still_load(tmp_path):
    model = _old_saved_model(tmp_path)
    loaded = keras.saving.load_model(tmp_path / "old.keras", safe_mode=True)
    layer = loaded.get_layer("towers")
    assert type(layer) is GroupedConv2D and layer.strides == (1, 1) and layer.use_bias
    x = np.random.default_rng(12).normal(size=(1, 7, 7, 4)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))  # the weights load into kernel and bias as before
