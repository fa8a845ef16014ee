"""Same-map ("spatial") response normalisation, cuda-convnet's `type=rnorm`, with `keras.ops` only."""

import keras
from keras import ops

from ..constants import KERAS_PACKAGE


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class SpatialResponseNormalization(keras.layers.Layer):
    """Response normalisation over a square window within each map (channels-last).

    `b[y, x, c] = a[y, x, c] / (bias + (scale / size**2) * sum a[y', x', c]**2) ** power`,
    the sum over `y' in [y - size // 2, y - size // 2 + size)` and likewise `x'`,
    clipped at the borders (zero padding) with the divisor kept at `size**2`.

    This is what cuda-convnet computed for a `type=rnorm` layer: its parser divides
    `scale` by `size**2` (`layer.py`, `NormLayerParser.add_params`) and its kernel
    (`kCNorm`) sums the window `-size/2 + x ...`, clipped at the image, with `1 +`.
    The 2012 model 145 has one after each tower's second LRN (`cnorm2a/b`: size 5,
    scale 0.001, pow 0.75), which the paper does not mention
    (docs/cuda-convnet-2012.md, Q1 and Q2 D2). Each map is normalised on its own,
    so the two towers need no special handling.

    Args:
        size: side of the square window (5 in model 145).
        scale: cuda-convnet's `scale`; each square is weighted `scale / size**2`.
        power: the exponent (cuda-convnet's `pow`).
        bias: the additive constant (cuda-convnet's hard-coded 1).

    Example:
    >>> x = keras.ops.ones((2, 27, 27, 256))
    >>> tuple(SpatialResponseNormalization()(x).shape)
    (2, 27, 27, 256)
    """

    def __init__(self, size=5, scale=1e-3, power=0.75, bias=1.0, **kwargs):
        super().__init__(**kwargs)
        if int(size) != size or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size = int(size)
        self.scale = float(scale)
        self.power = float(power)
        self.bias = float(bias)

    def call(self, inputs):
        # float16 squares overflow above |a| = 256: normalise in float32 and cast back, as LRN does.
        input_dtype = inputs.dtype
        x = ops.cast(inputs, keras.backend.result_type(input_dtype, "float32"))
        before = self.size // 2  # cuda-convnet's window start, also for even sizes
        after = self.size - 1 - before
        squares = ops.pad(ops.square(x), ((0, 0), (before, after), (before, after), (0, 0)))
        # A "valid" mean over explicit zero padding divides by size**2 everywhere, borders included.
        mean = ops.average_pool(squares, self.size, strides=1, padding="valid", data_format="channels_last")
        outputs = x * ops.power(self.bias + self.scale * mean, -self.power)
        return ops.cast(outputs, input_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, scale=self.scale, power=self.power, bias=self.bias)
        return config
