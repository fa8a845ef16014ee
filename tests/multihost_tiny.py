"""Test-only: a tiny Keras model trained data parallel by one process of a multi-process run.

`python multihost_tiny.py STEPS OUT.npz [SLEEP]` with the cluster in Keras' environment
variables (KERAS_DISTRIBUTION_*), KERAS_BACKEND=jax. It joins through
`multihost.initialize` (what `train` calls), fits under `keras.distribution.DataParallel`
on a tf.data set (auto-sharded by process) and saves its final weights to OUT.npz.
SLEEP: seconds to wait after each step, so a test can kill a process mid-run.
"""

import sys
import time
import types

from alexnet_keras.errors import UserError
from alexnet_keras.training import multihost

steps, out = int(sys.argv[1]), sys.argv[2]
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
config = types.SimpleNamespace(coordinator=None, num_processes=None, process_id=None, batch_size=8, strategy="auto")
try:
    cluster = multihost.initialize(config)
except UserError as e:
    print(f"alexnet-keras: error: {e}", file=sys.stderr)
    sys.exit(2)
print(cluster.describe(config.batch_size), flush=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras.utils.set_random_seed(0)
distribution = keras.distribution.DataParallel()
with distribution.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
x = np.arange(64 * 4, dtype="float32").reshape(64, 4) / 100
y = np.stack([x.sum(1), x[:, 0], -x[:, 1]], axis=1)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()


class Pause(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(f"step {batch + 1}", flush=True)
        time.sleep(pause)


with distribution.scope():
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Pause()])
np.savez(out, *[np.asarray(w) for w in model.weights])
print("done", flush=True)
multihost.finish(0)
