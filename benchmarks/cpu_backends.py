"""The rows of `benchmarks.cpu` that need their own process: Keras on JAX, and two forced CPU devices.

`benchmarks.cpu` runs TensorFlow in its own process (torch first, see there), so it
starts these as children with `KERAS_BACKEND=jax` (and, for the towers,
`XLA_FLAGS=--xla_force_host_platform_device_count=2`). Each child prints one line,
`RESULT {json}`, last:

    KERAS_BACKEND=jax python -m benchmarks.cpu_backends train --variant 2012 --batch 64 --steps 5 --warmup 1
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python -m benchmarks.cpu_backends towers --batch 64 --steps 5 --warmup 1

* `train`: `alexnet_keras.training.loop.build_model(TrainConfig(variant, classes=1000,
  batch_size=B, jit_compile=True))`, the model `alexnet-keras train` builds on JAX,
  timed with `train_on_batch` on in-memory arrays (the same call `benchmarks.cpu`
  times on TF).
* `towers`: the 2012 net on one device and under `towers.distribution("2012")`
  (the paper's split over the two forced devices), alternating step by step in this
  process, from the same initial weights; also the first step's loss of each.
"""

import argparse
import json
import os
import sys

from benchmarks import harness


def _batch(variant, batch, classes=1000, seed=0):
    import numpy as np

    size = harness.package_constants().INPUT_SIZE[variant]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, classes, batch).astype("int32")
    return x, y


def _config(variant, batch, precision=None):
    from alexnet_keras.training.config import TrainConfig

    extra = {"precision": precision} if precision else {}
    return TrainConfig(variant=variant, classes=1000, batch_size=batch, jit_compile=True, **extra)


def train(variant, batch, steps, warmup, precision=None):
    import jax
    import keras

    from alexnet_keras.training.loop import build_model

    model = build_model(_config(variant, batch, precision))
    x, y = _batch(variant, batch)
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    seconds = harness.time_calls(lambda: model.train_on_batch(x, y), steps, warmup)
    return {
        "backend": keras.backend.backend(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "variant": variant,
        "batch": batch,
        "precision": precision or "float32",
        "seconds": seconds,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def towers(batch, steps, warmup):
    import jax
    import keras
    import numpy as np

    from alexnet_keras.training import towers as towers_module
    from alexnet_keras.training.loop import build_model

    def build():
        keras.utils.set_random_seed(0)
        model = build_model(_config("2012", batch))
        model.optimizer.build(model.trainable_variables)
        return model

    x, y = _batch("2012", batch)
    single = build()
    weights = [np.asarray(w) for w in single.get_weights()]
    first = {"single": float(single.train_on_batch(x, y, return_dict=True)["loss"])}
    distribution = towers_module.distribution("2012")
    keras.distribution.set_distribution(distribution)
    split = build()
    split.set_weights(weights)
    first["towers"] = float(split.train_on_batch(x, y, return_dict=True)["loss"])
    keras.distribution.set_distribution(None)
    # Each model keeps the distribution it was built under; alternate their steps.
    times = harness.alternate(
        {"single": lambda: single.train_on_batch(x, y), "towers": lambda: split.train_on_batch(x, y)},
        steps,
        warmup,
    )
    return {
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "mesh": {k: int(v) for k, v in distribution.device_mesh.shape.items()}
        if isinstance(distribution.device_mesh.shape, dict)
        else list(distribution.device_mesh.shape),
        "batch": batch,
        "first_step_loss": first,
        "first_step_loss_rel_diff": abs(first["towers"] - first["single"]) / abs(first["single"]),
        "seconds": times,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("train", "towers"))
    parser.add_argument("--variant", default="2012")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.kind == "train":
        result = train(args.variant, args.batch, args.steps, args.warmup, args.precision)
    else:
        result = towers(args.batch, args.steps, args.warmup)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
