"""AlexNet as a Keras functional model: the 2012 network and torchvision's "owt" layout."""

import json

import keras

from .preprocessing import get_spec
from . import optimizers  # noqa: F401  (registers PaperSGD so training checkpoints load)
from .layers import AlexNetDropout, GroupedConv2D, LocalResponseNormalization

VARIANTS = ("2012", "owt")
DEFAULT_INPUT = {"2012": (227, 227, 3), "owt": (224, 224, 3)}
DEFAULT_DROPOUT = {"2012": "paper", "owt": "inverted"}
DEFAULT_INIT = {"2012": "paper", "owt": "torch"}
DEFAULT_PREPROCESSING = {"2012": "paper", "owt": "torchvision"}
# Smallest square input whose pool5 map is at least 1x1.
MIN_INPUT = {"2012": 67, "owt": 63}
# Biases of 1 in the paper (§5); Caffe found that flat and used 0.1.
INITS = {"paper": 1.0, "caffe": 0.1, "torch": None}
_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


def _initializers(init, name, fan_in=None):
    """Kernel and bias initialisers for layer `name` under an init scheme."""
    if init == "torch":
        # torch's default: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)), bias alike.
        bound = 1.0 / fan_in**0.5
        return (
            keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            keras.initializers.RandomUniform(-bound, bound),
        )
    bias = INITS[init] if name in _BIAS_ONE else 0.0
    return keras.initializers.RandomNormal(stddev=0.01), keras.initializers.Constant(bias)


def _conv_output(size, kernel, stride, pad=0):
    return (size + 2 * pad - kernel) // stride + 1


def _pool5_size(variant, size):
    """Spatial size at pool5 for a square input (None stays None)."""
    if size is None:
        return None
    if variant == "2012":
        s = _conv_output(size, 11, 4)
    else:
        s = _conv_output(size, 11, 4, pad=2)
    for _ in range(3):  # pool1, pool2, pool5 (3x3 stride 2, valid)
        s = _conv_output(s, 3, 2)
    return s


