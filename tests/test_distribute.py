"""MirroredStrategy over two logical CPUs: real gradient aggregation, independent dropout.

Logical devices can only be set before TensorFlow initialises, so each check runs in
its own subprocess.
"""

import subprocess
import sys
import textwrap

import pytest

from alexnet_keras.errors import UserError
from alexnet_keras.training import distribute


def run_script(code):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_gtx580_device_plans():
    cpu = distribute.gtx580_device_plan(0)
    assert cpu.device_type == "CPU" and cpu.layout == ((0, (None, None)),) and cpu.replicas == 2
    one = distribute.gtx580_device_plan(1)  # two 3 GB logical GPUs carved from one card
    assert one.device_type == "GPU" and one.layout == ((0, (3072, 3072)),)
    many = distribute.gtx580_device_plan(4)  # the first two cards, each capped at 3 GB
    assert many.layout == ((0, (3072,)), (1, (3072,))) and many.replicas == 2


def test_simulation_conflicts_with_default_strategy():
    with pytest.raises(UserError, match="conflicts"):
        distribute.strategy_for("default", simulate_gtx580=True)
    with pytest.raises(UserError, match="unknown strategy"):
        distribute.strategy_for("tpu")


MIRRORED_EQUALS_SINGLE = """
import numpy as np, keras, tensorflow as tf
from alexnet_keras import AlexNet
from alexnet_keras.training import distribute
from alexnet_keras.training.optimizers import PaperSGD

strategy = distribute.strategy_for("auto", simulate_gtx580=True)
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(0, 50, size=(4, 227, 227, 3)).astype("float32")
y = np.array([0, 1, 2, 3])
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

def build():
    model = AlexNet(classes=4, dropout_rate=0.0)
    model.compile(optimizer=PaperSGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy())
    return model

single = build()
start = single.get_weights()
with strategy.scope():
    mirrored = build()
mirrored.set_weights(start)
single.fit(ds, epochs=1, verbose=0, shuffle=False)
mirrored.fit(strategy.experimental_distribute_dataset(ds), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
moved = 0.0
for name, a, b, w0 in zip([v.path for v in single.weights], single.get_weights(), mirrored.get_weights(), start):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6, err_msg=name)
    moved = max(moved, float(np.abs(a - w0).max()))
assert moved > 1e-4, "the step did not change the weights"
print("equal", moved)
"""


def test_one_mirrored_step_equals_one_device_step():
    assert "equal" in run_script(MIRRORED_EQUALS_SINGLE)


REPLICA_MASKS = """
import numpy as np, keras, tensorflow as tf
from alexnet_keras import AlexNetDropout
from alexnet_keras.training import distribute

strategy = distribute.strategy_for("mirrored", simulate_gtx580=True)
with strategy.scope():
    ours = AlexNetDropout(0.5, seed=3)
    plain = keras.layers.Dropout(0.5, seed=3)

@tf.function
def step(layer):
    return strategy.run(lambda: layer(tf.ones((8, 256)), training=True))

for name, layer in (("ours", ours), ("keras", plain)):
    a, b = [t.numpy() for t in strategy.experimental_local_results(step(layer))]
    print(name, "identical" if np.array_equal(a != 0, b != 0) else "different", (a != 0).mean())
"""


def test_replicas_draw_different_dropout_masks():
    out = run_script(REPLICA_MASKS)
    assert "ours different" in out, out
    # For the record: plain Keras Dropout under the same strategy (keras#20611).
    print(out)


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
        ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', True),
        ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', False),
        ('{"cluster": {"worker": ["a:1"], "ps": ["p:1"]}, "task": {"type": "ps", "index": 0}}', False),
    ],
)
def test_only_the_chief_owns_the_run_directory(tf_config, chief):
    environ = {} if tf_config is None else {"TF_CONFIG": tf_config}
    assert distribute.is_chief(environ) is chief


def test_bad_tf_config_is_one_line():
    for bad in ("{not json", "[1]"):
        with pytest.raises(UserError, match="TF_CONFIG"):
            distribute.is_chief({"TF_CONFIG": bad})


def test_strategy_names_are_public():
    import tensorflow as tf

    assert distribute.strategy_name(tf.distribute.get_strategy()) == "default"


def test_loads_without_tensorflow_on_other_backends():
    """GPU machines may have JAX and no TensorFlow: the module and is_chief must still load."""
    import os

    code = (
        "import sys; from alexnet_keras.training import distribute; "
        "assert distribute.is_chief({}) and 'tensorflow' not in sys.modules"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
