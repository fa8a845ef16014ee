"""Top-k predictions for image files, with human-readable ImageNet class names.

Example:
>>> predict(["cat.jpg"], weights="alexnet-owt-7be5be79.pth", top=1)  # doctest: +SKIP
[[('n02123045', 'tabby', 0.61...)]]
"""

import os
import pathlib

import numpy as np

from .errors import UserError
from .evaluation.metrics import to_probabilities
from .imagenet import decode_predictions
from .models.presets import load_model


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
    from . import data  # TensorFlow's image decoding, loaded on use

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
    outputs = model.predict(batch, batch_size=32, verbose=0)
    broken = [path for path, row in zip(paths, outputs, strict=True) if not np.isfinite(row).all()]
    if broken:
        what = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the model"
        raise UserError(
            f"{what} gave non-finite outputs (NaN or inf) for {len(broken)} of {len(paths)} image(s), e.g. "
            f"{broken[0]}; its weights are probably NaN or inf (a diverged run): use an earlier checkpoint"
        )
    return decode_predictions(to_probabilities(outputs, model), top, getattr(model, "class_wnids", None))
