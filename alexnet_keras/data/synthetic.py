"""Learnable ImageNet-shaped images generated on the fly (`data.load("synthetic")`).

Each class has a fixed template (a random colour plus a random 4x4 pattern,
upsampled); each image is its class's template plus per-image pixel noise, so a
small network learns it within a few hundred steps. Everything derives from the
seed: the same seed gives the same images in every run.
"""

import tensorflow as tf

from .info import make_info
from .transforms import AUTOTUNE, augment_square, eval_square, with_seeds

_TEMPLATE_GRID = 4  # template cells per side: low-frequency, so crops and flips keep the class


def synthetic_square(index, classes, resize, seed, stream):
    """One deterministic `resize` x `resize` image in [0, 255] and its label `index % classes`."""
    fold = tf.random.experimental.stateless_fold_in
    base = tf.constant([seed, 0], tf.int64)
    label = tf.cast(index % classes, tf.int32)
    class_seed = fold(fold(base, 0), label)  # stream 0: templates, shared by train and val
    colour = tf.random.stateless_normal([1, 1, 3], seed=fold(class_seed, 0))
    pattern = tf.random.stateless_normal([_TEMPLATE_GRID, _TEMPLATE_GRID, 3], seed=fold(class_seed, 1))
    template = tf.image.resize((colour + pattern)[None], [resize, resize])[0]
    # Uniform noise (std 30): cheaper than normal noise, and this is the hot path (benchmarks/RESULTS.md).
    noise = tf.random.stateless_uniform(
        [resize, resize, 3], seed=fold(fold(base, stream), index), minval=-52.0, maxval=52.0
    )
    return tf.clip_by_value(127.5 + 40.0 * template + noise, 0.0, 255.0), label


def synthetic_dataset(n, classes, spec, seed, *, train, batch_size, crop=True):
    """`n` synthetic examples, augmented and shuffled for training or centre-cropped for evaluation."""
    stream = 1 if train else 2
    ds = tf.data.Dataset.range(n)
    if train:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda i: synthetic_square(i, classes, spec["resize"], seed, stream), AUTOTUNE)
    if train:
        ds = with_seeds(ds, seed).map(lambda pair, s: (augment_square(pair[0], spec, s), pair[1]), AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = ds.map(lambda image, label: (eval_square(image, spec, crop), label), AUTOTUNE)
        ds = ds.batch(batch_size)
    return ds.prefetch(AUTOTUNE)


def synthetic_info(classes, train_examples, val_examples, spec, batch_size):
    names = [f"synthetic_{c}" for c in range(classes)]
    return make_info("synthetic", "synthetic", names, train_examples, val_examples, spec, batch_size)


def load_synthetic(spec, *, batch_size, seed, classes, train_examples, val_examples, validation):
    """`data.load` for `"synthetic"`: by default 20 training and 4 validation batches."""
    train_n = train_examples or 20 * batch_size
    val_n = val_examples or 4 * batch_size
    train_ds = synthetic_dataset(train_n, classes, spec, seed, train=True, batch_size=batch_size)
    val_ds = None
    if validation:
        val_ds = synthetic_dataset(val_n, classes, spec, seed, train=False, batch_size=batch_size)
    return train_ds, val_ds, synthetic_info(classes, train_n, val_n if validation else None, spec, batch_size)


def eval_synthetic(spec, *, batch_size, seed, classes, examples, crop):
    """`data.eval_dataset` for `"synthetic"`: the validation set `load` gives for the same seed."""
    n = examples or 4 * batch_size
    ds = synthetic_dataset(n, classes, spec, seed, train=False, batch_size=batch_size, crop=crop)
    return ds, synthetic_info(classes, None, n, spec, batch_size)
