"""Weights in and out of AlexNet: torchvision's published file, `.npz`, `.weights.h5`, `.keras`.

torchvision's `alexnet` (our `variant="owt"`) is saved as a PyTorch state dict:
conv weights OIHW, linear weights `(out, in)`, and fc6's inputs in the order of
an NCHW flatten. Keras wants HWIO, `(in, out)` and an NHWC flatten, so
`torchvision_to_keras` transposes every kernel and permutes fc6's rows.

torch is needed only to *read* `.pth` files, and `.pth` files are read with
`torch.load(weights_only=True)`, so a pickle that carries code is refused. The
`.npz`, `.weights.h5` and `.keras` files this module writes load without torch.

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
>>> from alexnet_keras import AlexNet
>>> model = AlexNet("owt", weights="alexnet-owt-7be5be79.pth")  # doctest: +SKIP
>>> convert("alexnet-owt-7be5be79.pth", "alexnet_owt.keras")  # doctest: +SKIP
"""

import math
import os
import pathlib
import pickle
import zipfile

import keras
import numpy as np

from .errors import UserError

TORCHVISION_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
# sha256 of that file (244,408,911 bytes). torchvision names a file after the first
# 8 hex digits of its sha256 ("7be5be79"); this full digest is the one pinned by
# several independent projects that verify the download. It could not be re-checked
# here (no network); its prefix matches the file name.
TORCHVISION_SHA256 = "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
# A mirror of the same file; it is still checked against TORCHVISION_SHA256.
URL_ENV = "ALEXNET_OWT_URL"
# Where get_file caches downloads; None means Keras' home (~/.keras or $KERAS_HOME).
CACHE_DIR = None

# Our layer name -> torchvision state-dict prefix.
TORCHVISION_LAYERS = {
    "conv1": "features.0",
    "conv2": "features.3",
    "conv3": "features.6",
    "conv4": "features.8",
    "conv5": "features.10",
    "fc6": "classifier.1",
    "fc7": "classifier.4",
    "fc8": "classifier.6",
}
TORCHVISION_DROPOUT = ("inverted", 0.5)  # torchvision's nn.Dropout(p=0.5)
# The Dense layers that read a dropout layer's output.
_AFTER_DROPOUT = {"owt": ("fc6", "fc7"), "2012": ("fc7", "fc8")}
_PARAMS = ("kernel", "bias")
_META = ("meta/variant", "meta/dropout", "meta/dropout_rate", "meta/class_wnids")  # what export_npz records
FORMATS = (".pth", ".npz", ".weights.h5", ".keras")
# torch.save writes a zip archive; its legacy format is a binary pickle (protocol 2+ starts with PROTO, 0x80).
_PICKLE_PROTO = b"\x80"


def load_torchvision_state_dict(path):
    """Reads a PyTorch state dict as `{key: numpy array}`, refusing pickled code.

    Args:
        path: a `.pth` file saved with `torch.save(model.state_dict(), path)`.

    Example:
    >>> state = load_torchvision_state_dict("alexnet-owt-7be5be79.pth")  # doctest: +SKIP
    >>> state["features.0.weight"].shape  # doctest: +SKIP
    (64, 3, 11, 11)
    """
    path = _existing(path)
    if not zipfile.is_zipfile(path) and not _starts_with(path, _PICKLE_PROTO):
        raise UserError(
            f"{path} is not a PyTorch checkpoint: torch.save writes a zip archive (or a binary pickle), "
            "and this file is neither"
        )
    try:
        import torch
    except ImportError:
        raise UserError(
            f"reading {path.name} needs PyTorch: pip install 'alexnet-keras[torch]', "
            "or convert it to .npz or .keras where torch is installed"
        ) from None
    try:
        # weights_only: tensors and plain containers only, never arbitrary objects or code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise UserError(
                f"refusing to load {path}: it holds Python objects beyond tensors (possibly code); "
                "only plain state dicts are loaded (save model.state_dict())"
            ) from None
        raise UserError(f"{path} is not a PyTorch weights file ({_first_line(e)})") from None
    except Exception as e:  # a damaged file fails inside torch's reader with many exception types
        raise UserError(f"{path} is not a PyTorch weights file ({_first_line(e)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors (save model.state_dict())")
    arrays = {str(key): value.detach().cpu().numpy() for key, value in state.items()}
    _check_finite(arrays, path)
    return arrays


