"""Layers split into towers, as on the paper's two GPUs: `keras.layers.Conv2D` with
`groups`, and the per-tower LRN.

`per_tower` runs a function once per tower. On one device it slices the channels
and concatenates; under `--parallel towers` (`alexnet_keras.training.towers`, JAX)
the active distribution supplies a `run_towers` hook that runs each tower on its own
device, so a tower-local layer needs no communication (XLA's partitioner alone
gathers whole kernels and maps there; issue 9).
"""

import keras
from keras import ops

from ..constants import KERAS_PACKAGE, TOWER_IMPLS
from .lrn import LocalResponseNormalization


def tower_runner(groups):
    """The active distribution's `run_towers(fn, inputs, weights, axis)` when it has `groups` towers, else None."""
    distribution = keras.distribution.distribution()
    return distribution.run_towers if getattr(distribution, "towers", None) == groups else None


def per_tower(fn, inputs, weights=(), groups=2, axis=-1):
    """`fn(x_i, *w_i)` for each tower i, concatenated along `axis`.

    `x_i` is the i-th of `groups` equal slices of `inputs` along `axis` (the
    channels), `w_i` the i-th slice of each weight along its last axis (output
    channels, Keras' `groups` kernel layout).
    """
    runner = tower_runner(groups)
    if runner is not None:
        return runner(fn, inputs, tuple(weights), axis)
    # ops.split rather than strided slices: its gradient is one concat, where each
    # slice's gradient is a zero-padded full-size copy (benchmarks/RESULTS.md).
    parts = [ops.split(inputs, groups, axis=axis)] + [ops.split(w, groups, axis=-1) for w in weights]
    return ops.concatenate([fn(*tower) for tower in zip(*parts, strict=True)], axis=axis)


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D(groups=...)` that can run its towers as separate convolutions.

    Everything but the convolution itself is Conv2D's: strides, padding,
    `data_format`, `use_bias`, regularisers, constraints, `compute_output_shape`
    and the kernel, stored in Keras' `groups` layout `(kh, kw, in // groups,
    filters)` with the first `filters // groups` outputs belonging to tower 0.
    That layout is the same for every implementation, so checkpoints never depend
    on which one runs:

    * `implementation="split"` slices input and kernel per tower, runs ordinary
      convolutions and concatenates. TF has no grouped CPU kernel (its fallback is
      XLA and slow to differentiate), so this is the fast path there.
    * `implementation="grouped"` is plain Conv2D: one `ops.conv` on the whole
      kernel, which backends with a native grouped kernel (cuDNN through JAX or
      torch) run in one launch.

    Under `--parallel towers` either implementation runs each tower on its own
    device (see `per_tower`).

    Args:
        filters: total output channels over all towers.
        kernel_size: int or tuple.
        groups: number of towers (the paper's 2).
        padding: `"same"` (the default here, as in the paper's conv2/4/5) or `"valid"`.
        implementation: `"split"` or `"grouped"`.
        **kwargs: any other `keras.layers.Conv2D` argument.

    Example:
    >>> x = keras.ops.ones((1, 13, 13, 384))
    >>> tuple(GroupedConv2D(256, 3, groups=2)(x).shape)
    (1, 13, 13, 256)
    >>> GroupedConv2D(8, 3, strides=2, padding="valid", use_bias=False).compute_output_shape((None, 9, 9, 4))
    (None, 4, 4, 8)
    """

    IMPLEMENTATIONS = TOWER_IMPLS

    def __init__(self, filters, kernel_size, groups=2, padding="same", implementation="split", **kwargs):
        if implementation not in self.IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {self.IMPLEMENTATIONS}, got {implementation!r}")
        super().__init__(filters, kernel_size, groups=groups, padding=padding, **kwargs)
        self.implementation = implementation

    def convolution_op(self, inputs, kernel):
        # Conv2D.call's hook: it adds the bias and the activation to what this returns.
        if self.groups == 1 or (self.implementation == "grouped" and tower_runner(self.groups) is None):
            return super().convolution_op(inputs, kernel)

        def conv(x, k):
            return ops.conv(
                x,
                k,
                strides=list(self.strides),
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )

        axis = -1 if self.data_format == "channels_last" else 1
        return per_tower(conv, inputs, (kernel,), groups=self.groups, axis=axis)

    def get_config(self):
        return {**super().get_config(), "implementation": self.implementation}


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class TowerLocalResponseNormalization(LocalResponseNormalization):
    """`LocalResponseNormalization` whose towers run on their own devices under `--parallel towers`.

    On one device it is its parent exactly (the same call). Under a towers
    distribution each device normalises its own half: the parent's one matmul over
    rows of `channels // groups` reshapes the channel axis into the batch axis,
    which XLA can only partition by gathering the whole map.

    Example:
    >>> x = keras.random.normal((2, 13, 13, 96))
    >>> tuple(TowerLocalResponseNormalization(groups=2)(x).shape)
    (2, 13, 13, 96)
    """

    def call(self, inputs):
        if self.groups == 1 or tower_runner(self.groups) is None:
            return super().call(inputs)
        one = LocalResponseNormalization(self.depth_radius, self.bias, self.alpha, self.beta, 1, self.convention)
        return per_tower(one.call, inputs, groups=self.groups)
