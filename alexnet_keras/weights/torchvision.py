"""torchvision's AlexNet weights: the published file, reading `.pth` safely, and the layout change.

torchvision's `alexnet` (our `variant="owt"`) is saved as a PyTorch state dict:
conv weights OIHW, linear weights `(out, in)`, and fc6's inputs in the order of
an NCHW flatten. Keras wants HWIO, `(in, out)` and an NHWC flatten, so
`torchvision_to_keras` transposes every kernel and permutes fc6's rows.

torch is needed only to *read* `.pth` files, and `.pth` files are read with
`torch.load(weights_only=True)`, so a pickle that carries code is refused.
`AlexNet("owt", weights="imagenet")` is torchvision's IMAGENET1K_V1: this file,
downloaded once and checked against its sha256.
"""

import math
import os
import pathlib
import pickle
import zipfile

import keras
import numpy as np

from ..errors import UserError
from ..imagenet import imagenet_wnids
from .checks import check_finite, existing, first_line, starts_with

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
    path = existing(path)
    if not zipfile.is_zipfile(path) and not starts_with(path, _PICKLE_PROTO):
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
        raise UserError(f"{path} is not a PyTorch weights file ({first_line(e)})") from None
    except Exception as e:  # a damaged file fails inside torch's reader with many exception types
        raise UserError(f"{path} is not a PyTorch weights file ({first_line(e)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors (save model.state_dict())")
    arrays = {str(key): value.detach().cpu().numpy() for key, value in state.items()}
    check_finite(arrays, path)
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
        raise UserError(f"cannot download {url}: {first_line(e)}") from None
    except Exception as e:  # get_file wraps every network failure in a bare Exception
        raise UserError(f"cannot download {url}: {first_line(e)}") from None
    return pathlib.Path(path)


def class_wnids(classes):
    """The wnids of torchvision's outputs: the standard ImageNet-1k order when there are 1000, else None."""
    return imagenet_wnids() if classes == 1000 else None


def _natural(key):
    """Sorts features.10 after features.8."""
    return [int(part) if part.isdigit() else part for part in key.split(".")]
