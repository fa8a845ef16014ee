"""The three layers AlexNet needs that Keras lacks, written with `keras.ops` only.

* `LocalResponseNormalization`: the paper's "brightness normalisation" (§3.3).
* `AlexNetDropout`: dropout as the paper ran it (no rescaling in training,
  outputs multiplied by the keep probability at test time), or inverted.
* `GroupedConv2D`: a convolution whose input and output channels are split into
  towers, as on the paper's two GPUs. Its kernel has Keras' `groups` layout, so
  one checkpoint serves every execution path.

They import no TensorFlow and run on every Keras backend.
"""

import keras
import numpy as np
from keras import ops

_PACKAGE = "alexnet_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
    >>> LocalResponseNormalization(groups=2)(x).shape
    (2, 13, 13, 96)
    """

    CONVENTIONS = ("paper", "cuda-convnet")

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
            raise ValueError(
                f"{self.name}: {channels} channels do not split into {self.groups} groups"
            )

    def call(self, inputs):
        # Window sums as one matmul with a constant band matrix, on rows of
        # `per_group` channels so that no window reaches into the other tower:
        # B[i, j] = alpha (per convention) where |i - j| <= depth_radius. With the root form of the
        # power and the analytic gradient below, LRN's forward+backward runs 6-7x
        # faster on TF CPU (2-3x on JAX CPU) than shifted slices of the zero-padded
        # squares with ops.power and autodiff (benchmarks/RESULTS.md); the same maths
        # up to float rounding.
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

        return lrn(inputs)

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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

    MODES = ("paper", "inverted")

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GroupedConv2D(keras.layers.Layer):
    """A stride-1 convolution split into towers, as on the paper's two GPUs.

    The kernel is stored in Keras' `groups` layout, `(kh, kw, in // groups, filters)`,
    with the first `filters // groups` outputs belonging to tower 0. That layout is
    the same for every implementation, so checkpoints never depend on which runs:

    * `implementation="split"` slices input and kernel per tower, runs ordinary
      convolutions and concatenates. TF has no grouped CPU kernel (its fallback is
      XLA and slow to differentiate), so this is the fast path there.
    * `implementation="grouped"` calls `ops.conv` on the whole kernel, which backends
      with a native grouped kernel (cuDNN through JAX or torch) run in one launch.

    Args:
        filters: total output channels over all towers.
        kernel_size: int or tuple.
        groups: number of towers.
        padding: `"same"` or `"valid"`.
        activation: applied after the bias.
        implementation: `"split"` or `"grouped"`.
        kernel_initializer, bias_initializer: as in `keras.layers.Conv2D`.
    """

    IMPLEMENTATIONS = ("split", "grouped")

    def __init__(
        self,
        filters,
        kernel_size,
        groups=2,
        padding="same",
        activation=None,
        implementation="split",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if implementation not in self.IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {self.IMPLEMENTATIONS}, got {implementation!r}"
            )
        if filters % groups:
            raise ValueError(f"{filters} filters do not split into {groups} groups")
        self.filters = int(filters)
        self.kernel_size = (
            (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        )
        self.groups = int(groups)
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.implementation = implementation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(f"{self.name}: {channels} input channels do not split into {self.groups} groups")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)

    def call(self, inputs):
        kernel = ops.cast(self.kernel, inputs.dtype)
        if self.implementation == "grouped":
            outputs = ops.conv(inputs, kernel, strides=1, padding=self.padding)
        else:
            # ops.split rather than strided slices: its gradient is one concat, where
            # each slice's gradient is a zero-padded full-size copy (conv2/4/5 train
            # 10-20% faster on TF CPU).
            outputs = ops.concatenate(
                [
                    ops.conv(x, k, strides=1, padding=self.padding)
                    for x, k in zip(ops.split(inputs, self.groups, axis=-1), ops.split(kernel, self.groups, axis=-1))
                ],
                axis=-1,
            )
        outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.padding == "valid":
            h = None if h is None else h - self.kernel_size[0] + 1
            w = None if w is None else w - self.kernel_size[1] + 1
        return (n, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            groups=self.groups,
            padding=self.padding,
            activation=keras.activations.serialize(self.activation),
            implementation=self.implementation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
