"""Warnings for ImageNet-trained models scored on images from ImageNet's train split.

The rule: a model with 1000 outputs is taken to be trained on ImageNet-1k's
train split (torchvision's IMAGENET1K_V1 weights for owt, or our own ImageNet
training). imagenette's `n<wnid>_<id>.JPEG` files come from that split, so when
the data holds files not named `ILSVRC2012_val_*`, `evaluate` warns and suggests
`only_imagenet_val=True` (`--only-imagenet-val`). Only the files the data
loaders read (`constants.IMAGE_EXTENSIONS`) are counted.
"""

import os

from ..constants import IMAGE_EXTENSIONS, IMAGENET_CLASSES, IMAGENET_VAL_PREFIX
from .classifiers import model_classes, model_spec


def _non_val_files(source):
    """How many image files under a folder source are not ILSVRC2012_val_* (its val/ split if any)."""
    root = os.fspath(source)
    if not os.path.isdir(root):
        return 0
    if os.path.isdir(os.path.join(root, "val")):
        root = os.path.join(root, "val")
    count = 0
    for _, _, files in os.walk(root):
        count += sum(1 for f in files if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(IMAGENET_VAL_PREFIX))
    return count


def contamination_warnings(models, source, only_imagenet_val=False):
    """Warnings for ImageNet-trained models scored on images from ImageNet's train split.

    See the module docstring for the rule.
    """
    if only_imagenet_val:
        return []
    trained = [m for m in models if model_classes(m) == IMAGENET_CLASSES]
    if not trained:
        return []
    count = _non_val_files(source)
    if not count:
        return []
    torchvision = any(model_spec(m).get("name") == "torchvision" for m in trained)
    who = "torchvision's IMAGENET1K_V1 weights were" if torchvision else "a 1000-class model was most likely"
    return [
        f"{count:,} image file(s) are not {IMAGENET_VAL_PREFIX}* and come from ImageNet's train split, "
        f"which {who} trained on; the error is optimistic. Use --only-imagenet-val."
    ]