def torchvision_to_keras(state_dict):
    """Maps torchvision's AlexNet state dict to `{layer_name: [kernel, bias]}` for `variant="owt"`.

    Conv weights go OIHW -> HWIO, linear weights `(out, in)` -> `(in, out)`, and
    fc6's rows are permuted from torch's (C, H, W) flatten order to Keras' (H, W, C).

    Args:
        state_dict: `{key: array}` with torchvision's keys (`features.0.weight`, ...).

    Example:
    >>> import numpy as np
    >>> sd = {"features.0.weight": np.zeros((64, 3, 11, 11)), "features.0.bias": np.zeros(64)}
    >>> torchvision_to_keras(sd)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    UserError: not a torchvision AlexNet state dict: missing features.3.weight, ...
    """
    expected = {f"{prefix}.{kind}" for prefix in TORCHVISION_LAYERS.values() for kind in ("weight", "bias")}
    missing = sorted(expected - set(state_dict), key=_natural)
    if missing:
        raise UserError(f"not a torchvision AlexNet state dict: missing {', '.join(missing)}")
    unexpected = sorted(set(state_dict) - expected, key=_natural)
    if unexpected:
        raise UserError(f"not a torchvision AlexNet state dict: unexpected {', '.join(unexpected)}")

    weights = {}
    for name, prefix in TORCHVISION_LAYERS.items():
        w = np.asarray(state_dict[f"{prefix}.weight"], np.float32)
        b = np.asarray(state_dict[f"{prefix}.bias"], np.float32)
        conv = name.startswith("conv")
        if w.ndim != (4 if conv else 2) or b.shape != (w.shape[0],):
            raise UserError(
                f"{name} ({prefix}): weight {w.shape} and bias {b.shape} are not a "
                f"{'Conv2d' if conv else 'Linear'} layer's"
            )
        if name == "fc6":
            w = _fc6_to_hwc(w, channels=weights["conv5"][0].shape[-1])
        weights[name] = [np.ascontiguousarray(w.transpose(2, 3, 1, 0) if conv else w.T), b]
    return weights


def _fc6_to_hwc(w, channels):
    """Reorders fc6's inputs from torch's (C, H, W) flatten to Keras' (H, W, C)."""
    units, inputs = w.shape
    side = math.isqrt(inputs // channels)
    if side * side * channels != inputs:
        raise UserError(f"fc6 has {inputs} inputs, which is not conv5's {channels} channels on a square map")
    return w.reshape(units, channels, side, side).transpose(0, 2, 3, 1).reshape(units, inputs)


def fetch_torchvision_weights(url=None, file_hash=None, cache_dir=None):
    """Downloads (or finds in the cache) torchvision's `alexnet-owt-7be5be79.pth`, hash-checked.

    Args:
        url: where to fetch from; defaults to `$ALEXNET_OWT_URL`, then torchvision's URL.
        file_hash: expected sha256; defaults to the published file's.
        cache_dir: cache directory; defaults to `CACHE_DIR`, then Keras' home.

    Returns:
        The local path.
    """
    url = url or os.environ.get(URL_ENV) or TORCHVISION_URL
    file_hash = file_hash or TORCHVISION_SHA256
    cache_dir = cache_dir or CACHE_DIR
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)  # get_file falls back to /tmp for a missing directory
    try:
        path = keras.utils.get_file(
            origin=url, file_hash=file_hash, hash_algorithm="sha256", cache_dir=cache_dir, cache_subdir="models"
        )
    except ValueError as e:
        if "hash" in str(e):
            raise UserError(
                f"the file from {url} does not have the expected sha256 {file_hash}; "
                "it is corrupt or not torchvision's alexnet-owt-7be5be79.pth"
            ) from None
        raise UserError(f"cannot download {url}: {_first_line(e)}") from None
    except Exception as e:  # get_file wraps every network failure in a bare Exception
        raise UserError(f"cannot download {url}: {_first_line(e)}") from None
    return pathlib.Path(path)


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
    path = _existing(weights)
    kind = _format(path)
    if kind == ".pth":
        _load_torchvision(model, path)
    elif kind == ".npz":
        layers, meta = _read_npz(path)
        _assign(model, layers, path.name, meta.get("dropout"))
    elif kind == ".keras":
        source = load_model(path)
        layers = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
        _assign(model, layers, path.name, _dropout_of(source))
    else:
        try:
            model.load_weights(path)
        except ValueError as e:
            raise UserError(f"{path.name} does not fit this model: {_first_line(e)}") from None
    return model


