"""--precision: 16-bit compute with float32 variables, a float32 fc8 and softmax, loss scaling for float16."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from alexnet_keras import AlexNet
from alexnet_keras.errors import UserError
from alexnet_keras.models.presets import load_model, with_precision
from alexnet_keras.training import callbacks as CB
from alexnet_keras.training.config import TrainConfig, parse_schedule
from alexnet_keras.training.loop import build_model
from alexnet_keras.training.optimizers import PaperSGD
from alexnet_keras.training.schedules import CC145

SIXTEEN = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
COMPUTE_LAYERS = ("conv1", "lrn1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")


def _float_variables(model):
    return [v for v in model.variables if "float" in str(v.dtype)]


@pytest.mark.parametrize("policy", sorted(SIXTEEN))
def test_mixed_policy_computes_in_16_bits_with_float32_logits_and_variables(policy):
    keras.utils.set_random_seed(0)
    # The 2012 net's layers (LRN, two-tower convolutions) at a small input, without the top: quick.
    features = AlexNet(include_top=False, input_shape=(99, 99, 3), dtype=policy)
    assert features.dtype_policy.name == policy
    for name in COMPUTE_LAYERS[:-2]:
        assert features.get_layer(name).compute_dtype == SIXTEEN[policy], name
    assert features.output.dtype == SIXTEEN[policy]
    assert {str(v.dtype) for v in _float_variables(features)} == {"float32"}

    # The head (owt takes any input size): fc6 and fc7 in 16 bits, fc8's logits float32.
    model = AlexNet(
        "owt", input_shape=(64, 64, 3), classes=10, classifier_activation=None, dtype=policy, head_dtype="float32"
    )
    for name in ("conv1", "fc6", "fc7"):
        assert model.get_layer(name).compute_dtype == SIXTEEN[policy], name
    assert model.get_layer("fc7").output.dtype == SIXTEEN[policy]
    assert model.get_layer("fc8").compute_dtype == "float32"
    assert {str(v.dtype) for v in _float_variables(model)} == {"float32"}

    # The same weights in float32 (the reference): the 16-bit logits are float32 and close to them.
    reference = AlexNet("owt", input_shape=(64, 64, 3), classes=10, classifier_activation=None, dtype="float32")
    reference.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(0, 1, (2, 64, 64, 3)).astype("float32")
    logits = model(x, training=False)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    want = keras.ops.convert_to_numpy(reference(x, training=False))
    got = keras.ops.convert_to_numpy(logits)
    np.testing.assert_allclose(got, want, atol=3e-2 * np.abs(want).max())  # bfloat16: 8 bits of mantissa
    assert np.abs(got - want).max() > 0  # it really computed in 16 bits


def test_softmax_stays_float32_under_mixed_float16():
    model = AlexNet("owt", classes=10, dtype="mixed_float16", head_dtype="float32")
    assert model.get_layer("fc8").compute_dtype == "float32"
    probs = model(np.zeros((1, 224, 224, 3), "float32"), training=False)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    np.testing.assert_allclose(float(keras.ops.sum(probs)), 1.0, rtol=1e-6)


def test_head_dtype_follows_dtype_unless_given_and_survives_the_config():
    plain = AlexNet("owt", input_shape=(64, 64, 3), classes=10, dtype="mixed_bfloat16")
    assert plain.get_layer("fc8").compute_dtype == "bfloat16"  # KerasHub's default: the model's policy
    model = AlexNet("owt", input_shape=(64, 64, 3), classes=10, dtype="mixed_bfloat16", head_dtype="float32")
    again = AlexNet.from_config(model.get_config())
    assert again.head_dtype == "float32" and again.get_layer("fc8").compute_dtype == "float32"
    assert again.get_layer("fc7").compute_dtype == "bfloat16"


@pytest.mark.parametrize("precision, scaled", [("mixed_float16", True), ("mixed_bfloat16", False), ("float32", False)])
def test_build_model_scales_the_loss_only_for_float16(precision, scaled):
    model = build_model(TrainConfig(variant="owt", classes=10, precision=precision, dropout="inverted", init="torch"))
    assert model.dtype_policy.name == precision and model.get_layer("fc8").compute_dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is scaled
    inner = model.optimizer.inner_optimizer if scaled else model.optimizer
    assert isinstance(inner, PaperSGD)
    if scaled:  # dynamic scaling from Keras' default 2**15
        model.optimizer.build(model.trainable_variables)
        assert float(model.optimizer.dynamic_scale) == 2.0**15


def test_the_lr_schedule_reaches_the_optimizer_inside_the_loss_scaler():
    config = TrainConfig(variant="owt", classes=10, precision="mixed_float16", lr_schedule="cc145", init="torch")
    model = build_model(config)
    model.optimizer.build(model.trainable_variables)
    inner = model.optimizer.inner_optimizer
    schedule = CB.LearningRateSchedule(0.05, parse_schedule("cc145"), echo=lambda *_: None)
    schedule.set_model(model)
    for multiplier in inner.lr_multipliers.values():
        multiplier.assign(123.0)
    schedule.on_epoch_begin(0)
    assert float(inner.learning_rate) == pytest.approx(0.05)
    assert inner.lr_multipliers
    for layer, multiplier in inner.lr_multipliers.items():
        assert float(multiplier) == pytest.approx(CC145.multiplier(1, layer))


def test_config_checks_precision():
    assert TrainConfig(precision="mixed_bfloat16").validate().precision == "mixed_bfloat16"
    with pytest.raises(UserError, match="bad value for precision: 'float16'"):
        TrainConfig(precision="float16").validate()


def test_a_model_saved_under_mixed_precision_loads_with_float32_variables(tmp_path):
    keras.utils.set_random_seed(1)
    model = AlexNet(include_top=False, dtype="mixed_bfloat16")
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    assert {str(v.dtype) for v in _float_variables(loaded)} == {"float32"}
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # Scored in another precision: the same float32 weights under the new policy.
    plain = with_precision(loaded, "float32")
    assert plain.dtype_policy.name == "float32" and plain.get_layer("conv1").compute_dtype == "float32"
    assert with_precision(loaded, "mixed_float16").get_layer("conv5").compute_dtype == "float16"
    for a, b in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert with_precision(plain, "float32") is plain
    with pytest.raises(UserError, match="not an AlexNet"):
        with_precision(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), "mixed_bfloat16")


@pytest.mark.slow
def test_train_and_evaluate_under_mixed_bfloat16(tmp_path):
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "alexnet_keras_cli"]
    tiny = ["--set", "synthetic_classes=10", "--set", "synthetic_val_examples=16", "--batch-size", "8"]
    args = ["train", "--variant", "owt", "--steps-per-epoch", "2", "--run-dir", str(run), "--precision"]
    result = subprocess.run([*cli, *args, "mixed_bfloat16", *tiny], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["config"]["precision"] == "mixed_bfloat16"
    last = load_model(run / "checkpoints" / "last.keras")
    assert last.dtype_policy.name == "mixed_bfloat16"
    assert {str(v.dtype) for v in _float_variables(last)} == {"float32"}
    assert np.isfinite(np.concatenate([w.ravel() for w in last.get_weights()])).all()

    model = str(run / "checkpoints" / "best.keras")
    scored = subprocess.run(
        [*cli, "evaluate", "--model", model, "--data", "synthetic", "--precision", "float32", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert 0.0 <= json.loads(scored.stdout)["top1_error"] <= 1.0
