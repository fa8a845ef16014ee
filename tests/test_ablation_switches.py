"""AlexNet's ablation switches (lrn, pool, activation, towers, remove_conv): each changes what it names only.

Parameter counts are written out by hand, layer by layer (kernel h x w x inputs per
group x filters, plus one bias per filter), not read from the model.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras import AlexNet, profile
from alexnet_keras.layers import GroupedConv2D, LocalResponseNormalization
from alexnet_keras.layers.tower_conv import TowerLocalResponseNormalization
from conftest import REPO
from layer_case import PAPER_NAMES, run_model_saving_test, run_model_test

SMALL = dict(include_top=False, input_shape=(67, 67, 3))  # pool5 1x1: cheap, every layer present
HIDDEN = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")  # the layers `activation` sets


def conv(k, inputs_per_group, filters):
    return k * k * inputs_per_group * filters + filters


def dense(inputs, units):
    return inputs * units + units


FC = dense(4096, 4096) + dense(4096, 1000)  # fc7 and fc8, the same in every ablation
# Fig. 2, two towers: conv2, conv4 and conv5 read half of the maps below them.
DEFAULT_PARAMS = (
    conv(11, 3, 96)  # conv1
    + conv(5, 96 // 2, 256)  # conv2
    + conv(3, 256, 384)  # conv3
    + conv(3, 384 // 2, 384)  # conv4
    + conv(3, 384 // 2, 256)  # conv5
    + dense(6 * 6 * 256, 4096)  # fc6
    + FC
)
# [P] §3.2's one-GPU net: conv1-conv4 halved, conv5 and fc full (footnote), no groups.
ONE_TOWER_PARAMS = (
    conv(11, 3, 48)  # conv1
    + conv(5, 48, 128)  # conv2
    + conv(3, 128, 192)  # conv3
    + conv(3, 192, 192)  # conv4
    + conv(3, 192, 256)  # conv5
    + dense(6 * 6 * 256, 4096)  # fc6
    + FC
)
# One layer left out; the next reads what came before, keeping its groups.
NO_CONV3_PARAMS = (
    conv(11, 3, 96)
    + conv(5, 96 // 2, 256)
    + conv(3, 256 // 2, 384)  # conv4 reads pool2's 256 maps, 128 per tower
    + conv(3, 384 // 2, 256)
    + dense(6 * 6 * 256, 4096)
    + FC
)
NO_CONV4_PARAMS = (
    conv(11, 3, 96)
    + conv(5, 96 // 2, 256)
    + conv(3, 256, 384)
    + conv(3, 384 // 2, 256)  # conv5 reads conv3's 384 maps
    + dense(6 * 6 * 256, 4096)
    + FC
)
NO_CONV5_PARAMS = (
    conv(11, 3, 96)
    + conv(5, 96 // 2, 256)
    + conv(3, 256, 384)
    + conv(3, 384 // 2, 384)
    + dense(6 * 6 * 384, 4096)  # fc6 reads pool5 of conv4's 384 maps
    + FC
)
SWITCHES = {
    "default": ({}, DEFAULT_PARAMS),
    "lrn": (dict(lrn=False), DEFAULT_PARAMS),
    "pool": (dict(pool=(2, 2)), DEFAULT_PARAMS),
    "tanh": (dict(activation="tanh"), DEFAULT_PARAMS),
    "towers": (dict(towers=1), ONE_TOWER_PARAMS),
    "conv3": (dict(remove_conv="conv3"), NO_CONV3_PARAMS),
    "conv4": (dict(remove_conv="conv4"), NO_CONV4_PARAMS),
    "conv5": (dict(remove_conv="conv5"), NO_CONV5_PARAMS),
}


def _outputs(model, names, x):
    """The named layers' outputs for `x`, from one forward pass."""
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    outputs = probe(x, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # one output comes back bare
    return [keras.ops.convert_to_numpy(y) for y in outputs]


def _images(n=1, size=67, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32") * 50


@pytest.mark.parametrize("kwargs, expected", SWITCHES.values(), ids=SWITCHES.keys())
def test_parameter_counts_by_hand_and_in_the_profile(kwargs, expected):
    model = AlexNet(**kwargs)
    assert model.count_params() == expected
    assert profile.totals(profile.profile_model(model))["params"] == expected  # the memory planner's source


def test_default_network_is_unchanged():
    model = AlexNet()
    assert DEFAULT_PARAMS == model.count_params() == 60_965_224
    assert [layer.name for layer in model.layers] == PAPER_NAMES
    config = model.get_config()
    assert {k: config[k] for k in ("lrn", "pool", "activation", "towers", "remove_conv")} == dict(
        lrn=True, pool=[3, 2], activation="relu", towers=2, remove_conv=None
    )
    for key in ("lrn", "pool", "activation", "towers", "remove_conv"):
        del config[key]  # a config saved before the switches existed
    assert [layer.name for layer in AlexNet.from_config(config).layers] == PAPER_NAMES


def test_lrn_false_removes_lrn1_and_lrn2_only():
    model = AlexNet(lrn=False, **SMALL)
    names = [layer.name for layer in model.layers]
    assert names == [name for name in PAPER_NAMES[:11] if name not in ("lrn1", "lrn2")]
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)
    x = _images()
    conv1, pool1 = _outputs(model, ["conv1", "pool1"], x)  # pool1 reads conv1 itself
    np.testing.assert_allclose(pool1, tf.nn.max_pool2d(conv1, 3, 2, "VALID").numpy(), rtol=0, atol=0)
    # [CC]'s cnorm2 is a different layer and stays.
    cc = [layer.name for layer in AlexNet(lrn=False, fidelity="cuda-convnet", **SMALL).layers]
    assert "cnorm2" in cc and "lrn1" not in cc and "lrn2" not in cc


def test_pool_size_and_stride_and_equal_map_sizes():
    shapes = {}
    x = _images(size=227)
    for pool in ((3, 2), (2, 2)):
        model = AlexNet(pool=pool, include_top=False)
        for name in ("pool1", "pool2", "pool5"):
            layer = model.get_layer(name)
            assert (layer.pool_size, layer.strides) == ((pool[0],) * 2, (pool[1],) * 2)
        shapes[pool] = [tuple(model.get_layer(name).output.shape[1:3]) for name in ("conv1", "pool1", "pool2", "pool5")]
        lrn1, pool1 = _outputs(model, ["lrn1", "pool1"], x)
        np.testing.assert_array_equal(pool1, tf.nn.max_pool2d(lrn1, pool[0], pool[1], "VALID").numpy())
    assert shapes[(3, 2)] == shapes[(2, 2)] == [(55, 55), (27, 27), (13, 13), (6, 6)]
    # A list (JSON's form) builds the same network.
    assert AlexNet(pool=[2, 2], **SMALL).get_layer("pool2").pool_size == (2, 2)


def test_tanh_in_every_hidden_layer_and_softmax_in_fc8():
    model = AlexNet(activation="tanh", classes=10)
    for name in HIDDEN:
        assert model.get_layer(name).activation is keras.activations.tanh, name
    assert model.get_layer("fc8").activation is keras.activations.softmax
    small = AlexNet(activation="tanh", **SMALL)
    x = _images() / 50  # unit pixels: conv1's inputs to tanh stay mostly below saturation
    (conv1,) = _outputs(small, ["conv1"], x)
    layer = small.get_layer("conv1")
    linear = tf.nn.conv2d(x, layer.kernel.numpy(), 4, "VALID") + layer.bias.numpy()
    np.testing.assert_allclose(conv1, np.tanh(linear.numpy()), atol=1e-5)
    assert conv1.min() < 0 and np.abs(conv1).max() < 1  # tanh, not relu: negatives survive, unsaturated


def test_tanh_reaches_the_late_relu1_of_cuda_convnet_order():
    model = AlexNet(activation="tanh", conv1_order="cuda-convnet", **SMALL)
    assert model.get_layer("conv1").activation is keras.activations.linear
    pool1, relu1 = _outputs(model, ["pool1", "relu1"], _images())
    np.testing.assert_allclose(relu1, np.tanh(pool1), atol=1e-6)
    default = AlexNet(conv1_order="cuda-convnet", **SMALL).get_layer("relu1")
    assert isinstance(default, keras.layers.ReLU)  # the default net keeps its layer


def test_one_tower_net_has_the_one_gpu_widths_and_no_groups():
    model = AlexNet(towers=1)
    assert [layer.name for layer in model.layers] == PAPER_NAMES
    kernels = {name: tuple(model.get_layer(name).kernel.shape) for name in (*HIDDEN, "fc8")}
    assert kernels == {
        "conv1": (11, 11, 3, 48),
        "conv2": (5, 5, 48, 128),
        "conv3": (3, 3, 128, 192),
        "conv4": (3, 3, 192, 192),
        "conv5": (3, 3, 192, 256),
        "fc6": (6 * 6 * 256, 4096),
        "fc7": (4096, 4096),
        "fc8": (4096, 1000),
    }
    assert model.count_params() == ONE_TOWER_PARAMS
    assert not any(isinstance(layer, GroupedConv2D) for layer in model.layers)
    assert all(model.get_layer(name).groups == 1 for name in HIDDEN[:5])
    for name in ("lrn1", "lrn2"):
        layer = model.get_layer(name)
        assert type(layer) is LocalResponseNormalization and layer.groups == 1
    # One window over all 48 maps: TF's own LRN (the paper convention) on the whole map.
    small = AlexNet(towers=1, **SMALL)
    conv1, lrn1 = _outputs(small, ["conv1", "lrn1"], _images())
    expected = tf.nn.local_response_normalization(conv1, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(lrn1, expected.numpy(), rtol=1e-5)
    two = AlexNet(**SMALL).get_layer("lrn1")
    assert isinstance(two, TowerLocalResponseNormalization) and two.groups == 2  # the default stays per tower


@pytest.mark.parametrize(
    "removed, reader, kernel, pool5",
    [
        ("conv3", "conv4", (3, 3, 128, 384), (6, 6, 256)),  # conv4 reads pool2, still in two towers
        ("conv4", "conv5", (3, 3, 192, 256), (6, 6, 256)),  # conv5 reads conv3
        ("conv5", "fc6", (6 * 6 * 384, 4096), (6, 6, 384)),  # pool5 pools conv4's 384 maps
    ],
)
def test_remove_conv_leaves_out_one_layer(removed, reader, kernel, pool5):
    model = AlexNet(remove_conv=removed)
    assert [layer.name for layer in model.layers] == [name for name in PAPER_NAMES if name != removed]
    assert tuple(model.get_layer(reader).kernel.shape) == kernel
    assert tuple(model.get_layer("pool5").output.shape[1:]) == pool5
    if reader != "fc6":
        assert model.get_layer(reader).groups == 2
    assert model.count_params() == SWITCHES[removed][1]


ALL_SWITCHES = dict(
    lrn=False, pool=(2, 2), activation="tanh", towers=1, remove_conv="conv4", conv1_order="cuda-convnet"
)


def test_config_and_keras_file_round_trip(tmp_path):
    model = AlexNet(**ALL_SWITCHES, **SMALL)
    config = json.loads(json.dumps(model.get_config()))
    assert {k: config[k] for k in ("lrn", "pool", "activation", "towers", "remove_conv")} == dict(
        lrn=False, pool=[2, 2], activation="tanh", towers=1, remove_conv="conv4"
    )
    rebuilt = AlexNet.from_config(config)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    assert rebuilt.get_layer("pool1").pool_size == (2, 2) and rebuilt.count_params() == model.count_params()
    x = _images(n=2, seed=1)
    run_model_saving_test(AlexNet, {**ALL_SWITCHES, **SMALL}, x, tmp_path, atol=0)  # safe mode, identical outputs
    run_model_test(AlexNet, {**ALL_SWITCHES, **SMALL}, x, (2, 1, 1, 256), tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lrn=False), dict(pool=(2, 2)), dict(activation="tanh"), dict(towers=1), dict(remove_conv="conv3")],
    ids=lambda kwargs: next(iter(kwargs)),
)
def test_owt_refuses_the_switches(kwargs):
    with pytest.raises(ValueError, match=f"{next(iter(kwargs))} change the 2012 network; owt has no LRN or towers"):
        AlexNet(variant="owt", **kwargs)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(lrn="no"), "lrn must be True or False"),
        (dict(pool=3), r"pool must be \(size, stride\)"),
        (dict(pool=(3,)), r"pool must be \(size, stride\)"),
        (dict(pool=(3, 0)), r"pool must be \(size, stride\)"),
        (dict(pool=(3.0, 2)), r"pool must be \(size, stride\)"),
        (dict(pool=(True, 2)), r"pool must be \(size, stride\)"),
        (dict(pool="32"), r"pool must be \(size, stride\)"),
        (dict(activation="sigmoid"), "activation must be one of"),
        (dict(towers=3), "towers must be one of"),
        (dict(towers=True), "towers must be one of"),
        (dict(remove_conv="conv2"), "remove_conv must be None or one of"),
        (dict(pool=(3, 3)), r"6x6 pool5 map .* with pool=\[3, 3\] gives 2"),  # 55 -> 18 -> 6 -> 2
        (dict(pool=(9, 9), **SMALL), r"pool=\[9, 9\] leaves no pool5 map"),
    ],
)
def test_bad_values_raise_clear_value_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        AlexNet(**kwargs)


