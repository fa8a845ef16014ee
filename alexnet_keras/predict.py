"""Top-k predictions with human-readable ImageNet class names.

The class table, `alexnet_keras/resources/imagenet_classes.csv`, lists the 1000
ILSVRC-2012 classes in the standard order (sorted WordNet ids, the order of
torchvision's and Caffe's outputs) with their names; its header names the
published sources it was built from (tools/build_imagenet_classes.py).

Example:
>>> predict(["cat.jpg"], weights="alexnet-owt-7be5be79.pth", top=1)  # doctest: +SKIP
[[('n02123045', 'tabby', 0.61...)]]
"""

import csv
import functools
import importlib.resources
import os
import pathlib

import numpy as np

from .errors import UserError

CLASS_TABLE = "resources/imagenet_classes.csv"


@functools.lru_cache(maxsize=None)
def imagenet_classes():
    """The 1000 ImageNet classes as `(wnid, name)` pairs, in index order.

    Example:
    >>> imagenet_classes()[0]
    ('n01440764', 'tench')
    """
    text = importlib.resources.files("alexnet_keras").joinpath(CLASS_TABLE).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return tuple((row["wnid"], row["name"]) for row in rows)


def imagenet_wnids():
    """The 1000 ImageNet WordNet ids in index order (a new list each call)."""
    return [wnid for wnid, _ in imagenet_classes()]


def decode_predictions(preds, top=5, class_wnids=None):
    """Top-k `(wnid, name, score)` per sample, like `keras.applications`' `decode_predictions`.

    Args:
        preds: array `(samples, classes)` of probabilities (or logits).
        top: how many classes per sample.
        class_wnids: the wnid of each output, e.g. `model.class_wnids`; `None`
            means the standard ImageNet-1k order (1000 outputs).

    Example:
    >>> import numpy as np
    >>> p = np.zeros((1, 1000)); p[0, 1] = 0.9
    >>> decode_predictions(p, top=1)
    [[('n01443537', 'goldfish', 0.9)]]
    """
    preds = np.asarray(preds)
    if preds.ndim != 2:
        raise UserError(f"decode_predictions expects an array (samples, classes), got shape {preds.shape}")
    if class_wnids is None:
        if preds.shape[1] != 1000:
            raise UserError(f"{preds.shape[1]} classes but no class_wnids: pass the model's class_wnids")
        class_wnids = imagenet_wnids()
    elif len(class_wnids) != preds.shape[1]:
        raise UserError(f"{len(class_wnids)} class_wnids for {preds.shape[1]} classes")
    names = dict(imagenet_classes())
    top = min(int(top), preds.shape[1])
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(class_wnids[i], names.get(class_wnids[i], class_wnids[i]), float(row[i])) for i in best])
    return results


def predict(images, model=None, weights=None, top=5):
    """Top-k classes for image files, prepared with the model's own preprocessing.

    Args:
        images: an image path or a list of them (JPEG, PNG, GIF, BMP).
        model: a Keras model, or a path to a `.keras` file (loaded in safe mode).
        weights: instead of `model`, a `.pth` (torchvision, builds the owt
            variant) or `.npz` weights file.
        top: classes per image.

    Returns:
        One list per image of `(wnid, name, probability)`, best first.

    Example:
    >>> predict("cat.jpg", model="alexnet_owt.keras", top=3)  # doctest: +SKIP
    """
    from . import data
    from .convert import load_model

    if (model is None) == (weights is None):
        raise UserError("pass exactly one of model (a .keras file or Keras model) and weights (.pth or .npz)")
    paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    if not paths:
        raise UserError("no images given")
    for path in paths:
        if pathlib.Path(path).is_dir():
            raise UserError(f"{path} is a directory, not an image file")
        if not pathlib.Path(path).is_file():
            raise UserError(f"image not found: {path}")
    source = model if model is not None else weights
    model = load_model(source) if isinstance(source, (str, os.PathLike)) else source
    spec = getattr(model, "preprocessing", None)
    if spec is None:
        what = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the model"
        raise UserError(f"{what} has no preprocessing spec, so it is not an AlexNet of this package; use one")
    batch = np.stack([np.asarray(data.load_image(path, spec)) for path in paths])
    expected = tuple(model.input_shape[1:3])
    if None not in expected and batch.shape[1:3] != expected:
        raise UserError(f"preprocessing gives {batch.shape[1:3]} images but the model takes {expected}")
    outputs = np.asarray(model.predict(batch, batch_size=32, verbose=0), np.float64)
    broken = [path for path, row in zip(paths, outputs, strict=True) if not np.isfinite(row).all()]
    if broken:
        what = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the model"
        raise UserError(
            f"{what} gave non-finite outputs (NaN or inf) for {len(broken)} of {len(paths)} image(s), e.g. "
            f"{broken[0]}; its weights are probably NaN or inf (a diverged run): use an earlier checkpoint"
        )
    if getattr(model, "classifier_activation", "softmax") is None:  # logits -> probabilities
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    return decode_predictions(outputs, top, getattr(model, "class_wnids", None))
