"""Dropout as the paper ran it (no rescaling in training, outputs times the keep
probability at test time), or inverted, with `keras.ops` only."""

import keras
from keras import ops

from ..constants import DROPOUT_MODES, KERAS_PACKAGE


class _ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A seed stream that differs per `tf.distribute` replica.

    Under MirroredStrategy every replica reads the same mirrored seed state, so
    plain Keras dropout draws the *same* mask on each replica (keras#20611). The
    paper's two GPUs dropped units independently; folding the replica id into the
    seed restores that. Other backends (and TF outside a strategy) are unchanged.
    """

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        if keras.backend.backend() != "tensorflow":
            return seed
        import tensorflow as tf  # only reached on the TF backend, where it is loaded

        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return seed
        replica = tf.cast(context.replica_id_in_sync_group, seed.dtype)
        return seed + tf.stack([tf.zeros_like(replica), replica * 1_000_003])


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class AlexNetDropout(keras.layers.Layer):
    """Dropout in the paper's form or the modern inverted form.

    * `mode="paper"` (Krizhevsky et al. §4.2, cuda-convnet): training zeroes each
      unit with probability `rate` and does not rescale; inference multiplies every
      output by `1 - rate`. Expected values agree between the two phases.
    * `mode="inverted"`: training scales kept units by `1 / (1 - rate)` and
      inference is the identity, as `keras.layers.Dropout` and torchvision do.

    Args:
        rate: probability of dropping a unit.
        mode: `"paper"` or `"inverted"`.
        seed: optional integer seed for the mask stream.

    Example:
    >>> layer = AlexNetDropout(0.5, mode="paper")
    >>> float(layer(keras.ops.ones((1, 4)), training=False)[0, 0])
    0.5
    """

    MODES = DROPOUT_MODES

    def __init__(self, rate=0.5, mode="paper", seed=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"dropout mode must be one of {self.MODES}, got {mode!r}")
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.mode = mode
        self.seed = seed
        self.seed_generator = _ReplicaSeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        keep = 1.0 - self.rate
        if not training or self.rate == 0.0:
            return inputs * keep if self.mode == "paper" else inputs
        kept = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator) >= self.rate
        kept = ops.cast(kept, inputs.dtype)
        return inputs * kept if self.mode == "paper" else inputs * kept / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, mode=self.mode, seed=self.seed)
        return config
