"""`.npz` weights: every layer's kernel and bias plus the metadata that rebuilds the model.

Numpy alone reads and writes them, never unpickling anything: `export_npz`
writes `"<layer>/kernel"`, `"<layer>/bias"` and `meta/*` entries (variant,
dropout convention, class wnids), and `read_npz` checks all of them.
"""

import zipfile

import keras
import numpy as np

from ..constants import DROPOUT_MODES, VARIANTS
from ..errors import UserError
from .checks import check_finite, existing, first_line

_PARAMS = ("kernel", "bias")
_META = ("meta/variant", "meta/dropout", "meta/dropout_rate", "meta/class_wnids")  # what export_npz records


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
    arrays = {f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w) for layer in model.layers for w in layer.weights}
    arrays["meta/variant"] = np.array(model.variant)
    if model.include_top:
        arrays["meta/dropout"] = np.array(model.dropout)
        arrays["meta/dropout_rate"] = np.array(model.dropout_rate, np.float64)
    if model.class_wnids is not None:
        arrays["meta/class_wnids"] = np.array(model.class_wnids)
    with open(path, "wb") as f:  # np.savez(path) would append ".npz" to other names
        np.savez(f, **arrays)


def read_npz(path):
    """`({layer: [kernel, bias]}, meta)` from an `export_npz` file; never unpickles.

    `meta` holds `variant`, `dropout` as `(mode, rate)` and `class_wnids` where the
    file records them. The meta entries are checked here (types and values), and
    every array must be finite.
    """
    path = existing(path)
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not an .npz file (an .npz is a zip archive of arrays; this file is not)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as e:  # zip, zlib and numpy format errors; EOFError would become click's "aborted"
        raise UserError(f"{path} is not a readable .npz file ({first_line(e)})") from None
    meta = {}
    if "meta/variant" in arrays:
        meta["variant"] = _meta_text(arrays.pop("meta/variant"), "meta/variant", path, choices=VARIANTS)
    if "meta/dropout" in arrays:
        mode = _meta_text(arrays.pop("meta/dropout"), "meta/dropout", path, choices=DROPOUT_MODES)
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
    check_finite(arrays, path)
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
