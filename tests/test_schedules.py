"""The lr schedules: `step:` drops from the 1-based epoch the log names, and `cc145` replays
model 145's log ([CC] layers/layer-params-145.cfg:169-181, docs/cuda-convnet-2012.md Q3)."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.errors import UserError
from alexnet_keras.training.callbacks import LearningRateSchedule
from alexnet_keras.training.config import TrainConfig, parse_schedule
from alexnet_keras.training.loop import build_model, training_stream

# Model 145's log, typed from docs/cuda-convnet-2012.md Q3 (1-based epoch: (conv1 lr, other layers' lr)).
LOG_145 = {
    24: (1e-2, 1e-2),
    25: (1e-3, 1e-3),
    50: (1e-3, 1e-3),
    51: (1e-4, 1e-4),
    66: (1e-4, 1e-4),
    67: (1e-5, 1e-4),
    71: (1e-5, 1e-4),
    72: (0.0, 1e-4),
    78: (0.0, 1e-4),
    79: (0.0, 1e-5),
}
LAYERS_2012 = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def test_step_drops_apply_from_the_named_1_based_epoch():
    step = parse_schedule("step:25,51,79")
    assert [step.factor(e) for e in (1, 24)] == [1.0, 1.0]
    assert step.factor(25) == pytest.approx(0.1) and step.factor(50) == pytest.approx(0.1)
    assert step.factor(51) == pytest.approx(0.01) and step.factor(78) == pytest.approx(0.01)
    assert step.factor(79) == pytest.approx(0.001)
    assert all(step.colour_noise(e) for e in (1, 67, 200))


def test_bad_schedules_are_user_errors():
    for spec in ("cc146", "step:", "step:0", "step:a"):
        with pytest.raises(UserError, match="lr-schedule"):
            parse_schedule(spec)


def test_cc145_lr_of_every_layer_at_each_boundary():
    """A real train step (compiled once) after the schedule's epoch start moves every weight by its logged lr."""
    config = TrainConfig(lr_schedule="cc145", classes=10, weight_decay=0.0, init="paper", dropout="paper").validate()
    model = build_model(config)
    opt = model.optimizer
    opt.build(model.trainable_variables)
    schedule = LearningRateSchedule(config.lr, parse_schedule(config.lr_schedule))
    schedule.set_model(model)
    variables = model.trainable_variables

    @tf.function
    def step():
        opt.apply([tf.ones_like(v) for v in variables], variables)

    for epoch, (conv1_lr, other_lr) in LOG_145.items():
        schedule.on_epoch_begin(epoch - 1)  # Keras counts epochs from 0
        for v in [*variables, *opt.momentums]:
            v.assign(tf.zeros_like(v))
        step()  # first step from zero momentum: w = -lr * 1
        for v in variables:
            layer = v.path.split("/")[0]
            expected = conv1_lr if layer == "conv1" else other_lr
            np.testing.assert_allclose(np.asarray(v), -expected, rtol=1e-6, err_msg=f"{v.path} at epoch {epoch}")
    assert sorted({v.path.split("/")[0] for v in variables}) == sorted(LAYERS_2012)
    assert step.experimental_get_tracing_count() == 1  # the changes reach an already compiled step


def _batches(stream, epochs, steps):
    return [b[0].numpy() for b in stream.take(epochs * steps)]


def test_cc145_colour_noise_on_at_66_and_off_at_67():
    """Through `data.load` and the training stream: epoch 66 has the per-image colour shift, 67 has none."""
    from alexnet_keras import data

    kw = dict(batch_size=4, seed=3, synthetic_classes=4, synthetic_train_examples=8, validation=False)

    def load(noise):
        return data.load("synthetic", colour_noise=noise, **kw)

    steps = 2  # 8 images in batches of 4: one pass per epoch
    off = parse_schedule("cc145").colour_noise_off
    assert off == 67
    got = _batches(training_stream(load(True)[0], 65, steps, steps, (off, lambda: load(False)[0])), 2, steps)
    quiet = _batches(training_stream(load(False)[0], 65, steps, steps), 2, steps)  # epochs 66, 67
    assert len(got) == len(quiet) == 2 * steps
    for i, (a, b) in enumerate(zip(got, quiet, strict=True)):
        epoch = 66 + i // steps
        shift = a - b
        if epoch == 66:  # the same crops and flips plus one RGB offset per image
            assert np.abs(shift).max() > 0.1
            np.testing.assert_allclose(
                shift, np.broadcast_to(shift.mean(axis=(1, 2), keepdims=True), shift.shape), atol=1e-2
            )
        else:
            np.testing.assert_array_equal(a, b)
