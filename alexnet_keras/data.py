"""Input pipelines (tf.data): single images, image folders, TFDS and synthetic data.

Preprocessing follows Krizhevsky et al. 2012 (§2, §4.1): the short side is
resized to 256 and the centre 256x256 kept; training then takes a random
input-size crop, a random horizontal flip and PCA colour noise. Evaluation takes
the centre crop (or, with `crop=False`, the whole 256x256 for ten-crop testing).

`load(source, batch_size=...)` returns `(train_ds, val_ds, info)` for a source:

* `"synthetic"`: learnable ImageNet-shaped images generated on the fly;
* a folder `PATH` with `PATH/train/<class>/` and `PATH/val/<class>/`;
* `"tfds:NAME[/CONFIG]"`: a TensorFlow Datasets builder, e.g. `tfds:imagenet2012`.

Folder images that do not decode are skipped and counted, never crash a run:
`load` decodes every file once up front (about 3 s for imagenette's 12.6k files
on 2 cores) and caches the answer in ~/.cache/alexnet_keras.
"""

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re
import warnings

import numpy as np
import tensorflow as tf

from .errors import UserError
from .preprocessing import get_spec

log = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGENET_VAL_PREFIX = "ILSVRC2012_val_"

# PCA of ImageNet RGB pixels in [0, 1], as fb.resnet.torch datasets/imagenet.lua
# publishes it (see alexnet-facts.md, "Data and evaluation"). EIGVEC's columns
# are the eigenvectors; rows are R, G, B.
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
PCA_ALPHA_STD = 0.1  # alpha_i ~ N(0, 0.1), once per image [P §4.1]


# --- single images -----------------------------------------------------------
def decode_image(contents):
    """Decodes JPEG/PNG/GIF/BMP bytes to RGB uint8 `[H, W, 3]`.

    Grayscale and CMYK JPEGs come out as RGB (libjpeg converts CMYK when asked
    for 3 channels); alpha is dropped; animations give their first frame.
    """
    image = tf.cond(
        tf.io.is_jpeg(contents),
        # libjpeg's accurate IDCT, as PIL (and so torchvision) uses; the default fast
        # one is up to 7 grey levels off, enough to flip predictions of pretrained weights.
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return image


def resize_short_side(image, size, antialias=False):
    """Bilinear resize so the short side is `size`, keeping the aspect; float32.

    The long side is floored, as torchvision's `Resize(size)` does.
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    short = tf.minimum(h, w)
    new_h = tf.where(h <= w, size, tf.cast(tf.floor(size * h / short), tf.int32))
    new_w = tf.where(h <= w, tf.cast(tf.floor(size * w / short), tf.int32), size)
    return tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=antialias)


def center_crop(image, size):
    """The centre `size` x `size` window, offsets `round((H - size) / 2)` half to even,
    exactly as torchvision's `CenterCrop` (Python's `round`)."""
    shape = tf.shape(image)
    top, left = [tf.cast(tf.round(tf.cast(shape[i] - size, tf.float32) / 2), tf.int32) for i in (0, 1)]
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def normalize(image, spec):
    """`(image * scale - mean) / std` for a preprocessing spec (name or dict); float32."""
    spec = get_spec(spec)
    image = tf.cast(image, tf.float32) * spec["scale"]
    return (image - tf.constant(spec["mean"], tf.float32)) / tf.constant(spec["std"], tf.float32)


def _resize_center(image, spec):
    """Short side to `spec["resize"]`, then the centre square of that size (paper §2)."""
    image = resize_short_side(image, spec["resize"], antialias=spec["antialias"])
    return center_crop(image, spec["resize"])


def _eval_square(square, spec, crop):
    """Centre crop (if `crop`) and normalisation of an already resized image."""
    if crop:
        square = center_crop(square, spec["input_size"])
    return normalize(square, spec)


def eval_transform(image, spec, crop=True):
    """Evaluation preprocessing of one uint8 RGB image.

    Short side to `resize`, then the normalised centre `input_size` crop taken
    straight from the resized image (as torchvision does), or with `crop=False`
    the normalised centre `resize` x `resize` square (for ten-crop testing).
    """
    spec = get_spec(spec)
    resized = resize_short_side(image, spec["resize"], antialias=spec["antialias"])
    return normalize(center_crop(resized, spec["input_size"] if crop else spec["resize"]), spec)


def load_image(path, spec, crop=True):
    """Reads, decodes and `eval_transform`s one image file; `UserError` if it cannot."""
    try:
        with open(path, "rb") as f:
            contents = f.read()
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e.strerror}") from None
    try:
        image = decode_image(contents)
    except tf.errors.OpError:
        raise UserError(f"not a decodable image: {path}") from None
    return eval_transform(image, spec, crop=crop)


# --- training augmentation ---------------------------------------------------
def pca_color_noise(image, alphas):
    """Adds the paper's PCA colour noise to RGB pixels in [0, 255] (§4.1).

    Every pixel gets `EIGVEC @ (alphas * EIGVAL) * 255`; `alphas` has shape [3].
    No clipping, as in the paper and fb.resnet.torch.
    """
    alphas = tf.cast(alphas, tf.float32)
    offset = tf.linalg.matvec(tf.constant(PCA_EIGVEC), alphas * tf.constant(PCA_EIGVAL)) * 255.0
    return tf.cast(image, tf.float32) + offset


def _augment_square(square, spec, seed):
    """Random crop, random flip, PCA colour noise and normalisation of a resize x resize image."""
    crop_seed, flip_seed, alpha_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    size = spec["input_size"]
    image = tf.image.stateless_random_crop(square, [size, size, 3], seed=crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    alphas = tf.random.stateless_normal([3], seed=alpha_seed, stddev=PCA_ALPHA_STD)
    return normalize(pca_color_noise(image, alphas), spec)


def train_transform(image, spec, seed):
    """Training preprocessing of one uint8 RGB image; `seed` is a shape-[2] int tensor."""
    spec = get_spec(spec)
    return _augment_square(_resize_center(image, spec), spec, seed)


def _with_seeds(ds, seed):
    """Zips a shape-[2] stateless seed onto each element, new ones every epoch."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds)