def load_model(path):
    """A ready model from a file: `.keras` (safe mode), or an AlexNet built around `.pth` or `.npz` weights.

    `.pth` builds `variant="owt"` with fc8's class count; `.npz` builds the
    variant, class count and dropout recorded by `export_npz`.

    Args:
        path: a `.keras`, `.pth` or `.npz` file.

    Example:
    >>> model = load_model("alexnet_owt.keras")  # doctest: +SKIP
    """
    path = _existing(path)
    kind = _format(path)
    if kind == ".keras":
        if not zipfile.is_zipfile(path):
            raise UserError(f"cannot load {path}: not a valid .keras file (a .keras model is a zip archive; this one is not)")
        try:
            # safe_mode: a .keras file cannot smuggle in lambdas or other code.
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as e:  # zip, h5 and deserialisation errors come in many types
            raise UserError(f"cannot load {path} as a Keras model: {_first_line(e)}") from None
    if kind == ".pth":
        layers = torchvision_to_keras(load_torchvision_state_dict(path))
        classes = layers["fc8"][1].shape[0]
        if classes < 1:
            raise UserError(f"{path.name} has {classes} classes in its last layer (classifier.6): nothing to predict")
        model = _build(path, "owt", classes=classes, class_wnids=_torchvision_wnids(classes))
        _assign(model, layers, path.name, TORCHVISION_DROPOUT)
        return model
    if kind == ".npz":
        layers, meta = _read_npz(path)
        if "variant" not in meta:
            raise UserError(f"{path.name} does not say which AlexNet variant it holds (write it with export_npz)")
        dropout, rate = meta.get("dropout", (None, 0.5))
        top = "fc8" in layers
        classes = int(np.shape(layers["fc8"][1])[0]) if top and np.ndim(layers["fc8"][1]) == 1 else 1000
        if classes < 1:
            raise UserError(f"{path.name} has {classes} classes in fc8: nothing to predict")
        model = _build(
            path,
            meta["variant"],
            include_top=top,
            classes=classes,
            dropout=dropout,
            dropout_rate=rate,
            class_wnids=meta.get("class_wnids"),
        )
        _assign(model, layers, path.name, meta.get("dropout"))
        return model
    raise UserError(f"{path.name} holds weights but no architecture: pass a .keras, .pth or .npz file")


def _build(path, variant, **kwargs):
    """`AlexNet(variant, **kwargs)` from a file's description; a description it rejects is the file's fault."""
    from .model import AlexNet

    try:
        return AlexNet(variant, **kwargs)
    except ValueError as e:
        raise UserError(f"{path.name} does not describe an AlexNet this package builds: {_first_line(e)}") from None


def export_npz(model, path):
    """Writes every layer's weights as `"<layer>/kernel"`, `"<layer>/bias"` plus `meta/*` entries.

    The meta entries (variant, dropout convention, class wnids) let `load_model`
    rebuild the model, with numpy alone and no pickles.

    Args:
        model: an `AlexNet`.
        path: the `.npz` file to write.

    Example:
    >>> export_npz(AlexNet("owt"), "alexnet_owt.npz")  # doctest: +SKIP
    """
    arrays = {
        f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w) for layer in model.layers for w in layer.weights
    }
    arrays["meta/variant"] = np.array(model.variant)
    if model.include_top:
        arrays["meta/dropout"] = np.array(model.dropout)
        arrays["meta/dropout_rate"] = np.array(model.dropout_rate, np.float64)
    if model.class_wnids is not None:
        arrays["meta/class_wnids"] = np.array(model.class_wnids)
    with open(path, "wb") as f:  # np.savez(path) would append ".npz" to other names
        np.savez(f, **arrays)


