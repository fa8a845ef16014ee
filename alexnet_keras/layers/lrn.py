"""Local response normalisation, the paper's "brightness normalisation" (§3.3), with `keras.ops` only."""

import keras
import numpy as np
from keras import ops

from ..constants import KERAS_PACKAGE, LRN_CONVENTIONS


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels (channels-last).

    `b_c = a_c / (bias + alpha' * sum_{|j-c| <= depth_radius} a_j^2) ** beta`, the
    window clipped at the edges (zero padding), where alpha' depends on `convention`:

    * `"paper"`: alpha' = alpha, the formula printed in [P] §3.3. This is exactly
      `tf.nn.local_response_normalization`; in PyTorch it is
      `LocalResponseNorm(5, 5e-4, 0.75, 2)`.
    * `"cuda-convnet"`: alpha' = alpha / n with n = 2 * depth_radius + 1, what the
      2012 code computed: its config's `scale` is divided by `size` (cuda-convnet
      `layer.py`, `NormLayerParser.add_params`) and the kernel sums the centred
      window f-2..f+2 with `minDiv` as k (`kFCNorm`). This equals PyTorch's
      `LocalResponseNorm(5, 1e-4, 0.75, 2)`.

    Args:
        depth_radius: half-width of the channel window (the paper's n = 5 is 2).
        bias: the paper's k (cuda-convnet's `minDiv`).
        alpha: the paper's alpha (cuda-convnet's `scale`).
        beta: the paper's beta (cuda-convnet's `pow`).
        groups: number of towers. The sum never crosses a tower boundary, as on
            the two GPUs, where each GPU normalised its own 48 (or 128) maps.
        convention: `"paper"` or `"cuda-convnet"`, how `alpha` scales the sum.

    Example:
    >>> x = keras.random.normal((2, 13, 13, 96))
    >>> tuple(LocalResponseNormalization(groups=2)(x).shape)
    (2, 13, 13, 96)
    """

    CONVENTIONS = LRN_CONVENTIONS

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, groups=1, convention="paper", **kwargs):
        super().__init__(**kwargs)
        if convention not in self.CONVENTIONS:
            raise ValueError(f"LRN convention must be one of {self.CONVENTIONS}, got {convention!r}")
        self.convention = convention
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.groups = int(groups)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % self.groups:
            raise ValueError(f"{self.name}: {channels} channels do not split into {self.groups} groups")

    def call(self, inputs):
        # Window sums as one matmul with a constant band matrix, on rows of
        # `per_group` channels so that no window reaches into the other tower:
        # B[i, j] = alpha (per convention) where |i - j| <= depth_radius. With the root
        # form of the power and the analytic gradient below this is much faster than
        # shifted slices with ops.power and autodiff, and the same maths up to float
        # rounding (figures in benchmarks/RESULTS.md).
        # float16 squares overflow above |a| = 256, so half-precision inputs are
        # normalised in float32 and cast back (as keras.layers.BatchNormalization does).
        input_dtype = inputs.dtype
        inputs = ops.cast(inputs, keras.backend.result_type(input_dtype, "float32"))
        per_group = inputs.shape[-1] // self.groups
        band = ops.cast(self._band(per_group), inputs.dtype)
        shape = ops.shape(inputs)

        def window(t):  # alpha * sum of t over each channel's window
            return ops.reshape(ops.matmul(ops.reshape(t, (-1, per_group)), band), shape)

        @ops.custom_gradient
        def lrn(x):
            base = self.bias + window(ops.square(x))
            scale = self._inverse_power(base)
            outputs = x * scale

            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                # db_j/da_i = scale_i [i == j] - 2 beta a_i B_ij b_j / base_j, and B is symmetric.
                return upstream * scale - (2.0 * self.beta) * x * window(upstream * outputs / base)

            return outputs, grad

        return ops.cast(lrn(inputs), input_dtype)

    def _band(self, size):
        index = np.arange(size)
        alpha = self.alpha / (2 * self.depth_radius + 1) if self.convention == "cuda-convnet" else self.alpha
        return (np.abs(index[:, None] - index[None, :]) <= self.depth_radius) * np.float32(alpha)

    def _inverse_power(self, base):
        """`base ** -beta`, with roots instead of exp/log for the common betas."""
        if self.beta == 0.75:  # the paper's: rsqrt(b) * b ** -0.25; never overflows
            root = ops.rsqrt(base)
            return root * ops.sqrt(root)
        if self.beta == 0.5:
            return ops.rsqrt(base)
        if self.beta == 1.0:
            return 1.0 / base
        return ops.power(base, -self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            depth_radius=self.depth_radius,
            bias=self.bias,
            alpha=self.alpha,
            beta=self.beta,
            groups=self.groups,
            convention=self.convention,
        )
        return config
