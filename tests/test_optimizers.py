"""PaperSGD: the paper's update rule, checked by hand against Keras' own SGD."""

import keras
import numpy as np

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