def convert(src, dst):
    """Converts weights between formats, typically torchvision's `.pth` to `.keras`.

    Args:
        src: a `.pth` state dict (builds `AlexNet("owt")` with fc8's class count),
            or an `.npz`/`.keras` file of ours.
        dst: `.keras` (model and preprocessing), `.weights.h5` or `.npz`.

    Returns:
        The converted model.

    Example:
    >>> convert("~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth", "alexnet_owt.keras")  # doctest: +SKIP
    """
    from .model import AlexNet

    dst = pathlib.Path(dst).expanduser()
    kind = _format(dst)
    if kind == ".pth":
        raise UserError("converting to .pth is not supported: choose .keras, .weights.h5 or .npz")
    if not dst.parent.is_dir():
        raise UserError(f"directory not found: {dst.parent}")
    if dst.is_dir():
        raise UserError(f"{dst} is a directory: give a file name such as {dst / ('alexnet' + kind)}")
    model = load_model(src)
    if not isinstance(model, AlexNet):
        raise UserError(
            f"{src} holds a {type(model).__name__}, not an AlexNet: convert reads torchvision .pth files "
            "and AlexNet .npz/.keras files"
        )
    bad = [w.path for w in model.weights if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
    if bad:
        raise UserError(f"refusing to convert {src}: its weights are not finite (NaN or inf) in {bad[0]}")
    # Written under a temporary name first, so a failed write never leaves a partial dst.
    tmp = dst.with_name(f".{dst.name[: -len(kind)]}.tmp{os.getpid()}{kind}")
    try:
        if kind == ".keras":
            model.save(tmp)
        elif kind == ".weights.h5":
            model.save_weights(tmp)
        else:
            export_npz(model, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        raise UserError(f"cannot write {dst}: {e.strerror or _first_line(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return model


def _load_torchvision(model, path):
    if getattr(model, "variant", None) != "owt":
        raise UserError(f"{path.name} is a torchvision AlexNet: load it into AlexNet(variant='owt')")
    _assign(model, torchvision_to_keras(load_torchvision_state_dict(path)), path.name, TORCHVISION_DROPOUT)


def _torchvision_wnids(classes):
    """torchvision's 1000 outputs follow the standard ImageNet order."""
    if classes != 1000:
        return None
    from .imagenet import imagenet_wnids

    return imagenet_wnids()


def _assign(model, layers, source, dropout=None):
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
                f"{source} does not fit this model: layer {name} needs shapes {_shapes(want)}, "
                f"the file has {_shapes(got)}"
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


def _read_npz(path):
    """`({layer: [kernel, bias]}, meta)` from an `export_npz` file; never unpickles.

    The meta entries are checked here (types and values), and every array must be finite.
    """
    from .layers import AlexNetDropout
    from .model import VARIANTS

    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not an .npz file (an .npz is a zip archive of arrays; this file is not)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as e:  # zip, zlib and numpy format errors; EOFError would become click's "aborted"
        raise UserError(f"{path} is not a readable .npz file ({_first_line(e)})") from None
    meta = {}
    if "meta/variant" in arrays:
        meta["variant"] = _meta_text(arrays.pop("meta/variant"), "meta/variant", path, choices=VARIANTS)
    if "meta/dropout" in arrays:
        mode = _meta_text(arrays.pop("meta/dropout"), "meta/dropout", path, choices=AlexNetDropout.MODES)
        if "meta/dropout_rate" not in arrays:
            raise UserError(f"{path.name}: meta/dropout has no meta/dropout_rate beside it (write it with export_npz)")
        rate = arrays.pop("meta/dropout_rate")
        if rate.ndim != 0 or rate.dtype.kind not in "fiu" or not 0.0 <= float(rate) < 1.0:
            raise UserError(f"{path.name}: meta/dropout_rate must be one number in [0, 1), got {rate.tolist()!r}")
        meta["dropout"] = (mode, float(rate))
    elif "meta/dropout_rate" in arrays:
        raise UserError(f"{path.name}: meta/dropout_rate without meta/dropout (write it with export_npz)")
    if "meta/class_wnids" in arrays:
        wnids = arrays.pop("meta/class_wnids")
        if wnids.ndim != 1 or wnids.dtype.kind != "U":
            raise UserError(f"{path.name}: meta/class_wnids must be a list of strings, got {wnids.dtype} {wnids.shape}")
        meta["class_wnids"] = [str(w) for w in wnids]
    unknown = sorted(key for key in arrays if key.startswith("meta/"))
    if unknown:
        raise UserError(f"{path.name}: unknown metadata {', '.join(unknown)} (expected {', '.join(_META)})")
    _check_finite(arrays, path)
    layers = {}
    for key in arrays:
        name, _, param = key.rpartition("/")
        if param not in _PARAMS:
            raise UserError(f"{path.name}: unexpected entry {key!r} (expected '<layer>/kernel' and '<layer>/bias')")
        layers.setdefault(name, {})[param] = arrays[key]
    for name, params in layers.items():
        if set(params) != set(_PARAMS):
            raise UserError(f"{path.name}: layer {name} needs both kernel and bias")
        layers[name] = [params[p] for p in _PARAMS]
    return layers, meta


def _meta_text(value, key, path, choices):
    """A one-string meta entry, checked against `choices`."""
    if value.ndim != 0 or value.dtype.kind != "U" or str(value) not in choices:
        raise UserError(f"{path.name}: {key} must be one of {', '.join(choices)}, got {value.tolist()!r}")
    return str(value)


def _check_finite(arrays, path):
    """`UserError` naming the first array with a NaN or inf: such weights are never loaded or written."""
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind in "fc" and not np.isfinite(value).all():
            raise UserError(
                f"{path} holds non-finite weights (NaN or inf) in {key}; they cannot be used "
                "(a diverged training run?): use an earlier checkpoint"
            )


def _starts_with(path, prefix):
    with open(path, "rb") as f:
        return f.read(len(prefix)) == prefix


def _format(path):
    name = pathlib.Path(path).name.lower()
    for suffix in FORMATS:
        if name.endswith(suffix):
            return suffix
    raise UserError(f"unknown weights format for {pathlib.Path(path).name}: expected one of {', '.join(FORMATS)}")


def _existing(path):
    path = pathlib.Path(os.fspath(path)).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a weights or model file")
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    return path


def _shapes(shapes):
    return " and ".join(str(s) for s in shapes)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _natural(key):
    """Sorts features.10 after features.8."""
    return [int(part) if part.isdigit() else part for part in key.split(".")]