# --- dataset info ------------------------------------------------------------
@dataclasses.dataclass
class DataInfo:
    """What `load` and `eval_dataset` found.

    `class_wnids` are the ImageNet synset ids when the class names are wnids
    (folders named n01440764..., tfds imagenet2012), else None.
    """

    name: str
    kind: str  # "synthetic" | "folder" | "tfds"
    classes: int
    class_names: list = dataclasses.field(repr=False)
    class_wnids: list | None = dataclasses.field(repr=False)
    train_examples: int | None
    val_examples: int | None
    input_size: int
    batch_size: int
    skipped: int = 0
    skipped_paths: list = dataclasses.field(default_factory=list, repr=False)

    @property
    def synthetic(self):
        return self.kind == "synthetic"

    @property
    def steps_per_epoch(self):
        """Full training batches in one pass (train_ds drops the remainder)."""
        return None if self.train_examples is None else self.train_examples // self.batch_size

    def describe(self):
        """One line for logs and the CLI."""
        parts = [f"{self.classes} classes"]
        if self.train_examples is not None:
            parts.append(f"{self.train_examples} train")
        if self.val_examples is not None:
            parts.append(f"{self.val_examples} val")
        parts.append(f"{self.input_size}x{self.input_size}")
        if self.skipped:
            parts.append(f"{self.skipped} undecodable files skipped")
        what = {
            "synthetic": "synthetic data (generated, not real images)",
            "folder": f"image folder {self.name}",
            "tfds": f"TFDS {self.name}",
        }[self.kind]
        return f"{what}: " + ", ".join(parts)


def _wnids(names):
    return list(names) if names and all(re.fullmatch(r"n\d{8}", n) for n in names) else None


def _info(name, kind, class_names, train_examples, val_examples, spec, batch_size, skipped=()):
    """The one place a `DataInfo` is assembled, whatever the source."""
    return DataInfo(
        name=name,
        kind=kind,
        classes=len(class_names),
        class_names=list(class_names),
        class_wnids=_wnids(class_names),
        train_examples=train_examples,
        val_examples=val_examples,
        input_size=spec["input_size"],
        batch_size=batch_size,
        skipped=len(skipped),
        skipped_paths=list(skipped),
    )


# --- synthetic ---------------------------------------------------------------
_TEMPLATE_GRID = 4  # template cells per side: low-frequency, so crops and flips keep the class


