"""PaperSGD: the paper's update rule, checked by hand against Keras' own SGD."""

import keras
import numpy as np
import pytest

from alexnet_keras.training.optimizers import PaperSGD
from layer_case import run_serialization_test


def test_three_steps_follow_the_papers_update_rule():
    lr, momentum, decay = 0.1, 0.9, 0.05  # large decay so coupling shows clearly
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    grads = [np.array([[0.3, -0.1], [0.2, 0.4]], "float32") * (t + 1) for t in range(3)]

    def run(optimizer):
        w = keras.Variable(w0)
        trace = []
        for g in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
            trace.append(np.array(w))
        return trace

    # By hand: v <- m v - decay lr w - lr g ; w <- w + v  (Krizhevsky et al. 2012, §5)
    w, v, expected = w0.astype("float64"), 0.0, []
    for g in grads:
        v = momentum * v - decay * lr * w - lr * g
        w = w + v
        expected.append(w)
    ours = run(PaperSGD(lr, momentum=momentum, coupled_decay=decay))
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # Keras' decoupled weight_decay agrees on step one and not on step three.
    decoupled = run(keras.optimizers.SGD(lr, momentum=momentum, weight_decay=decay))
    np.testing.assert_allclose(decoupled[0], expected[0], rtol=1e-5)
    assert np.abs(decoupled[2] - expected[2]).max() > 1e-3


def test_biases_get_no_decay():
    b = keras.Variable(np.ones(3, "float32"))
    PaperSGD(0.1, coupled_decay=0.5).apply_gradients([(keras.ops.zeros(3), b)])
    np.testing.assert_array_equal(np.array(b), np.ones(3))


def test_config_round_trip_and_registered_name():
    run_serialization_test(PaperSGD(0.02, momentum=0.8, coupled_decay=1e-3))
    assert PaperSGD.from_config(PaperSGD(0.02, coupled_decay=1e-3).get_config()).coupled_decay == 1e-3


def _two_dense():
    inputs = keras.Input((2,))
    return keras.Model(inputs, keras.layers.Dense(1, name="b")(keras.layers.Dense(2, name="a")(inputs)))


def test_a_layer_multiplier_scales_only_that_layers_steps_and_momentum_keeps_decaying_at_zero():
    """By hand, with momentum 0.9: v <- 0.9 v - lr*m*g, w <- w + v, g = 1 (no decay)."""
    model = _two_dense()
    opt = PaperSGD(0.1, momentum=0.9, coupled_decay=0.0, lr_layers=("a",))
    opt.build(model.trainable_variables)
    assert list(opt.lr_multipliers) == ["a"] and float(opt.lr_multipliers["a"]) == 1.0
    start = {v.path: np.array(v) for v in model.trainable_variables}
    v_a = v_b = 0.0
    moved_a = moved_b = 0.0
    for m in (0.5, 0.0):  # cc145's conv1: a lower rate, then 0
        opt.lr_multipliers["a"].assign(m)
        opt.apply([keras.ops.ones_like(v) for v in model.trainable_variables], model.trainable_variables)
        v_a, v_b = 0.9 * v_a - 0.1 * m, 0.9 * v_b - 0.1
        moved_a, moved_b = moved_a + v_a, moved_b + v_b
    for v in model.trainable_variables:
        expected = moved_a if v.path.startswith("a/") else moved_b
        np.testing.assert_allclose(np.array(v) - start[v.path], expected, rtol=1e-6, err_msg=v.path)
    assert moved_a == pytest.approx(-0.05 - 0.9 * 0.05)  # at multiplier 0 the carried momentum still moved it


def test_lr_layers_round_trip_and_a_saved_model_keeps_the_multiplier(tmp_path):
    run_serialization_test(PaperSGD(0.02, lr_layers=("conv1",)))
    assert PaperSGD.from_config(PaperSGD(lr_layers=("conv1",)).get_config()).lr_layers == ("conv1",)
    model = _two_dense()
    model.compile(optimizer=PaperSGD(0.1, lr_layers=("a",)), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.lr_multipliers["a"].assign(0.25)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert float(loaded.optimizer.lr_multipliers["a"]) == 0.25
    with pytest.raises(ValueError, match="'conv9'"):
        PaperSGD(lr_layers=("conv9",)).build(model.trainable_variables)