@keras.saving.register_keras_serializable(package="alexnet_keras")
class AlexNet(keras.Model):
    """AlexNet (Krizhevsky, Sutskever and Hinton, NIPS 2012) as a functional model.

    `variant="2012"` is the paper's network. conv2, conv4 and conv5 see only their
    own tower's half of the maps, as on the paper's two GTX 580s. They are
    `GroupedConv2D` layers whose kernels use Keras' `groups` layout, run as an
    explicit two-tower split by default (`tower_impl="split"`): TF has no grouped
    CPU kernel, and the split trained 3x faster here. `tower_impl="grouped"` runs the
    same weights as one grouped convolution. LRN also stays inside each tower (the
    original cuda-convnet config has one response-norm layer per GPU), so lrn1
    normalises each 48-channel half on its own.

    The input is 227x227 so that conv1 gives 55x55 (the paper's "224" needs 2
    pixels of padding). With 1000 classes it has 60,965,224 parameters.

    Neurons per layer with a 227 input are 290,400 / 186,624 / 64,896 / 64,896 /
    43,264 / 4,096 / 4,096 / 1,000 (659,272 in all: the paper's "650,000"). The
    paper's Fig. 2 gives 253,440 for conv1, which is 55 x 48 x 96 rather than
    55 x 55 x 96; no input size gives it, so we take it as a slip in the figure.
    Every other layer agrees with Fig. 2.

    `variant="owt"` is torchvision's `alexnet` ("one weird trick") exactly, Dropout
    before each hidden Linear included: 224 input, conv1 with padding 2, no LRN or
    groups, adaptive average pooling to 6x6, and 61,100,840 parameters.

    Args:
        variant: `"2012"` or `"owt"`.
        include_top: whether to include fc6 to fc8.
        weights: `None`, `"imagenet"` (owt only: torchvision's IMAGENET1K_V1), or a
            path to `.pth`, `.npz`, `.weights.h5` or `.keras` weights.
        input_shape: optional `(height, width, 3)`.
        pooling: with `include_top=False`, `None`, `"avg"` or `"max"`.
        classes: number of classes.
        classifier_activation: activation of fc8; `None` returns logits.
        dropout: `"paper"` or `"inverted"`; `None` picks the variant's own
            (`"paper"` for 2012, `"inverted"` for owt).
        dropout_rate: drop probability of drop6 and drop7.
        init: `"paper"` (N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7),
            `"caffe"` (the same with biases 0.1) or `"torch"` (PyTorch's defaults);
            `None` picks `"paper"` for 2012 and `"torch"` for owt.
        tower_impl: `"split"` or `"grouped"` (2012 only; same weights either way).
        lrn_convention: `"paper"` (the default: alpha = 1e-4 per summed square, the
            formula [P] §3.3 prints and most ports follow) or `"cuda-convnet"`
            (alpha / 5, what the 2012 code computed; see
            `LocalResponseNormalization`). The paper's formula stays the default
            because the exact kernel source that trained the 2012 net is not
            public: the cuda-convnet form is inferred, with high confidence, from
            the releases before and after it. 2012 only.
        class_wnids: optional list of WordNet ids, one per class, kept in the config
            so that predict, evaluate and compete can map labels.
        preprocessing: a spec name or dict (see `alexnet_keras.preprocessing`);
            `None` picks the variant's own.
        seed: optional seed for the dropout masks.
        name: model name.

    Examples:
    >>> model = AlexNet()
    >>> model.count_params()
    60965224
    >>> AlexNet(variant="owt", classes=10, classifier_activation=None).output_shape
    (None, 10)
    """

    def __init__(
        self,
        variant="2012",
        include_top=True,
        weights=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        dropout=None,
        dropout_rate=0.5,
        init=None,
        tower_impl="split",
        lrn_convention="paper",
        class_wnids=None,
        preprocessing=None,
        seed=None,
        name=None,
        **kwargs,
    ):
        variant = str(variant)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        dropout = dropout or DEFAULT_DROPOUT[variant]
        init = init or DEFAULT_INIT[variant]
        if init not in INITS:
            raise ValueError(f"init must be one of {tuple(INITS)}, got {init!r}")
        if pooling not in (None, "avg", "max"):
            raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
        if weights == "imagenet" and class_wnids is None and classes == 1000:
            from .imagenet import imagenet_wnids  # ImageNet-1k order, for decode and compete

            class_wnids = imagenet_wnids()
        if class_wnids is not None and len(class_wnids) != classes:
            raise ValueError(f"{len(class_wnids)} class_wnids given for {classes} classes")
        input_shape = tuple(input_shape or DEFAULT_INPUT[variant])
        if len(input_shape) != 3 or input_shape[-1] != 3:
            raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
        for size in input_shape[:2]:
            if size is not None and size < MIN_INPUT[variant]:
                raise ValueError(
                    f"AlexNet {variant} needs inputs of at least {MIN_INPUT[variant]} px, got {input_shape}"
                )
            if variant == "2012" and include_top and _pool5_size(variant, size) != 6:
                raise ValueError(
                    f"AlexNet 2012 with include_top=True needs a 6x6 pool5 map (227x227 input); "
                    f"{input_shape} gives {_pool5_size(variant, size)}. "
                    "Use include_top=False for other sizes."
                )

        inputs = keras.Input(shape=input_shape, name="image")
        build = _features_2012 if variant == "2012" else _features_owt
        x = build(inputs, init, tower_impl, lrn_convention) if variant == "2012" else build(inputs, init)
        if include_top:
            x = _classifier(x, variant, init, classes, classifier_activation, dropout, dropout_rate, seed)
        elif pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        super().__init__(inputs=inputs, outputs=x, name=name or f"alexnet_{variant}", **kwargs)

        self.variant = variant
        self.include_top = include_top
        self.pooling = pooling
        self.classes = classes
        self.classifier_activation = classifier_activation
        self.dropout = dropout
        self.dropout_rate = dropout_rate
        self.init = init
        self.tower_impl = tower_impl
        self.lrn_convention = lrn_convention
        # Kept as immutable values: Keras wraps list/dict attributes in trackers that
        # point back at the model, so copying one would copy the whole model.
        self._class_wnids = tuple(class_wnids) if class_wnids is not None else None
        self._preprocessing = json.dumps(get_spec(preprocessing or DEFAULT_PREPROCESSING[variant]))
        self.seed = seed
        if weights is not None:
            from .convert import load_weights  # torch and h5 handling live there

            load_weights(self, weights)

    @property
    def class_wnids(self):
        """WordNet ids of the classes, or None."""
        return list(self._class_wnids) if self._class_wnids is not None else None

    @property
    def preprocessing(self):
        """The preprocessing spec (a fresh plain dict) these weights expect."""
        return json.loads(self._preprocessing)

    def get_config(self):
        return {
            "variant": self.variant,
            "include_top": self.include_top,
            "weights": None,  # the weights travel in the file, not as a path
            "input_shape": tuple(self.input_shape[1:]),
            "pooling": self.pooling,
            "classes": self.classes,
            "classifier_activation": self.classifier_activation,
            "dropout": self.dropout,
            "dropout_rate": self.dropout_rate,
            "init": self.init,
            "tower_impl": self.tower_impl,
            "lrn_convention": self.lrn_convention,
            "class_wnids": self.class_wnids,
            "preprocessing": self.preprocessing,
            "seed": self.seed,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def _conv(x, filters, kernel, name, init, strides=1, padding="same", groups=1, tower_impl="split"):
    fan_in = kernel * kernel * x.shape[-1] // groups
    kernel_init, bias_init = _initializers(init, name, fan_in)
    common = dict(
        padding=padding, activation="relu", kernel_initializer=kernel_init, bias_initializer=bias_init, name=name
    )
    if groups == 1:
        layer = keras.layers.Conv2D(filters, kernel, strides=strides, **common)
    else:
        layer = GroupedConv2D(filters, kernel, groups=groups, implementation=tower_impl, **common)
    return layer(x)


def _pool(x, name):
    return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name=name)(x)