_TOWERS = r"""
import json
import keras, numpy as np
from alexnet_keras import AlexNet
from alexnet_keras.errors import UserError
from alexnet_keras.training import towers

kwargs = dict(remove_conv="conv3", include_top=False, input_shape=(67, 67, 3))
x = np.random.default_rng(0).normal(size=(2, 67, 67, 3)).astype("float32") * 50
single = AlexNet(**kwargs)
expected = np.asarray(single(x))
keras.distribution.set_distribution(towers.distribution("2012"))
try:
    AlexNet(towers=1, **kwargs)
    refusal = None
except UserError as error:
    refusal = str(error)
split = AlexNet(**kwargs)
split.set_weights(single.get_weights())
kernel = split.get_layer("conv4").kernel.value
print("REPORT" + json.dumps(dict(
    refusal=refusal,
    half=[list(s.data.shape) for s in kernel.addressable_shards],
    error=float(np.abs(np.asarray(split(x)) - expected).max() / np.abs(expected).max()),
)))
"""


@pytest.mark.slow  # a JAX subprocess on two forced CPU devices (~13 s)
def test_parallel_towers_runs_remove_conv_and_refuses_one_tower():
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    proc = subprocess.run(
        [sys.executable, "-c", _TOWERS], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT"))[len("REPORT") :])
    assert "towers=1 has no towers to split: use --parallel data" in report["refusal"]
    assert report["half"] == [[3, 3, 128, 192]] * 2  # conv4 without conv3: each device holds its tower's half
    assert report["error"] <= 1e-5  # the same net as on one device
