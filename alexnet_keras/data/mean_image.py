"""The mean image of a training set (`compute_mean_image`), for `preprocessing.with_mean_image`.

[P] §2 subtracts "the mean activity over the training set from each pixel";
[CC] stores it as a 3x256x256 `data_mean` (convdata.py:39). Here one streaming
pass over the training images computes it after the same resize-short-side and
centre `resize` square that training uses (`transforms._resize_center`), summing
in float64 one batch at a time, so memory stays one batch whatever the set's size.
"""

import numpy as np
import tensorflow as tf

from ..errors import UserError
from ..preprocessing import get_spec
from .folders import folder_train_images
from .loader import _parse_source
from .synthetic import synthetic_square
from .tfds import tfds_train_images
from .transforms import AUTOTUNE, _resize_center

_DEFAULT_BATCH = 64  # 64 float32 256x256x3 squares: 50 MB in flight


def _first(element):
    """The image of an `(image, label, ...)` element, or the element itself."""
    return element[0] if isinstance(element, (tuple, list)) else element


def _squares(
    source, spec, *, batch_size, seed, tfds_data_dir, tfds_manual_dir, synthetic_classes, synthetic_train_examples
):
    """A dataset of the training set's `resize` x `resize` float32 squares, as training sees them before cropping."""
    if isinstance(source, tf.data.Dataset):
        return source.map(lambda *element: _resize_center(_first(element), spec), AUTOTUNE)
    kind, where = _parse_source(source)
    if kind == "synthetic":  # synthetic squares are generated at `resize`: no resize, as in training
        n = synthetic_train_examples or 20 * batch_size  # `data.load`'s default for this batch size
        return tf.data.Dataset.range(n).map(
            lambda i: synthetic_square(i, synthetic_classes, spec["resize"], seed, 1)[0], AUTOTUNE
        )
    if kind == "tfds":
        images = tfds_train_images(where, data_dir=tfds_data_dir, manual_dir=tfds_manual_dir)
    else:
        images = folder_train_images(where)
    return images.map(lambda image: _resize_center(image, spec), AUTOTUNE)


def compute_mean_image(
    source,
    *,
    spec="paper",
    batch_size=_DEFAULT_BATCH,
    seed=0,
    tfds_data_dir=None,
    tfds_manual_dir=None,
    synthetic_classes=1000,
    synthetic_train_examples=None,
):
    """The per-pixel mean of a training set's images: `(resize, resize, 3)` float64, RGB in [0, 255].

    Args:
        source: a folder `PATH` (its `train/<class>/` images, skipping the files
            `data.load` skips), `"synthetic"`, `"tfds:NAME[/CONFIG]"` (its train
            split) or a `tf.data.Dataset` of decoded `[H, W, 3]` images (or of
            `(image, label)` pairs).
        spec: the preprocessing spec (its `resize` and `antialias`).
        batch_size: images summed at a time. For `"synthetic"` without
            `synthetic_train_examples` it also sets the set's size, as in
            `data.load` (20 batches): pass training's batch size.
        seed, synthetic_classes, synthetic_train_examples: as for `data.load`.
        tfds_data_dir, tfds_manual_dir: as for `data.load`.

    Returns:
        The mean of the images after the short side is resized to `resize` and
        the centre `resize` square kept, accumulated in float64. Pass it to
        `preprocessing.with_mean_image`; the mean pixel stays the default.
    """
    spec = get_spec(spec)
    squares = _squares(
        source,
        spec,
        batch_size=batch_size,
        seed=seed,
        tfds_data_dir=tfds_data_dir,
        tfds_manual_dir=tfds_manual_dir,
        synthetic_classes=synthetic_classes,
        synthetic_train_examples=synthetic_train_examples,
    )
    size = spec["resize"]
    total, count = np.zeros((size, size, 3), np.float64), 0
    for batch in squares.batch(batch_size).prefetch(AUTOTUNE):
        batch = batch.numpy()
        total += batch.sum(axis=0, dtype=np.float64)
        count += len(batch)
    if count == 0:
        raise UserError(f"no training images in {source} to compute a mean image from")
    mean = total / count
    if not np.all(np.isfinite(mean)):
        raise UserError(f"the mean image of {source} is not finite")
    return mean
