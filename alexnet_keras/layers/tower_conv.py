"""A convolution split into towers, as on the paper's two GPUs: `keras.layers.Conv2D` with `groups`."""

import keras
from keras import ops

from ..constants import KERAS_PACKAGE, TOWER_IMPLS


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
        if self.implementation == "grouped" or self.groups == 1:
            return super().convolution_op(inputs, kernel)
        axis = -1 if self.data_format == "channels_last" else 1
        # ops.split rather than strided slices: its gradient is one concat, where each
        # slice's gradient is a zero-padded full-size copy (benchmarks/RESULTS.md).
        towers = zip(ops.split(inputs, self.groups, axis=axis), ops.split(kernel, self.groups, axis=-1), strict=True)
        return ops.concatenate(
            [
                ops.conv(
                    x,
                    k,
                    strides=list(self.strides),
                    padding=self.padding,
                    dilation_rate=self.dilation_rate,
                    data_format=self.data_format,
                )
                for x, k in towers
            ],
            axis=axis,
        )

    def get_config(self):
        return {**super().get_config(), "implementation": self.implementation}
