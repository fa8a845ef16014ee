"""The ImageNet-1k class table (WordNet ids and names) and WordNet-id parsing.

The table, `alexnet_keras/resources/imagenet_classes.csv`, lists the 1000
ILSVRC-2012 classes in the standard order (sorted WordNet ids, the order of
torchvision's and Caffe's outputs) with their names; its header names the
published sources it was built from (tools/build_imagenet_classes.py).
"""

import csv
import functools
import importlib.resources
import re

import numpy as np

from .errors import UserError

WNID_RE = re.compile(r"n\d{8}")


def is_wnid(name):
    """Whether `name` is a WordNet id such as `n01440764`.

    >>> is_wnid("n01440764"), is_wnid("cat"), is_wnid("n01440764\\n")
    (True, False, False)
    """
    return isinstance(name, str) and WNID_RE.fullmatch(name) is not None


def wnids_or_none(names):
    """`names` as a list if every one is a WordNet id, else None."""
    names = list(names)
    return names if names and all(is_wnid(n) for n in names) else None


CLASS_TABLE = "resources/imagenet_classes.csv"


@functools.cache
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