def _synthetic_square(index, classes, resize, seed, stream):
    """One deterministic `resize` x `resize` image in [0, 255] and its label.

    Label `index % classes`; the image is that class's fixed template (a random
    colour plus a random 4x4 pattern, upsampled) plus per-image pixel noise,
    so a small network learns it within a few hundred steps.
    """
    fold = tf.random.experimental.stateless_fold_in
    base = tf.constant([seed, 0], tf.int64)
    label = tf.cast(index % classes, tf.int32)
    class_seed = fold(fold(base, 0), label)  # stream 0: templates, shared by train and val
    colour = tf.random.stateless_normal([1, 1, 3], seed=fold(class_seed, 0))
    pattern = tf.random.stateless_normal([_TEMPLATE_GRID, _TEMPLATE_GRID, 3], seed=fold(class_seed, 1))
    template = tf.image.resize((colour + pattern)[None], [resize, resize])[0]
    # Uniform noise (std 30) costs a quarter of normal noise; this loop is the hot path.
    noise = tf.random.stateless_uniform(
        [resize, resize, 3], seed=fold(fold(base, stream), index), minval=-52.0, maxval=52.0
    )
    return tf.clip_by_value(127.5 + 40.0 * template + noise, 0.0, 255.0), label


def _synthetic(n, classes, spec, seed, *, train, batch_size, crop=True):
    stream = 1 if train else 2
    ds = tf.data.Dataset.range(n)
    if train:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda i: _synthetic_square(i, classes, spec["resize"], seed, stream), AUTOTUNE)
    if train:
        ds = _with_seeds(ds, seed).map(
            lambda pair, s: (_augment_square(pair[0], spec, s), pair[1]), AUTOTUNE
        )
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = ds.map(lambda image, label: (_eval_square(image, spec, crop), label), AUTOTUNE)
        ds = ds.batch(batch_size)
    return ds.prefetch(AUTOTUNE)


def _synthetic_info(classes, train_examples, val_examples, spec, batch_size):
    names = [f"synthetic_{c}" for c in range(classes)]
    return _info("synthetic", "synthetic", names, train_examples, val_examples, spec, batch_size)


# --- image folders -----------------------------------------------------------
def _class_dirs(root):
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _list_images(root, classes, name_filter=None):
    """(paths, labels) of the images in `root/<class>/`, labels by `classes` order."""
    paths, labels = [], []
    for label, cls in enumerate(classes):
        with os.scandir(os.path.join(root, cls)) as entries:
            names = sorted(
                e.name
                for e in entries
                if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
                and (name_filter is None or name_filter(e.name))
            )
        paths += [os.path.join(root, cls, n) for n in names]
        labels += [label] * len(names)
    return paths, labels


def find_undecodable(paths):
    """The paths that `decode_image` cannot read or decode (a parallel tf.data pass)."""
    if not paths:
        return []

    def check(index, path):
        return index, tf.shape(_read_and_decode(path))

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
    ds = ds.map(check, AUTOTUNE, deterministic=False).ignore_errors().batch(65536)
    ok = np.zeros(len(paths), bool)
    for index, _ in ds.as_numpy_iterator():
        ok[index] = True
    return [p for p, good in zip(paths, ok) if not good]


def _cache_dir():
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "alexnet_keras"


def _undecodable_cached(paths):
    """`find_undecodable`, remembered under ~/.cache/alexnet_keras by file names, sizes and mtimes.

    A full decode pass costs about 0.3 ms an image on 2 cores (seconds for
    imagenette, minutes for ImageNet), so it runs once per unchanged file set.
    """
    stats = [(p, st.st_size, st.st_mtime_ns) for p, st in ((p, os.stat(p)) for p in paths)]
    key = hashlib.sha256(json.dumps([tf.__version__, stats]).encode()).hexdigest()[:32]
    cache = _cache_dir() / f"undecodable-{key}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    log.info("checking that %d images decode (once; the result is cached)", len(paths))
    bad = find_undecodable(paths)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(bad))
        tmp.replace(cache)
    except OSError:
        pass  # an unwritable cache only costs a re-check next time
    return bad


def _drop_undecodable(splits, where):
    """Removes undecodable files from each (paths, labels); warns; returns the skipped paths."""
    bad = set(_undecodable_cached([p for paths, _ in splits for p in paths]))
    if bad:
        shown = sorted(bad)[:3]
        warnings.warn(
            f"skipped {len(bad)} undecodable image file(s) under {where}: "
            + ", ".join(shown) + (", ..." if len(bad) > len(shown) else ""),
            stacklevel=2,
        )
    kept = []
    for paths, labels in splits:
        pairs = [(p, l) for p, l in zip(paths, labels) if p not in bad]
        kept.append(([p for p, _ in pairs], [l for _, l in pairs]))
    return kept, sorted(bad)