def _features_2012(x, init, tower_impl, lrn):
    x = _conv(x, 96, 11, "conv1", init, strides=4, padding="valid")
    x = _pool(LocalResponseNormalization(groups=2, convention=lrn, name="lrn1")(x), "pool1")
    x = _conv(x, 256, 5, "conv2", init, groups=2, tower_impl=tower_impl)
    x = _pool(LocalResponseNormalization(groups=2, convention=lrn, name="lrn2")(x), "pool2")
    x = _conv(x, 384, 3, "conv3", init)
    x = _conv(x, 384, 3, "conv4", init, groups=2, tower_impl=tower_impl)
    x = _conv(x, 256, 3, "conv5", init, groups=2, tower_impl=tower_impl)
    return _pool(x, "pool5")


def _features_owt(x, init):
    x = keras.layers.ZeroPadding2D(2, name="pad1")(x)
    x = _pool(_conv(x, 64, 11, "conv1", init, strides=4, padding="valid"), "pool1")
    x = _pool(_conv(x, 192, 5, "conv2", init), "pool2")
    x = _conv(x, 384, 3, "conv3", init)
    x = _conv(x, 256, 3, "conv4", init)
    x = _pool(_conv(x, 256, 3, "conv5", init), "pool5")
    return keras.layers.AdaptiveAveragePooling2D((6, 6), name="avgpool")(x)


def _dense(x, units, name, init, activation="relu"):
    kernel_init, bias_init = _initializers(init, name, x.shape[-1])
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=kernel_init, bias_initializer=bias_init, name=name
    )(x)


def _classifier(x, variant, init, classes, activation, dropout, rate, seed):
    def drop(x, name, offset):
        layer_seed = None if seed is None else seed + offset
        return AlexNetDropout(rate, mode=dropout, seed=layer_seed, name=name)(x)

    x = keras.layers.Flatten(name="flatten")(x)
    if variant == "owt":  # torchvision: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
        x = _dense(drop(x, "drop6", 0), 4096, "fc6", init)
        x = _dense(drop(x, "drop7", 1), 4096, "fc7", init)
    else:
        x = drop(_dense(x, 4096, "fc6", init), "drop6", 0)
        x = drop(_dense(x, 4096, "fc7", init), "drop7", 1)
    return _dense(x, classes, "fc8", init, activation=activation)
