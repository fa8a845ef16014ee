"""Weights in and out of AlexNet: `load_weights` for every format, and the one safe `.keras` loader.

Dropout. torchvision trained with inverted dropout (identity at test time); a
`dropout="paper"` model multiplies fc6's and fc7's inputs by `1 - rate` at test
time instead. We rescale rather than refuse: multiplying the kernel of each Dense
layer that reads a dropout layer by `1 / (1 - rate)` makes the paper-mode network
compute exactly torchvision's function at test time, and in training
`(mask * x) @ (W / keep)` is the inverted layer's `(mask * x / keep) @ W`, so the
weights stay right for fine-tuning too. Files that record their convention
(`.pth`, `.npz` from `export_npz`, `.keras`) are rescaled the same way; a bare
`.weights.h5` does not record it and loads verbatim.

Example:
>>> model = AlexNet("owt", weights="alexnet-owt-7be5be79.pth")  # doctest: +SKIP
"""

import zipfile

import keras
import numpy as np

from ..errors import UserError
from .checks import existing, first_line, shapes_text, weights_format
from .npz import read_npz
from .torchvision import (
    TORCHVISION_DROPOUT,
    fetch_torchvision_weights,
    load_torchvision_state_dict,
    torchvision_to_keras,
)

# The Dense layers that read a dropout layer's output.
_AFTER_DROPOUT = {"owt": ("fc6", "fc7"), "2012": ("fc7", "fc8")}


def load_weights(model, weights, url=None, file_hash=None, cache_dir=None):
    """Loads weights into an `AlexNet` in place; shapes are checked before anything is set.

    Args:
        model: an `AlexNet`.
        weights: `"imagenet"` (variant `"owt"` only: torchvision's IMAGENET1K_V1,
            downloaded once and checked against its sha256), or a path to a `.pth`
            state dict (owt), an `.npz` from `export_npz`, a `.weights.h5` or a
            `.keras` file (read in safe mode).
        url, file_hash, cache_dir: passed to `fetch_torchvision_weights` for `"imagenet"`.

    Returns:
        The model.

    Example:
    >>> model = AlexNet("owt", dropout="paper")  # doctest: +SKIP
    >>> load_weights(model, "alexnet-owt-7be5be79.pth")  # fc6/fc7 kernels rescaled by 2  # doctest: +SKIP
    """
    variant = getattr(model, "variant", None)
    if isinstance(weights, str) and weights == "imagenet":
        if variant != "owt":
            raise UserError(
                "weights='imagenet' exists only for variant='owt' (torchvision's IMAGENET1K_V1); "
                "the 2012 network has no published weights, so train it or pass a weights file"
            )
        _load_torchvision(model, fetch_torchvision_weights(url, file_hash, cache_dir))
        return model
    path = existing(weights)
    kind = weights_format(path)
    if kind == ".pth":
        _load_torchvision(model, path)
    elif kind == ".npz":
        layers, meta = read_npz(path)
        assign_weights(model, layers, path.name, meta.get("dropout"))
    elif kind == ".keras":
        source = load_keras(path)
        layers = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
        assign_weights(model, layers, path.name, _dropout_of(source))
    else:
        try:
            model.load_weights(path)
        except ValueError as e:
            raise UserError(f"{path.name} does not fit this model: {first_line(e)}") from None
    return model


def load_keras(path):
    """A `.keras` file as a Keras model, in safe mode: the one place the package opens `.keras` files.

    Safe mode refuses lambdas and other code, and `compile=False` skips the
    optimizer. Every failure is one `UserError` line naming the file.
    """
    path = existing(path)
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"cannot load {path}: not a valid .keras file (a .keras model is a zip archive; this one is not)"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # zip, JSON, h5 and deserialisation errors come in many types
        raise UserError(f"cannot load {path} as a Keras model: {first_line(e)[:200]}") from None
    if not isinstance(model, keras.Model):
        raise UserError(f"{path} holds a {type(model).__name__}, not a Keras model")
    return model


def _load_torchvision(model, path):
    if getattr(model, "variant", None) != "owt":
        raise UserError(f"{path.name} is a torchvision AlexNet: load it into AlexNet(variant='owt')")
    assign_weights(model, torchvision_to_keras(load_torchvision_state_dict(path)), path.name, TORCHVISION_DROPOUT)


def assign_weights(model, layers, source, dropout=None):
    """Sets `{layer: [kernel, bias]}`, all shapes checked first so a bad file changes nothing.

    `dropout` is the file's `(mode, rate)` where it records one.
    """
    targets = {layer.name: layer for layer in model.layers if layer.weights}
    missing = [name for name in targets if name not in layers]
    if missing:
        raise UserError(f"{source} has no weights for layer(s) {', '.join(missing)} of this model")
    extra = set(layers) - set(targets)
    # A classifier in the file is fine for an include_top=False model: it is dropped.
    if extra - {"fc6", "fc7", "fc8"} or (extra and getattr(model, "include_top", True)):
        raise UserError(f"{source} has layer(s) {', '.join(sorted(extra))} that this model lacks")
    for name, layer in targets.items():
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(np.shape(a)) for a in layers[name]]
        if want != got:
            raise UserError(
                f"{source} does not fit this model: layer {name} needs shapes {shapes_text(want)}, "
                f"the file has {shapes_text(got)}"
            )
    factors = _dropout_factors(model, dropout)
    for name, layer in targets.items():
        arrays = list(layers[name])
        if name in factors:
            arrays[0] = arrays[0] * np.float32(factors[name])
        layer.set_weights(arrays)


def _dropout_factors(model, source):
    """Kernel factors that keep the function when the file's dropout differs from the model's."""
    if source is None or not getattr(model, "include_top", False):
        return {}
    factor = _test_time_gain(*source) / _test_time_gain(model.dropout, model.dropout_rate)
    if factor == 1.0:
        return {}
    return {name: factor for name in _AFTER_DROPOUT[model.variant]}


def _test_time_gain(mode, rate):
    """What a dropout layer multiplies its input by at inference."""
    return 1.0 - rate if mode == "paper" else 1.0


def _dropout_of(model):
    if getattr(model, "include_top", False) and hasattr(model, "dropout"):
        return (model.dropout, model.dropout_rate)
    return None