def _pipeline(ds, decode, spec, *, train, batch_size, seed=0, crop=True, shuffle_buffer=None):
    """Decodes, preprocesses and batches a dataset of `(encoded, label)`, as `load` describes."""
    if not train:
        ds = ds.map(lambda x, y: (eval_transform(decode(x), spec, crop), y), AUTOTUNE)
        return ds.batch(batch_size).prefetch(AUTOTUNE)
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = _with_seeds(ds, seed).map(
        lambda pair, s: (train_transform(decode(pair[0]), spec, s), pair[1]),
        AUTOTUNE,
        deterministic=False,  # the order is random anyway; don't wait on slow images
    )
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def _read_and_decode(path):
    return decode_image(tf.io.read_file(path))


def _files_dataset(paths, labels, spec, **kwargs):
    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32)))
    return _pipeline(ds, _read_and_decode, spec, shuffle_buffer=len(paths), **kwargs)


def _check_folder(path):
    if not os.path.isdir(path):
        raise UserError(f"data folder not found: {path}")


def _folder_classes(root):
    classes = _class_dirs(root)
    if not classes:
        raise UserError(f"no class folders in {root} (expected {root}/<class>/*.jpg)")
    return classes


def _load_folder(path, spec, *, batch_size, seed, validation):
    _check_folder(path)
    layout = "expected PATH/train/<class>/ and PATH/val/<class>/"
    train_root, val_root = os.path.join(path, "train"), os.path.join(path, "val")
    if not os.path.isdir(train_root):
        raise UserError(f"{path} has no train/ folder ({layout})")
    if validation and not os.path.isdir(val_root):
        raise UserError(f"{path} has no val/ folder ({layout}; or pass validation=False)")
    classes = _folder_classes(train_root)
    if len(classes) < 2:
        raise UserError(f"{train_root} has only one class folder ({classes[0]}); need at least 2")
    if validation and _class_dirs(val_root) != classes:
        val_classes = set(_class_dirs(val_root))
        only_train = sorted(set(classes) - val_classes)[:3]
        only_val = sorted(val_classes - set(classes))[:3]
        raise UserError(
            f"train/ and val/ class folders differ in {path}: only in train {only_train}, only in val {only_val}"
        )
    splits = [_list_images(train_root, classes)]
    if validation:
        splits.append(_list_images(val_root, classes))
    for (paths, _), root in zip(splits, (train_root, val_root)):
        if not paths:
            raise UserError(f"no JPEG or PNG images in {root}/<class>/")
    splits, skipped = _drop_undecodable(splits, path)
    train_paths, train_labels = splits[0]
    if len(train_paths) < batch_size:
        raise UserError(f"{len(train_paths)} training images in {path}, fewer than one batch of {batch_size}")
    train_ds = _files_dataset(train_paths, train_labels, spec, train=True, batch_size=batch_size, seed=seed)
    val_ds = _files_dataset(*splits[1], spec, train=False, batch_size=batch_size) if validation else None
    val_n = len(splits[1][0]) if validation else None
    return train_ds, val_ds, _folder_info(path, classes, len(train_paths), val_n, spec, batch_size, skipped)


def _folder_info(path, classes, train_examples, val_examples, spec, batch_size, skipped):
    return _info(str(path), "folder", classes, train_examples, val_examples, spec, batch_size, skipped)


# --- TFDS --------------------------------------------------------------------
def _tfds_builder(name, data_dir, manual_dir):
    """A prepared TFDS builder, or a one-line UserError saying why not."""
    import tensorflow_datasets as tfds

    if not name:
        raise UserError("empty TFDS name: use tfds:NAME[/CONFIG], e.g. tfds:imagenet2012")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown TFDS dataset {name!r}") from None
    if not builder.is_prepared():
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:  # noqa: BLE001 -- missing manual files, no network, ...: all one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and preparing it failed: {first}"
            ) from e
    if builder.info.supervised_keys is None:
        raise UserError(f"TFDS dataset {name!r} has no (image, label) supervised keys")
    return builder


def _tfds_split(builder, split):
    """The builder's dataset for `split` ("val" means validation, or test without it)."""
    if split == "val":
        known = builder.info.splits
        split = "test" if known and "validation" not in known and "test" in known else "validation"
    return split


# Encoded images: about 450 MB for ImageNet's JPEGs. Shards are shuffled too.
_TFDS_SHUFFLE_BUFFER = 4096


