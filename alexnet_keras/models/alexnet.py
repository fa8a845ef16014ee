"""AlexNet as a Keras functional model: the 2012 network and torchvision's "owt" layout.

This module is the graph only. `_features_2012` reads line by line against the
paper's Fig. 2, `_features_owt` against torchvision's `alexnet.py`, and
`_classifier` is fc6 to fc8 for both. Weights files are read in
`alexnet_keras.weights`; models built from files live in `presets.py`.
"""

import functools
import json

import keras

from ..constants import (
    ACTIVATIONS,
    CONV1_ORDERS,
    DEFAULT_DROPOUT,
    DEFAULT_INIT,
    DEFAULT_PREPROCESSING,
    FIDELITIES,
    INITS,
    INPUT_SIZE,
    KERAS_PACKAGE,
    MIN_INPUT,
    OVERLAPPING_POOL,
    REMOVABLE_CONVS,
    TOWER_COUNTS,
    VARIANTS,
)
from ..errors import UserError
from ..layers import AlexNetDropout, GroupedConv2D, LocalResponseNormalization, SpatialResponseNormalization
from ..layers.tower_conv import TowerLocalResponseNormalization
from ..preprocessing import get_spec
from ..weights.io import load_weights
from ..weights.torchvision import class_wnids as torchvision_class_wnids

