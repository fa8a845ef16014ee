"""Ready models from files: `load_model`, `load_models` (for scoring) and `convert` between formats.

`AlexNet(weights=...)` loads weights into a model you build; these build the
model a file describes: a `.keras` file carries its own, torchvision's `.pth` is
`AlexNet("owt")` with fc8's class count, and our `.npz` records variant, class
count and dropout.

Example:
>>> model = load_model("alexnet-owt-7be5be79.pth")  # doctest: +SKIP
>>> convert("~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth", "alexnet_owt.keras")  # doctest: +SKIP
"""

import os
import pathlib

import keras
import numpy as np

from ..constants import PRECISIONS
from ..errors import UserError
from ..weights.checks import existing, first_line, weights_format
from ..weights.io import assign_weights, load_keras
from ..weights.npz import export_npz, read_npz
from ..weights.torchvision import TORCHVISION_DROPOUT, load_torchvision_state_dict, torchvision_to_keras
from ..weights.torchvision import class_wnids as torchvision_class_wnids
from .alexnet import AlexNet

MODEL_FORMATS = (".keras", ".pth", ".npz")  # files that describe a whole model


def load_model(path):
    """A ready model from a file: `.keras` (safe mode), or an AlexNet built around `.pth` or `.npz` weights.

    `.pth` builds `variant="owt"` with fc8's class count; `.npz` builds the
    variant, class count and dropout recorded by `export_npz`.

    Args:
        path: a `.keras`, `.pth` or `.npz` file.

    Example:
    >>> model = load_model("alexnet_owt.keras")  # doctest: +SKIP
    """
    path = existing(path)
    kind = weights_format(path)
    if kind == ".keras":
        return load_keras(path)
    if kind == ".pth":
        layers = torchvision_to_keras(load_torchvision_state_dict(path))
        classes = layers["fc8"][1].shape[0]
        if classes < 1:
            raise UserError(f"{path.name} has {classes} classes in its last layer (classifier.6): nothing to predict")
        model = _build(path, "owt", classes=classes, class_wnids=torchvision_class_wnids(classes))
        assign_weights(model, layers, path.name, TORCHVISION_DROPOUT)
        return model
    if kind == ".npz":
        layers, meta = read_npz(path)
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
        assign_weights(model, layers, path.name, meta.get("dropout"))
        return model
    raise UserError(f"{path.name} holds weights but no architecture: pass a .keras, .pth or .npz file")


def load_models(paths, precision=None):
    """The models to score: every path is checked before any is loaded, then each goes through `load_model`.

    `precision`: a dtype policy name (`constants.PRECISIONS`) to score under, or
    None for each file's own (float32 unless it was saved under a mixed policy).

    Raises `UserError` (one line) when a file is missing, corrupt, not a model or
    not an image classifier.
    """
    from ..evaluation.classifiers import check_classifier  # imported on use: evaluation may load TF modules

    paths = [os.fspath(p) for p in paths]
    for path in paths:
        if os.path.isdir(path):
            raise UserError(f"{path} is a directory, not a model file (give a .keras file)")
        if not os.path.isfile(path):
            raise UserError(f"model file not found: {path}")
        if not path.endswith(MODEL_FORMATS):
            raise UserError(f"not a Keras model file (expected .keras): {path}")
    models = []
    for path in paths:
        model = load_model(path)
        if path.endswith(".keras"):  # .pth and .npz build an AlexNet, always a classifier
            check_classifier(model, path)
        models.append(with_precision(model, precision, path) if precision else model)
    return models


def with_precision(model, precision, name="the model"):
    """`model` computing under the dtype policy `precision`: an AlexNet rebuilt from its config
    with `dtype=precision` and the same (float32) weights; fc8 stays float32 (see `AlexNet`)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if not isinstance(model, AlexNet):
        if model.dtype_policy.name == precision:
            return model
        raise UserError(f"{name} is a {type(model).__name__}, not an AlexNet: it runs only in its own precision")
    if model.dtype_policy.name == precision and model.head_dtype == "float32":
        return model
    twin = AlexNet.from_config({**model.get_config(), "dtype": precision, "head_dtype": "float32"})
    twin.set_weights(model.get_weights())
    return twin


def convert(src, dst, progress=None):
    """Converts weights between formats, typically torchvision's `.pth` to `.keras`.

    Args:
        src: a `.pth` state dict (builds `AlexNet("owt")` with fc8's class count),
            or an `.npz`/`.keras` file of ours.
        dst: `.keras` (model and preprocessing), `.weights.h5` or `.npz`.
        progress: told each of the 3 steps (read, check, write): an object with `start(total)`,
            `update(done, what)` and `close()`, such as `training.progress.Bar`; None for silence.

    Returns:
        The converted model.

    Example:
    >>> convert("~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth", "alexnet_owt.keras")  # doctest: +SKIP
    """
    dst = pathlib.Path(dst).expanduser()
    kind = weights_format(dst)
    if kind == ".pth":
        raise UserError("converting to .pth is not supported: choose .keras, .weights.h5 or .npz")
    if not dst.parent.is_dir():
        raise UserError(f"directory not found: {dst.parent}")
    if dst.is_dir():
        raise UserError(f"{dst} is a directory: give a file name such as {dst / ('alexnet' + kind)}")
    step = progress.update if progress is not None else (lambda done, what="": None)
    if progress is not None:
        progress.start(3)
    step(0, f"reading {src}")
    model = load_model(src)
    step(1, "checking the weights")
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
    step(2, f"writing {dst}")
    try:
        if kind == ".keras":
            model.save(tmp)
        elif kind == ".weights.h5":
            model.save_weights(tmp)
        else:
            export_npz(model, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        raise UserError(f"cannot write {dst}: {e.strerror or first_line(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    step(3)
    if progress is not None:
        progress.close()
    return model


def _build(path, variant, **kwargs):
    """`AlexNet(variant, **kwargs)` from a file's description; a description it rejects is the file's fault."""
    try:
        return AlexNet(variant, **kwargs)
    except ValueError as e:
        raise UserError(f"{path.name} does not describe an AlexNet this package builds: {first_line(e)}") from None