def _tfds_dataset(builder, split, spec, *, train, batch_size, seed=0, crop=True):
    """(dataset, examples) of one split, decoded and preprocessed like folder images."""
    import tensorflow_datasets as tfds

    image_key = builder.info.supervised_keys[0]
    if not isinstance(builder.info.features[image_key], tfds.features.Image):
        raise UserError(f"TFDS dataset {builder.name!r}: {image_key!r} is not an image feature")
    raw = builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=train,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
        decoders={image_key: tfds.decode.SkipDecoding()},  # decode in our parallel map, after shuffling
    )
    examples = int(raw.cardinality())
    raw = raw.map(lambda x, y: (x, tf.cast(y, tf.int32)))
    ds = _pipeline(
        raw, decode_image, spec, train=train, batch_size=batch_size, seed=seed, crop=crop,
        shuffle_buffer=_TFDS_SHUFFLE_BUFFER,
    )
    return ds, (examples if examples >= 0 else None)


def _tfds_info(builder, spec, batch_size, train_examples, val_examples):
    label = builder.info.features[builder.info.supervised_keys[1]]
    name = builder.name if not builder.builder_config else f"{builder.name}/{builder.builder_config.name}"
    return _info(name, "tfds", list(label.names), train_examples, val_examples, spec, batch_size)


# --- public entry points -----------------------------------------------------
def _parse_source(source):
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

    Returns:
        `(train_ds, val_ds, info)`. Both datasets yield `(images, labels)`:
        float32 `[B, S, S, 3]` normalised per `spec` and int32 `[B]`. `train_ds`
        is shuffled, augmented, drops the last partial batch and is not
        repeated (one pass is one epoch). `val_ds` takes centre crops.
        Undecodable folder images are skipped with a warning and listed in
        `info.skipped_paths`.
    """
    spec = get_spec(spec)
    kind, where = _parse_source(source)
    if kind == "synthetic":
        train_n = synthetic_train_examples or 20 * batch_size
        val_n = synthetic_val_examples or 4 * batch_size
        train_ds = _synthetic(train_n, synthetic_classes, spec, seed, train=True, batch_size=batch_size)
        val_ds = None
        if validation:
            val_ds = _synthetic(val_n, synthetic_classes, spec, seed, train=False, batch_size=batch_size)
        info = _synthetic_info(synthetic_classes, train_n, val_n if validation else None, spec, batch_size)
        return train_ds, val_ds, info
    if kind == "folder":
        return _load_folder(where, spec, batch_size=batch_size, seed=seed, validation=validation)
    builder = _tfds_builder(where, tfds_data_dir, tfds_manual_dir)
    train_ds, train_n = _tfds_dataset(builder, "train", spec, train=True, batch_size=batch_size, seed=seed)
    val_ds, val_n = None, None
    if validation:
        val_split = _tfds_split(builder, "val")
        val_ds, val_n = _tfds_dataset(builder, val_split, spec, train=False, batch_size=batch_size)
    return train_ds, val_ds, _tfds_info(builder, spec, batch_size, train_n, val_n)


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
        n = synthetic_examples or 4 * batch_size
        ds = _synthetic(n, synthetic_classes, spec, seed, train=False, batch_size=batch_size, crop=crop)
        return ds, _synthetic_info(synthetic_classes, None, n, spec, batch_size)
    if kind == "tfds":
        builder = _tfds_builder(where, tfds_data_dir, tfds_manual_dir)
        split = _tfds_split(builder, split)
        ds, n = _tfds_dataset(builder, split, spec, train=False, batch_size=batch_size, crop=crop)
        return ds, _tfds_info(builder, spec, batch_size, None, n)
    _check_folder(where)
    root = os.path.join(where, split)
    if not os.path.isdir(root):
        if any(os.path.isdir(os.path.join(where, s)) for s in ("train", "val")):
            raise UserError(f"{where} has no {split}/ folder")
        root = where  # a class-per-folder directory itself
    classes = _folder_classes(root)
    name_filter = (lambda n: n.startswith(IMAGENET_VAL_PREFIX)) if only_imagenet_val else None
    paths, labels = _list_images(root, classes, name_filter)
    if not paths:
        which = f"{IMAGENET_VAL_PREFIX}* images" if only_imagenet_val else "JPEG or PNG images"
        raise UserError(f"no {which} in {root}/<class>/")
    [(paths, labels)], skipped = _drop_undecodable([(paths, labels)], root)
    ds = _files_dataset(paths, labels, spec, train=False, batch_size=batch_size, crop=crop)
    return ds, _folder_info(root, classes, None, len(paths), spec, batch_size, skipped)