POOLINGS = (None, "avg", "max")
_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")  # [P] §5: these start with biases of 1 (or Caffe's 0.1)
_WEIGHT_STD = 0.01  # [P] §5: N(0, 0.01) for every layer
_CONSTRUCTOR_KWARGS = ("trainable",)  # what keras.Model may take beyond our arguments (from_config passes it)
_CUDA_CONVNET_STD = {"conv3": 0.03, "conv4": 0.03, "conv5": 0.03}  # layers-145.cfg initW (notes Q2 D3)
# conv1-conv5 kernels by towers. [P] §3.2's one-GPU net halves each conv layer but, by its
# footnote, not the last (fc6 holds most parameters), nor the fc layers.
_CONV_WIDTHS = {2: (96, 256, 384, 384, 256), 1: (48, 128, 192, 192, 256)}
# The ablation switches off: Fig. 2's network (owt takes no other value).
_SWITCHES_OFF = dict(lrn=True, pool=OVERLAPPING_POOL, activation="relu", towers=2, remove_conv=None)
# What each `fidelity` sets for the options left at None. "cuda-convnet" is every
# model difference that docs/cuda-convnet-2012.md Q2 marks certain (D1-D4).
_FIDELITY = {
    "paper": dict(lrn_convention="paper", conv1_order="paper", spatial_norm2=False, init=None),
    "cuda-convnet": dict(
        lrn_convention="cuda-convnet", conv1_order="cuda-convnet", spatial_norm2=True, init="cuda-convnet"
    ),
}


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class AlexNet(keras.Model):
    """AlexNet (Krizhevsky, Sutskever and Hinton, NIPS 2012) as a functional model.

    `variant="2012"` is the paper's network. conv2, conv4 and conv5 see only their
    own tower's half of the maps, as on the paper's two GTX 580s. They are
    `GroupedConv2D` layers whose kernels use Keras' `groups` layout, run as an
    explicit two-tower split by default (`tower_impl="split"`): TF has no grouped
    CPU kernel, and the split trains faster there (benchmarks/RESULTS.md).
    `tower_impl="grouped"` runs the same weights as one grouped convolution. LRN also stays inside each tower (the
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

    `fidelity="cuda-convnet"` builds the net that the released 2012 code trained
    (cuda-convnet model 145) rather than the one the paper prints. For each of
    these arguments left at `None` it picks the [CC] value, that is, every
    difference in the network that docs/cuda-convnet-2012.md (Q2) marks certain:

    * `lrn_convention="cuda-convnet"`: alpha / 5 per summed square (D4);
    * `conv1_order="cuda-convnet"`: lrn1 on conv1's pre-ReLU maps, ReLU after pool1 (D1);
    * `spatial_norm2=True`: the 5x5 same-map norm `cnorm2` between lrn2 and pool2 (D2;
      its additive 1 is inferred with high confidence, not read from the 2012 kernel);
    * `init="cuda-convnet"`: conv3-5 drawn with std 0.03 (D3).

    Arguments given explicitly win. No weights change, so checkpoints move between
    the two. LRN per tower (D5) and the paper's dropout (D16) are already the defaults.
    The default stays `"paper"`: it is the network the paper documents, and existing
    configs and checkpoints keep their meaning.

    Not offered here:

    * colour-noise scaling (D9): eigenvalues or their square roots; the 2012
      `batches.meta` is not released, and the square-root reading rests on a 2014
      cuda-convnet2 file;
    * crop size (D12): model 145's `--crop-border` is not in the sources, so whether
      it trained on 224 or 227 crops is open;
    * one crop and flip per 32 images (D10): certain in [CC]'s loader
      (`convdata.py:125`), but a data-loader shortcut, not part of the network;
    * the rest of the recipe (bias lr D6, the logged schedule D7, colour noise off at
      epoch 67 D8, the mean image D11) belongs to training and data, not the model.

    Args:
        variant: `"2012"` or `"owt"`.
        include_top: whether to include fc6 to fc8.
        weights: `None`, `"imagenet"` (owt only: torchvision's IMAGENET1K_V1, whose
            1000 outputs get ImageNet's class wnids), or a path to `.pth`, `.npz`,
            `.weights.h5` or `.keras` weights (see `alexnet_keras.weights`).
        input_shape: optional `(height, width, 3)`.
        input_tensor: optional Keras tensor (`keras.Input(...)` or a layer's
            output) to build the model on, as in `keras.applications`: the
            model's inputs are that tensor's source inputs. A model built on
            layers before AlexNet saves whole as `keras.Model(m.input, m.output)`.
        pooling: with `include_top=False`, `None`, `"avg"` or `"max"`.
        classes: number of classes.
        classifier_activation: activation of fc8; `None` returns logits.
        dropout: `"paper"` or `"inverted"`; `None` picks the variant's own
            (`"paper"` for 2012, `"inverted"` for owt).
        dropout_rate: drop probability of drop6 and drop7.
        init: `"paper"` (N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7),
            `"caffe"` (the same with biases 0.1), `"torch"` (PyTorch's defaults) or
            `"cuda-convnet"` (the paper's, but N(0, 0.03) for conv3-5, as [CC]);
            `None` picks the fidelity's, else `"paper"` for 2012 and `"torch"` for owt.
        tower_impl: `"split"` or `"grouped"` (2012 only; same weights either way).
        lrn_convention: `"paper"` (the default: alpha = 1e-4 per summed square, the
            formula [P] §3.3 prints and most ports follow) or `"cuda-convnet"`
            (alpha / 5, what the 2012 code computed; see
            `LocalResponseNormalization`). The paper's formula stays the default
            because the exact kernel source that trained the 2012 net is not
            public: the cuda-convnet form is inferred, with high confidence, from
            the releases before and after it. `None`: the fidelity's. 2012 only.
        conv1_order: `"paper"` (conv1, ReLU, lrn1, pool1) or `"cuda-convnet"`
            (linear conv1, lrn1, pool1, then a ReLU layer `relu1`: the LRN also sums
            the squares of negative pre-activations). `None`: the fidelity's. 2012 only.
        spatial_norm2: whether to insert `cnorm2`, a `SpatialResponseNormalization`
            (5x5, scale 0.001, pow 0.75), between lrn2 and pool2. `None`: the
            fidelity's. 2012 only.
        fidelity: `"paper"` or `"cuda-convnet"` (see above).
        lrn: `False` drops lrn1 and lrn2 ([P] §3.3's ablation; `cnorm2` stays). 2012 only.
        pool: `(size, stride)` of pool1, pool2 and pool5; `(2, 2)` is [P] §3.4's
            non-overlapping comparison (same map sizes from 227). 2012 only.
        activation: `"relu"` or `"tanh"` ([P] §3.1) for conv1-conv5, fc6 and fc7
            (and `relu1`). fc8 keeps `classifier_activation`. 2012 only.
        towers: `2`, or `1` for [P] §3.2's one-GPU net: conv1-conv4 with half the
            kernels (48, 128, 192, 192), conv5 and fc6-fc8 full, no groups, LRN
            over all maps. 2012 only.
        remove_conv: `None`, `"conv3"`, `"conv4"` or `"conv5"`: that layer is left
            out and the next reads what came before ([P] §7). 2012 only.
        class_wnids: optional list of WordNet ids, one per class, kept in the config
            so that predict, evaluate and compete can map labels.
        preprocessing: a spec name or dict (see `alexnet_keras.preprocessing`);
            `None` picks the variant's own.
        seed: optional seed for the dropout masks.
        name: model name.
        dtype: a dtype policy (e.g. `"mixed_bfloat16"`) for every layer; `None`
            uses Keras' global policy. Variables stay float32 under the mixed policies.
        head_dtype: fc8's policy (its logits and softmax), as KerasHub's
            `ImageClassifier(head_dtype=...)`; `None`: `dtype`'s. Training and
            `--precision` pass `"float32"`, so logits and probabilities keep
            float32's range and precision under a 16-bit `dtype`.

    Unknown keyword arguments raise `TypeError`, as `keras.applications` models do.

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
        input_tensor=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        dropout=None,
        dropout_rate=0.5,
        init=None,
        tower_impl="split",
        lrn_convention=None,
        conv1_order=None,
        spatial_norm2=None,
        fidelity="paper",
        lrn=True,
        pool=OVERLAPPING_POOL,
        activation="relu",
        towers=2,
        remove_conv=None,
        class_wnids=None,
        preprocessing=None,
        seed=None,
        name=None,
        dtype=None,
        head_dtype=None,
        **kwargs,
    ):
        # === Arguments ===
        unknown = sorted(set(kwargs) - set(_CONSTRUCTOR_KWARGS))
        if unknown:  # keras.Model would accept and ignore them
            raise TypeError(f"AlexNet() got an unexpected keyword argument {unknown[0]!r}")
        variant = str(variant)
        input_shape = _input_tensor_shape(input_tensor, input_shape)
        _check_fidelity(variant, fidelity, conv1_order, spatial_norm2)
        switches = _check_switches(variant, lrn, pool, activation, towers, remove_conv)
        _check_arguments(variant, include_top, input_shape, pooling, init, classes, class_wnids, switches["pool"])
        preset = _FIDELITY[fidelity]
        lrn_convention = lrn_convention or preset["lrn_convention"]
        conv1_order = conv1_order or preset["conv1_order"]
        spatial_norm2 = preset["spatial_norm2"] if spatial_norm2 is None else spatial_norm2
        dropout = dropout or DEFAULT_DROPOUT[variant]
        init = init or preset["init"] or DEFAULT_INIT[variant]
        input_shape = tuple(input_shape or (INPUT_SIZE[variant], INPUT_SIZE[variant], 3))
        if weights == "imagenet" and class_wnids is None:
            class_wnids = torchvision_class_wnids(classes)  # the preset's outputs are in ImageNet order

        # === Functional Model ===
        image = keras.Input(shape=input_shape, name="image") if input_tensor is None else input_tensor
        inputs = [image] if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
        rebuilt_by_config = inputs == [image]
        inputs = inputs[0] if len(inputs) == 1 else inputs  # one input: a tensor, so calls take a bare array
        if variant == "2012":
            x = _features_2012(image, init, tower_impl, lrn_convention, conv1_order, spatial_norm2, dtype, switches)
        else:
            x = _features_owt(image, init, dtype)
        if include_top:
            x = _classifier(
                x,
                variant,
                init,
                classes,
                classifier_activation,
                switches["activation"],
                dropout,
                dropout_rate,
                seed,
                dtype,
                head_dtype or dtype,
            )
        elif pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool", dtype=dtype)(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool", dtype=dtype)(x)
        super().__init__(inputs=inputs, outputs=x, name=name or f"alexnet_{variant}", **kwargs)
        if dtype is not None:  # a functional model ignores `dtype`; set it as KerasHub's Backbone does
            self.dtype_policy = keras.dtype_policies.get(dtype)

        # === Config ===
        self._rebuilt_by_config = rebuilt_by_config  # get_config describes the graph from our input on
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
        self.conv1_order = conv1_order
        self.spatial_norm2 = spatial_norm2
        self.fidelity = fidelity
        self.lrn = switches["lrn"]
        self.pool = switches["pool"]  # a tuple: immutable, as below
        self.activation = switches["activation"]
        self.towers = switches["towers"]
        self.remove_conv = switches["remove_conv"]
        # Kept as immutable values: Keras wraps list/dict attributes in trackers that
        # point back at the model, so copying one would copy the whole model.
        self._class_wnids = tuple(class_wnids) if class_wnids is not None else None
        self._preprocessing = json.dumps(get_spec(preprocessing or DEFAULT_PREPROCESSING[variant]))
        self.seed = seed
        self.head_dtype = keras.dtype_policies.get(head_dtype).name if head_dtype else None  # a name, e.g. "float32"

        # === Weights ===
        if weights is not None:
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
        if not getattr(self, "_rebuilt_by_config", True):
            raise NotImplementedError(
                "an AlexNet built on an input_tensor with layers before it cannot be rebuilt from its config; "
                "save keras.Model(model.input, model.output) instead, or its weights"
            )
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
            "conv1_order": self.conv1_order,
            "spatial_norm2": self.spatial_norm2,
            "fidelity": self.fidelity,
            "lrn": self.lrn,
            "pool": list(self.pool),  # JSON's form, so a round trip compares equal
            "activation": self.activation,
            "towers": self.towers,
            "remove_conv": self.remove_conv,
            "class_wnids": self.class_wnids,
            "preprocessing": self.preprocessing,
            "seed": self.seed,
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "head_dtype": self.head_dtype,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def _check_arguments(variant, include_top, input_shape, pooling, init, classes, class_wnids, pool):
    """`ValueError` for arguments that cannot build an AlexNet."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if init is not None and init not in INITS:
        raise ValueError(f"init must be one of {tuple(INITS)}, got {init!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if class_wnids is not None and len(class_wnids) != classes:
        raise ValueError(f"{len(class_wnids)} class_wnids given for {classes} classes")
    input_shape = tuple(input_shape or (INPUT_SIZE[variant], INPUT_SIZE[variant], 3))  # the default too: `pool`
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
    for size in input_shape[:2]:
        if size is not None and size < MIN_INPUT[variant]:
            raise ValueError(f"AlexNet {variant} needs inputs of at least {MIN_INPUT[variant]} px, got {input_shape}")
        if variant != "2012":
            continue
        pool5 = _pool5_size(size, pool)
        if pool5 is not None and pool5 < 1:
            raise ValueError(f"AlexNet 2012 with pool={list(pool)} leaves no pool5 map for {input_shape}")
        if include_top and pool5 != 6:
            raise ValueError(
                f"AlexNet 2012 with include_top=True needs a 6x6 pool5 map (227x227 input); {input_shape} "
                f"with pool={list(pool)} gives {pool5}. Use include_top=False for other sizes."
            )


def _check_fidelity(variant, fidelity, conv1_order, spatial_norm2):
    """`ValueError` for [CC] options that are unknown or that the owt layout cannot take."""
    if fidelity not in FIDELITIES:
        raise ValueError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
    if conv1_order is not None and conv1_order not in CONV1_ORDERS:
        raise ValueError(f"conv1_order must be one of {CONV1_ORDERS}, got {conv1_order!r}")
    if spatial_norm2 not in (None, True, False):
        raise ValueError(f"spatial_norm2 must be True, False or None, got {spatial_norm2!r}")
    if variant == "owt" and (fidelity != "paper" or conv1_order == "cuda-convnet" or spatial_norm2):
        raise ValueError("fidelity, conv1_order and spatial_norm2 change the 2012 network; owt has no LRN")


def _check_switches(variant, lrn, pool, activation, towers, remove_conv):
    """The ablation switches as a dict (`pool` a tuple); `ValueError` for bad values or any on owt."""
    if lrn not in (True, False):
        raise ValueError(f"lrn must be True or False, got {lrn!r}")
    if not (
        isinstance(pool, (tuple, list))
        and len(pool) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pool)
    ):
        raise ValueError(f"pool must be (size, stride), two positive ints such as (3, 2) or (2, 2), got {pool!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if towers not in TOWER_COUNTS or isinstance(towers, bool):
        raise ValueError(f"towers must be one of {TOWER_COUNTS}, got {towers!r}")
    if remove_conv is not None and remove_conv not in REMOVABLE_CONVS:
        raise ValueError(f"remove_conv must be None or one of {REMOVABLE_CONVS}, got {remove_conv!r}")
    switches = dict(lrn=bool(lrn), pool=tuple(pool), activation=activation, towers=int(towers), remove_conv=remove_conv)
    changed = sorted(k for k, v in switches.items() if v != _SWITCHES_OFF[k])
    if variant == "owt" and changed:
        raise ValueError(f"{', '.join(changed)} change the 2012 network; owt has no LRN or towers: leave them out")
    _check_tower_split(switches["towers"])
    return switches


def _check_tower_split(towers):
    """`UserError` for the one-GPU net under `--parallel towers` (training.towers): it has no towers to split."""
    split = getattr(keras.distribution.distribution(), "towers", None)  # TowerParallel's tower count
    if split is not None and towers != split:
        raise UserError(
            f"--parallel towers splits the {split}-tower 2012 network over devices; towers={towers} has no towers "
            "to split: use --parallel data or one device"
        )


def _input_tensor_shape(input_tensor, input_shape):
    """The input shape an `input_tensor` gives (keras.applications' rule: it must be a Keras tensor)."""
    if input_tensor is None:
        return input_shape
    if not keras.backend.is_keras_tensor(input_tensor):
        raise ValueError(
            f"input_tensor must be a Keras tensor (keras.Input(...) or a layer's output), got {type(input_tensor).__name__}"
        )
    shape = tuple(input_tensor.shape[1:])
    if input_shape is not None and tuple(input_shape) != shape:
        raise ValueError(f"input_shape {tuple(input_shape)} does not match input_tensor's shape {shape}")
    return shape


def _pool5_size(size, pool=OVERLAPPING_POOL):
    """Spatial size at pool5 of the 2012 net for a square input (None stays None)."""
    if size is None:
        return None
    window, stride = pool
    size = (size - 11) // 4 + 1  # conv1: 11x11, stride 4, no padding
    for _ in range(3):  # pool1, pool2, pool5 (conv2 to conv5 keep the size)
        size = (size - window) // stride + 1 if size >= window else 0
    return size


def _features_2012(x, init, tower_impl, lrn_convention, conv1_order, spatial_norm2, dtype, switches):
    """Fig. 2's five conv layers; `groups=2` keeps a layer on its own GPU's half of the maps.

    `switches` (`lrn`, `pool`, `activation`, `towers`, `remove_conv`) are the paper's
    ablations; at their defaults this is Fig. 2 (widths below for two towers).
    """
    act, towers = switches["activation"], switches["towers"]
    conv = functools.partial(
        _conv_unless_removed, removed=switches["remove_conv"], init=init, tower_impl=tower_impl, dtype=dtype
    )
    lrn = functools.partial(_lrn, convention=lrn_convention, towers=towers, dtype=dtype, keep=switches["lrn"])
    pool = functools.partial(_pool, dtype=dtype, pool=switches["pool"])
    width1, width2, width3, width4, width5 = _CONV_WIDTHS[towers]
    relu_late = conv1_order == "cuda-convnet"  # [CC] normalises conv1's pre-ReLU maps (notes Q2 D1)
    x = conv(x, width1, 11, "conv1", strides=4, padding="valid", activation=None if relu_late else act)  # 55x55x96
    x = pool(lrn(x, "lrn1"), "pool1")  # 27x27x96
    if relu_late:
        x = _late_activation(act, dtype)(x)
    x = conv(x, width2, 5, "conv2", groups=towers, activation=act)  # 27x27x256: each GPU reads only its own 48 maps
    x = lrn(x, "lrn2")
    if spatial_norm2:  # [CC]'s cnorm2, absent from the paper (notes Q1 and Q2 D2)
        x = SpatialResponseNormalization(5, scale=1e-3, power=0.75, name="cnorm2", dtype=dtype)(x)
    x = pool(x, "pool2")  # 13x13x256
    x = conv(x, width3, 3, "conv3", activation=act)  # 13x13x384: reads both GPUs' maps
    x = conv(x, width4, 3, "conv4", groups=towers, activation=act)  # 13x13x384
    x = conv(x, width5, 3, "conv5", groups=towers, activation=act)  # 13x13x256
    return pool(x, "pool5")  # 6x6x256


def _features_owt(x, init, dtype):
    """torchvision's `features` and `avgpool`: one tower, no LRN, conv1 padded by 2."""
    conv = functools.partial(_conv, init=init, dtype=dtype)
    pool = functools.partial(_pool, dtype=dtype)
    x = keras.layers.ZeroPadding2D(2, name="pad1", dtype=dtype)(x)
    x = pool(conv(x, 64, 11, "conv1", strides=4, padding="valid"), "pool1")  # 27x27x64
    x = pool(conv(x, 192, 5, "conv2"), "pool2")  # 13x13x192
    x = conv(x, 384, 3, "conv3")
    x = conv(x, 256, 3, "conv4")
    x = pool(conv(x, 256, 3, "conv5"), "pool5")  # 6x6x256 for a 224 input
    return keras.layers.AdaptiveAveragePooling2D((6, 6), name="avgpool", dtype=dtype)(x)


def _classifier(x, variant, init, classes, activation, hidden_activation, dropout, rate, seed, dtype, head_dtype):
    """fc6 to fc8. The paper drops fc6's and fc7's outputs; torchvision drops their inputs."""

    def drop(x, name, offset):
        layer_seed = None if seed is None else seed + offset
        return AlexNetDropout(rate, mode=dropout, seed=layer_seed, name=name, dtype=dtype)(x)

    dense = functools.partial(_dense, init=init, dtype=dtype, activation=hidden_activation)
    x = keras.layers.Flatten(name="flatten", dtype=dtype)(x)
    if variant == "owt":  # torchvision: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
        x = dense(drop(x, "drop6", 0), 4096, "fc6")
        x = dense(drop(x, "drop7", 1), 4096, "fc7")
    else:
        x = drop(dense(x, 4096, "fc6"), "drop6", 0)
        x = drop(dense(x, 4096, "fc7"), "drop7", 1)
    return _dense(x, classes, "fc8", init=init, dtype=head_dtype, activation=activation)


def _conv(
    x, filters, kernel, name, init, dtype, strides=1, padding="same", groups=1, tower_impl="split", activation="relu"
):
    """A ReLU convolution; with `groups > 1`, a `GroupedConv2D` with one tower per GPU."""
    kernel_init, bias_init = _initializers(init, name, fan_in=kernel * kernel * x.shape[-1] // groups)
    common = dict(
        strides=strides,
        padding=padding,
        activation=activation,
        kernel_initializer=kernel_init,
        bias_initializer=bias_init,
        name=name,
        dtype=dtype,
    )
    if groups == 1:
        return keras.layers.Conv2D(filters, kernel, **common)(x)
    return GroupedConv2D(filters, kernel, groups=groups, implementation=tower_impl, **common)(x)


def _conv_unless_removed(x, filters, kernel, name, removed, **kwargs):
    """`_conv`, or `x` itself for the layer `remove_conv` leaves out: the next layer reads what came before."""
    return x if name == removed else _conv(x, filters, kernel, name, **kwargs)


def _late_activation(activation, dtype):
    """[CC]'s `relu1` after pool1; with `activation="tanh"` the same place applies tanh."""
    if activation == "relu":
        return keras.layers.ReLU(name="relu1", dtype=dtype)
    return keras.layers.Activation(activation, name="relu1", dtype=dtype)


def _lrn(x, name, convention, towers, dtype, keep=True):
    """[P] §3.3 response normalisation, within each GPU's maps (on its own device under `--parallel towers`)."""
    if not keep:  # [P] §3.3's comparison without it
        return x
    if towers == 1:  # one GPU: all maps in one window sum
        return LocalResponseNormalization(convention=convention, name=name, dtype=dtype)(x)
    return TowerLocalResponseNormalization(groups=towers, convention=convention, name=name, dtype=dtype)(x)


def _pool(x, name, dtype, pool=OVERLAPPING_POOL):
    """Max pooling; by default overlapping ([P] §3.4): 3x3 windows, stride 2."""
    window, stride = pool
    return keras.layers.MaxPooling2D(window, strides=stride, padding="valid", name=name, dtype=dtype)(x)


def _dense(x, units, name, init, dtype, activation="relu"):
    kernel_init, bias_init = _initializers(init, name, fan_in=x.shape[-1])
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=kernel_init,
        bias_initializer=bias_init,
        name=name,
        dtype=dtype,
    )(x)


def _initializers(init, name, fan_in):
    """Kernel and bias initialisers for layer `name` under an init scheme."""
    if init == "torch":
        # torch's default: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)), bias alike.
        bound = 1.0 / fan_in**0.5
        return (
            keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            keras.initializers.RandomUniform(-bound, bound),
        )
    bias = INITS[init] if name in _BIAS_ONE else 0.0
    std = _CUDA_CONVNET_STD.get(name, _WEIGHT_STD) if init == "cuda-convnet" else _WEIGHT_STD
    return keras.initializers.RandomNormal(stddev=std), keras.initializers.Constant(bias)
