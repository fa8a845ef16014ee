"""Checks shared by every weights reader: the path, the format, finite values, one-line messages."""

import os
import pathlib

import numpy as np

from ..errors import UserError

FORMATS = (".pth", ".npz", ".weights.h5", ".keras")


def existing(path):
    """`path` as a `Path` to a file that exists, else `UserError`."""
    path = pathlib.Path(os.fspath(path)).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a weights or model file")
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    return path


def weights_format(path):
    """The suffix in `FORMATS` that `path` ends with (`.weights.h5` before `.h5`).

    >>> weights_format("run/best.weights.h5"), weights_format("ALEXNET.KERAS")
    ('.weights.h5', '.keras')
    """
    name = pathlib.Path(path).name.lower()
    for suffix in FORMATS:
        if name.endswith(suffix):
            return suffix
    raise UserError(f"unknown weights format for {pathlib.Path(path).name}: expected one of {', '.join(FORMATS)}")


def check_finite(arrays, path):
    """`UserError` naming the first array with a NaN or inf: such weights are never loaded or written."""
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind in "fc" and not np.isfinite(value).all():
            raise UserError(
                f"{path} holds non-finite weights (NaN or inf) in {key}; they cannot be used "
                "(a diverged training run?): use an earlier checkpoint"
            )


def starts_with(path, prefix):
    """Whether the file's first bytes are `prefix`."""
    with open(path, "rb") as f:
        return f.read(len(prefix)) == prefix


def shapes_text(shapes):
    """`[(2, 3), (3,)]` -> `"(2, 3) and (3,)"`."""
    return " and ".join(str(s) for s in shapes)


def first_line(error):
    """The first line of an exception's message (its type name when empty), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
