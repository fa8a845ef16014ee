"""The data entry points: `load` (train and validation), `eval_dataset` and `load_image`."""

import os

from ..preprocessing import get_spec
from .folders import eval_folder, load_folder
from .limits import read_image
from .synthetic import eval_synthetic, load_synthetic
from .tfds import eval_tfds, load_tfds
from .transforms import eval_transform, without_colour_noise


def _parse_source(source):
    """(kind, where) of a source: ("synthetic", None), ("tfds", NAME) or ("folder", PATH).

    Example:
    >>> _parse_source("tfds:imagenet2012"), _parse_source("synthetic")
    (('tfds', 'imagenet2012'), ('synthetic', None))
    """
    source = os.fspath(source)
    if source == "synthetic":
        return "synthetic", None
    if source.startswith("tfds:"):
        return "tfds", source[len("tfds:") :]
    return "folder", source


def load(
    source,
    *,
    batch_size,
    spec="paper",
    seed=0,
    tfds_data_dir=None,
    tfds_manual_dir=None,
    synthetic_classes=1000,
    synthetic_train_examples=None,
    synthetic_val_examples=None,
    validation=True,
    colour_noise=True,
):
    """Training and validation datasets for `source`.

    Args:
        source: `"synthetic"`, a folder `PATH` (`PATH/train/<class>/`,
            `PATH/val/<class>/`, JPEG or PNG) or `"tfds:NAME[/CONFIG]"`.
        batch_size: examples per batch.
        spec: preprocessing spec name or dict (`alexnet_keras.preprocessing`).
        seed: seeds shuffling, augmentation and synthetic images.
        tfds_data_dir, tfds_manual_dir: TFDS's data_dir and manual download dir.
        synthetic_classes: classes of the synthetic data.
        synthetic_train_examples, synthetic_val_examples: synthetic set sizes,
            by default 20 and 4 batches (the CLI's default smoke run is 20 steps).
        validation: False skips the validation set (`val_ds` is None).
        colour_noise: False trains without PCA colour noise (the same crops and flips).

    Returns:
        `(train_ds, val_ds, info)`. Both datasets yield `(images, labels)`:
        float32 `[B, S, S, 3]` normalised per `spec` and int32 `[B]`. `train_ds`
        is shuffled, augmented, drops the last partial batch and is not
        repeated (one pass is one epoch). `val_ds` takes centre crops.
        Undecodable folder images are skipped with a warning and listed in
        `info.skipped_paths`.
    """
    spec = get_spec(spec) if colour_noise else without_colour_noise(spec)
    kind, where = _parse_source(source)
    if kind == "synthetic":
        return load_synthetic(
            spec,
            batch_size=batch_size,
            seed=seed,
            classes=synthetic_classes,
            train_examples=synthetic_train_examples,
            val_examples=synthetic_val_examples,
            validation=validation,
        )
    if kind == "folder":
        return load_folder(where, spec, batch_size=batch_size, seed=seed, validation=validation)
    return load_tfds(
        where,
        spec,
        batch_size=batch_size,
        seed=seed,
        data_dir=tfds_data_dir,
        manual_dir=tfds_manual_dir,
        validation=validation,
    )


def eval_dataset(
    source,
    *,
    batch_size,
    spec="paper",
    crop=True,
    only_imagenet_val=False,
    split="val",
    tfds_data_dir=None,
    tfds_manual_dir=None,
    seed=0,
    synthetic_classes=1000,
    synthetic_examples=None,
):
    """An evaluation dataset `(ds, info)` of `(images, labels)` batches, in a fixed order.

    Args:
        source: as for `load`. A folder may be `PATH` with `PATH/<split>/<class>/`
            or a class-per-folder directory itself (no train/ needed).
        crop: True gives centre `input_size` crops; False gives the normalised
            `resize` x `resize` (256x256) images, for ten-crop evaluation.
        only_imagenet_val: keep only files named `ILSVRC2012_val_*` (ImageNet's
            own validation images; imagenette's val/ is mostly ImageNet train).
        split: "val" (TFDS "validation") or "train", or any TFDS split string.
        seed, synthetic_classes, synthetic_examples: for `"synthetic"`, which
            then yields the validation set `load` gives for the same seed.

    Labels index `info.class_names` (sorted folder names, or TFDS label names).
    """
    spec = get_spec(spec)
    kind, where = _parse_source(source)
    if kind == "synthetic":
        return eval_synthetic(
            spec, batch_size=batch_size, seed=seed, classes=synthetic_classes, examples=synthetic_examples, crop=crop
        )
    if kind == "tfds":
        return eval_tfds(
            where,
            spec,
            batch_size=batch_size,
            split=split,
            crop=crop,
            data_dir=tfds_data_dir,
            manual_dir=tfds_manual_dir,
        )
    return eval_folder(where, spec, batch_size=batch_size, split=split, crop=crop, only_imagenet_val=only_imagenet_val)


def load_image(path, spec, crop=True):
    """Reads, checks, decodes and `eval_transform`s one image file; `UserError` if it cannot."""
    return eval_transform(read_image(path), spec, crop=crop)
