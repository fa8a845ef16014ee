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
on 2 cores) and caches the answer in ~/.cache/alexnet_keras. Before any image
is decoded its header is checked against the limits below (file bytes, pixels,
aspect ratio), so a decompression bomb or a 6000x1 strip is skipped and counted
(or, for one image, refused in one line) without costing gigabytes. Dangling
symlinks, symlink loops and file names that are not UTF-8 are skipped and
counted too.
"""

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import pathlib
import re
import sys
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

# --- limits on one input image: every file is checked against these from its
# size and header before it is read whole or decoded, so that no single file can
# cost more than a bounded amount of memory.
MAX_IMAGE_BYTES = 256 * 2**20  # the file is read whole before decoding
# Decoded pixels: PIL's decompression-bomb threshold (Image.MAX_IMAGE_PIXELS); 268 MB as uint8 RGB.
MAX_IMAGE_PIXELS = 89_478_485
# Long side / short side. The short side is resized to 256 first, so a resized image
# holds at most 256 x 12800 float RGB pixels (39 MB); a 6000x1 strip would take 4.7 GB.
MAX_ASPECT_RATIO = 50
LIMITS_TEXT = f"at most {MAX_IMAGE_PIXELS:,} pixels, an aspect ratio of {MAX_ASPECT_RATIO}:1 and {MAX_IMAGE_BYTES >> 20} MiB"

# Why a data-folder entry was skipped (the keys of `DataInfo.skip_reasons`).
SKIP_UNDECODABLE = "undecodable"
SKIP_NOT_JPEG_PNG = "not JPEG or PNG inside"
SKIP_LIMITS = "beyond the image limits"
SKIP_NON_UTF8 = "non-UTF-8 name"
SKIP_DANGLING = "dangling symlink"
SKIP_LOOP = "symlink loop"
SKIP_UNREADABLE = "unreadable"

# Validation files are put in one fixed pseudo-random order (the same in every run,
# whatever --seed), so that the first --validation-steps batches mix the classes.
VAL_ORDER_SEED = 2012


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


def within_limits(height, width):
    """True if a `height` x `width` image is within `MAX_IMAGE_PIXELS` and `MAX_ASPECT_RATIO`.

    One definition for Python ints (single images) and int64 tensors (tf.data pipelines).
    """
    return (
        (height >= 1) & (width >= 1) & (height * width <= MAX_IMAGE_PIXELS)
        & (height <= MAX_ASPECT_RATIO * width) & (width <= MAX_ASPECT_RATIO * height)
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(contents):
    return tf.equal(tf.strings.substr(contents, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)


def _png_shape(contents):
    """(height, width) from a PNG's IHDR chunk, which must come first: big-endian uint32s at bytes 16 and 20."""
    is_ihdr = tf.equal(tf.strings.substr(contents, 12, 4), b"IHDR")
    with tf.control_dependencies([tf.debugging.Assert(is_ihdr, ["PNG without a leading IHDR chunk"])]):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, 16, 8), tf.uint8), tf.int64)
    width = ((raw[0] * 256 + raw[1]) * 256 + raw[2]) * 256 + raw[3]
    height = ((raw[4] * 256 + raw[5]) * 256 + raw[6]) * 256 + raw[7]
    return height, width


def header_shape(contents):
    """(height, width, supported) of encoded image bytes, read from the header without decoding.

    `supported` is False (and the shape -1) for anything but JPEG and PNG, the
    formats the data pipelines take. A corrupt header raises `InvalidArgumentError`.
    """
    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int64)
        return shape[0], shape[1], tf.constant(True)

    def png():
        height, width = _png_shape(contents)
        return height, width, tf.constant(True)

    def other():
        return tf.constant(-1, tf.int64), tf.constant(-1, tf.int64), tf.constant(False)

    return tf.cond(tf.io.is_jpeg(contents), jpeg, lambda: tf.cond(_is_png(contents), png, other))


def decode_checked(contents):
    """`decode_image` for JPEG or PNG bytes whose header is within the limits; raises otherwise.

    The check runs before the decoder, so a decompression bomb never allocates its pixels.
    """
    height, width, supported = header_shape(contents)
    ok = supported & within_limits(height, width)
    check = tf.debugging.Assert(ok, ["image not JPEG/PNG or beyond the limits:", height, width])
    with tf.control_dependencies([check]):
        return decode_image(tf.identity(contents))


def _limits_error(path, height, width):
    return UserError(
        f"image {path} is {width}x{height} pixels, beyond the limits ({LIMITS_TEXT}); "
        "it was not decoded: crop or resize it first"
    )


def _pil_first_frame(path, contents):
    """GIF and BMP through PIL, header checked first; only the first frame is decoded.

    (TF's GIF decoder reads every frame of an animation before returning the first.)
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits apply below
            image = Image.open(io.BytesIO(contents))
        if image.format not in ("GIF", "BMP"):
            raise UserError(f"not a decodable image (JPEG, PNG, GIF or BMP): {path}")
        width, height = image.size
        if not within_limits(height, width):
            raise _limits_error(path, height, width)
        return np.asarray(image.convert("RGB"))
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"image {path} declares over {2 * MAX_IMAGE_PIXELS:,} pixels; it was not decoded") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise UserError(f"not a decodable image: {path}") from None


def read_image(path):
    """Reads and decodes one image file to uint8 RGB, after checking it against the limits.

    Raises `UserError` naming the file if it cannot be read, is not an image or is
    beyond the limits (`MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS`, `MAX_ASPECT_RATIO`).
    """
    try:
        size = os.stat(path).st_size
        if size > MAX_IMAGE_BYTES:
            raise UserError(f"image {path} is {size:,} bytes, over the {MAX_IMAGE_BYTES >> 20} MiB limit; not read")
        with open(path, "rb") as f:
            contents = f.read()
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e.strerror}") from None
    if not (contents.startswith(b"\xff\xd8\xff") or contents.startswith(_PNG_SIGNATURE)):
        return _pil_first_frame(path, contents)
    try:
        height, width, _ = (int(v) for v in header_shape(contents))
    except tf.errors.OpError:
        raise UserError(f"not a decodable image: {path}") from None
    if not within_limits(height, width):
        raise _limits_error(path, height, width)
    try:
        return decode_image(contents)
    except tf.errors.OpError:
        raise UserError(f"not a decodable image: {path}") from None


def load_image(path, spec, crop=True):
    """Reads, checks, decodes and `eval_transform`s one image file; `UserError` if it cannot."""
    return eval_transform(read_image(path), spec, crop=crop)


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
    skip_reasons: dict = dataclasses.field(default_factory=dict)  # reason (SKIP_*) -> files
    empty_classes: dict = dataclasses.field(default_factory=dict)  # split -> classes with no images

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
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skip_reasons.items())
            parts.append(f"{self.skipped} files skipped ({reasons})" if reasons else f"{self.skipped} files skipped")
        for split, names in self.empty_classes.items():
            parts.append(f"{len(names)} classes without {split} images")
        what = {
            "synthetic": "synthetic data (generated, not real images)",
            "folder": f"image folder {self.name}",
            "tfds": f"TFDS {self.name}",
        }[self.kind]
        return f"{what}: " + ", ".join(parts)


def _wnids(names):
    return list(names) if names and all(re.fullmatch(r"n\d{8}", n) for n in names) else None


def _info(name, kind, class_names, train_examples, val_examples, spec, batch_size, skipped=None, empty=None):
    """The one place a `DataInfo` is assembled, whatever the source.

    `skipped` maps skipped paths to their reason; `empty` maps a split to its classes without images.
    """
    skipped = skipped or {}
    reasons = {}
    for reason in skipped.values():
        reasons[reason] = reasons.get(reason, 0) + 1
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
        skipped_paths=sorted(skipped),
        skip_reasons=reasons,
        empty_classes={split: list(names) for split, names in (empty or {}).items() if names},
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
def _display(path):
    """A path that prints whatever its bytes: non-UTF-8 bytes show as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name):
    try:
        name.encode("utf-8")  # os.scandir keeps undecodable bytes as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _entry_kind(entry):
    """"dir", "file", None (something else: ignored) or a SKIP_* reason; never raises."""
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
    except OSError as e:  # is_dir()/is_file() follow symlinks: a loop raises ELOOP
        return SKIP_LOOP if e.errno == errno.ELOOP else SKIP_UNREADABLE
    return SKIP_DANGLING if entry.is_symlink() else None


def _scandir(path):
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError as e:
        raise UserError(f"cannot read folder {_display(path)}: {e.strerror}") from None


def _class_dirs(root, skipped=None):
    """Sorted class folder names in `root`; broken entries go to `skipped` (path -> (reason, detail))."""
    classes = []
    for entry in _scandir(root):
        if entry.name.startswith("."):
            continue
        kind = _entry_kind(entry)
        if kind == "dir":
            if not _is_utf8(entry.name):
                raise UserError(
                    f"class folder name is not valid UTF-8: {_display(entry.path)}; rename it (class names are text)"
                )
            classes.append(entry.name)
        elif kind not in (None, "file") and skipped is not None:
            skipped[entry.path] = (kind, "")
    return sorted(classes)


def _list_images(root, classes, name_filter=None, skipped=None):
    """(paths, labels) of the images in `root/<class>/`, labels by `classes` order.

    Image-named entries that cannot be used (dangling symlinks, symlink loops,
    non-UTF-8 names) go to `skipped` as path -> (reason, detail).
    """
    skipped = {} if skipped is None else skipped
    paths, labels = [], []
    for label, cls in enumerate(classes):
        names = []
        for entry in _scandir(os.path.join(root, cls)):
            if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            if name_filter is not None and not name_filter(entry.name):
                continue
            kind = _entry_kind(entry)
            if kind == "file":
                if _is_utf8(entry.name):
                    names.append(entry.name)
                else:
                    skipped[entry.path] = (SKIP_NON_UTF8, "")
            elif kind not in (None, "dir"):
                skipped[entry.path] = (kind, "")
        names.sort()
        paths += [os.path.join(root, cls, n) for n in names]
        labels += [label] * len(names)
    return paths, labels


def find_unusable(paths):
    """{path: (reason, detail)} for the files the pipelines cannot use (a parallel tf.data pass).

    Each file's header is checked first (`header_shape`, `within_limits`); only
    JPEG and PNG files within the limits are then decoded, so a decompression
    bomb is skipped without allocating its pixels. Reasons are the SKIP_* constants.
    """
    if not paths:
        return {}

    def check(index, path):
        contents = tf.io.read_file(path)
        height, width, supported = header_shape(contents)
        ok = supported & within_limits(height, width)
        refused = tf.where(supported, tf.constant(1, tf.int64), tf.constant(2, tf.int64))
        # Decode only what passed; using the decoded shape makes the decoder run.
        code = tf.cond(ok, lambda: tf.shape(decode_image(contents), out_type=tf.int64)[0] * 0, lambda: refused)
        return index, code, height, width

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
    ds = ds.map(check, AUTOTUNE, deterministic=False).ignore_errors().batch(65536)
    codes = np.full(len(paths), -1, np.int64)  # -1: the read or decode failed
    shapes = np.zeros((len(paths), 2), np.int64)
    for index, code, height, width in ds.as_numpy_iterator():
        codes[index] = code
        shapes[index, 0], shapes[index, 1] = height, width
    reasons = {-1: SKIP_UNDECODABLE, 1: SKIP_LIMITS, 2: SKIP_NOT_JPEG_PNG}
    return {
        p: (reasons[c], f"{w}x{h}" if c == 1 else "")
        for p, c, (h, w) in zip(paths, codes.tolist(), shapes.tolist(), strict=True)
        if c != 0
    }


def _cache_dir():
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "alexnet_keras"


def _unusable_cached(paths):
    """`find_unusable`, remembered under ~/.cache/alexnet_keras by file names, sizes and mtimes.

    A full decode pass costs about 0.3 ms an image on 2 cores (seconds for
    imagenette, minutes for ImageNet), so it runs once per unchanged file set.
    Files over `MAX_IMAGE_BYTES` are refused from their size, unread.
    """
    bad, stats = {}, []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            bad[p] = (SKIP_UNREADABLE, e.strerror or "")
            continue
        if st.st_size > MAX_IMAGE_BYTES:
            bad[p] = (SKIP_LIMITS, f"{st.st_size:,} bytes")
        else:
            stats.append((p, st.st_size, st.st_mtime_ns))
    key = hashlib.sha256(json.dumps(["unusable-v2", tf.__version__, LIMITS_TEXT, stats]).encode()).hexdigest()[:32]
    cache = _cache_dir() / f"unusable-{key}.json"
    try:
        return {**bad, **{p: tuple(v) for p, v in json.loads(cache.read_text()).items()}}
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    log.info("checking that %d images decode (once; the result is cached)", len(stats))
    found = find_unusable([p for p, _, _ in stats])
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(found))
        tmp.replace(cache)
    except OSError:
        pass  # an unwritable cache only costs a re-check next time
    return {**bad, **found}


def _warn_skipped(skipped, where):
    """One warning line: how many files were skipped under `where`, by reason, with examples."""
    by_reason = {}
    for path, (reason, detail) in sorted(skipped.items()):
        by_reason.setdefault(reason, []).append(_display(path) + (f" {detail}" if detail else ""))
    parts = []
    for reason, items in by_reason.items():
        limits = f", {LIMITS_TEXT}" if reason == SKIP_LIMITS else ""
        shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
        parts.append(f"{len(items)} {reason}{limits} ({shown})")
    warnings.warn(f"skipped {len(skipped)} image file(s) under {_display(where)}: " + "; ".join(parts), stacklevel=3)


def _drop_unusable(splits, where, skipped):
    """Removes unusable files from each (paths, labels), adding them to `skipped`; warns once."""
    skipped.update(_unusable_cached([p for paths, _ in splits for p in paths]))
    if skipped:
        _warn_skipped(skipped, where)
    kept = []
    for paths, labels in splits:
        pairs = [(p, y) for p, y in zip(paths, labels, strict=True) if p not in skipped]
        kept.append(([p for p, _ in pairs], [y for _, y in pairs]))
    return kept


def _empty_classes(classes, labels, split, where):
    """The classes with no images in a split, with a warning if there are any."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        shown = ", ".join(_display(c) for c in empty[:5]) + (", ..." if len(empty) > 5 else "")
        consequence = "their accuracy cannot be measured" if split == "val" else "the model cannot learn them"
        warnings.warn(
            f"{len(empty)} of {len(classes)} classes have no {split} images under {_display(where)} "
            f"({shown}): {consequence}",
            stacklevel=3,
        )
    return empty


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
    return decode_checked(tf.io.read_file(path))


def _files_dataset(paths, labels, spec, **kwargs):
    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32)))
    return _pipeline(ds, _read_and_decode, spec, shuffle_buffer=len(paths), **kwargs)


def _check_folder(path):
    if not os.path.isdir(path):
        raise UserError(f"data folder not found: {path}")


def _folder_classes(root, skipped=None):
    classes = _class_dirs(root, skipped)
    if not classes:
        raise UserError(f"no class folders in {root} (expected {root}/<class>/*.jpg)")
    return classes


def _fixed_shuffle(paths, labels):
    """`paths` and `labels` in the one pseudo-random order of `VAL_ORDER_SEED` (the same every run)."""
    order = np.random.default_rng(VAL_ORDER_SEED).permutation(len(paths))
    return [paths[i] for i in order], [labels[i] for i in order]


def _load_folder(path, spec, *, batch_size, seed, validation):
    _check_folder(path)
    layout = "expected PATH/train/<class>/ and PATH/val/<class>/"
    train_root, val_root = os.path.join(path, "train"), os.path.join(path, "val")
    if not os.path.isdir(train_root):
        raise UserError(f"{path} has no train/ folder ({layout})")
    if validation and not os.path.isdir(val_root):
        raise UserError(f"{path} has no val/ folder ({layout}; or pass validation=False)")
    skipped = {}
    classes = _folder_classes(train_root, skipped)
    if len(classes) < 2:
        raise UserError(f"{train_root} has only one class folder ({classes[0]}); need at least 2")
    if validation and _class_dirs(val_root, skipped) != classes:
        val_classes = set(_class_dirs(val_root))
        only_train = sorted(set(classes) - val_classes)[:3]
        only_val = sorted(val_classes - set(classes))[:3]
        raise UserError(
            f"train/ and val/ class folders differ in {path}: only in train {only_train}, only in val {only_val}"
        )
    roots = [train_root, val_root] if validation else [train_root]
    splits = [_list_images(root, classes, skipped=skipped) for root in roots]
    for (paths, _), root in zip(splits, roots, strict=True):
        if not paths:
            raise UserError(f"no JPEG or PNG images in {root}/<class>/")
    splits = _drop_unusable(splits, path, skipped)
    empty = {
        split: _empty_classes(classes, labels, split, path)
        for split, (_, labels) in zip(("train", "val"), splits, strict=False)  # no val split without validation
    }
    train_paths, train_labels = splits[0]
    if len(train_paths) < batch_size:
        raise UserError(f"{len(train_paths)} training images in {path}, fewer than one batch of {batch_size}")
    train_ds = _files_dataset(train_paths, train_labels, spec, train=True, batch_size=batch_size, seed=seed)
    val_ds, val_n = None, None
    if validation:
        val_paths, val_labels = _fixed_shuffle(*splits[1])
        val_ds = _files_dataset(val_paths, val_labels, spec, train=False, batch_size=batch_size)
        val_n = len(val_paths)
    info = _folder_info(path, classes, len(train_paths), val_n, spec, batch_size, skipped, empty)
    return train_ds, val_ds, info


def _folder_info(path, classes, train_examples, val_examples, spec, batch_size, skipped, empty):
    reasons = {p: reason for p, (reason, _) in skipped.items()}
    return _info(str(path), "folder", classes, train_examples, val_examples, spec, batch_size, reasons, empty)


# --- TFDS --------------------------------------------------------------------
class _NetworkRefused(Exception):
    """Raised inside TFDS when it tries to reach a host (not an OSError, so urllib3 does not retry it)."""


@contextlib.contextmanager
def _no_network():
    """Makes host-name lookups fail at once while TFDS prepares a dataset.

    TFDS would otherwise retry a download 10 times with backoff (3.5 minutes
    offline, and as long as it takes on a slow link). Yields the hosts asked for.
    """
    import socket

    asked, saved = [], socket.getaddrinfo

    def refuse(host, *args, **kwargs):
        asked.append(host)
        raise _NetworkRefused(f"no network access while preparing a dataset (asked for {host})")

    socket.getaddrinfo = refuse
    try:
        yield asked
    finally:
        socket.getaddrinfo = saved


@contextlib.contextmanager
def _quiet_absl():
    """TFDS logs absl warnings (e.g. "Variant folder ... has no dataset_info.json") on a first lookup."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tfds_configs_error(name, tfds):
    """A UserError for a `NAME/CONFIG` whose config does not exist, listing the valid ones."""
    base = name.split("/")[0].split(":")[0]
    try:
        configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS]
    except Exception:  # noqa: BLE001 -- only for the message
        configs = None
    if configs == []:
        return UserError(f"TFDS dataset {base!r} has no configs: use tfds:{base} instead of tfds:{name}")
    if configs:
        return UserError(f"TFDS dataset {base!r} has no config in {name!r}; valid configs: {', '.join(configs)}")
    return None


def _missing_manual_files(builder, manual_dir):
    """The files a download builder expects that are not in `manual_dir` (TFDS looks there before downloading).

    Empty when TFDS does not record the file names; the no-network guard then decides.
    """
    try:
        names = [info.filename for info in (builder.url_infos or {}).values()]
    except Exception:  # noqa: BLE001 -- checksums unreadable: let the guarded prepare tell
        return []
    if not names or not all(names):
        return []
    return sorted(n for n in names if not os.path.exists(os.path.join(manual_dir, n)))


def _tfds_builder(name, data_dir, manual_dir):
    """A prepared TFDS builder, or a one-line UserError saying why not.

    Nothing is downloaded: a dataset that is not prepared is prepared only from
    files already on disk (`manual_dir`, TFDS's download cache), with network
    lookups refused, so an offline or slow machine gets its answer in seconds.
    """
    import tensorflow_datasets as tfds

    if not name:
        raise UserError("empty TFDS name: use tfds:NAME[/CONFIG], e.g. tfds:imagenet2012")
    try:
        with _quiet_absl():
            builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown TFDS dataset {name!r}") from None
    except (ValueError, AssertionError) as e:  # an unknown config or version
        configs_error = _tfds_configs_error(name, tfds) if "/" in name else None
        if configs_error and "BuilderConfig" in str(e):
            raise configs_error from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"TFDS dataset {name!r}: {first}") from None
    with _quiet_absl():
        prepared = builder.is_prepared()
    if not prepared:
        where = f" --data_dir {data_dir}" if data_dir else ""
        how = f"download it first (`tfds build {name}{where}`) or give --tfds-manual-dir with its downloaded files"
        if builder.MANUAL_DOWNLOAD_INSTRUCTIONS is None:
            if manual_dir is None:
                raise UserError(
                    f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and must be downloaded: {how}"
                )
            missing = _missing_manual_files(builder, manual_dir)
            if missing:
                raise UserError(
                    f"TFDS dataset {name!r} is not prepared and --tfds-manual-dir {manual_dir} lacks "
                    f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}: put them there, or {how}"
                )
        config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
        with _no_network() as asked:
            try:
                builder.download_and_prepare(download_config=config)
            except Exception as e:  # noqa: BLE001 -- missing manual files, no network, ...: all one line
                if asked:
                    raise UserError(
                        f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and must be downloaded "
                        f"(it asked for {asked[0]}; alexnet-keras does not download): {how}"
                    ) from None
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise UserError(
                    f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and preparing it failed: {first}"
                ) from None
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
    raw = raw.map(lambda x, y: (x, tf.cast(y, tf.int32))).filter(lambda x, y: _tfds_usable(x, builder.name))
    ds = _pipeline(
        raw, decode_checked, spec, train=train, batch_size=batch_size, seed=seed, crop=crop,
        shuffle_buffer=_TFDS_SHUFFLE_BUFFER,
    )
    return ds, (examples if examples >= 0 else None)


def _tfds_usable(contents, name):
    """True for a JPEG/PNG within the limits; else prints one line (TFDS is read lazily, so not counted)."""
    height, width, supported = header_shape(contents)
    ok = supported & within_limits(height, width)

    def report():
        tf.print(f"alexnet-keras: warning: skipped an image of TFDS {name} (not JPEG/PNG or beyond the limits):",
                 width, "x", height, output_stream=sys.stderr)
        return tf.constant(False)

    return tf.cond(ok, lambda: tf.constant(True), report)


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
    skipped = {}
    classes = _folder_classes(root, skipped)
    name_filter = (lambda n: n.startswith(IMAGENET_VAL_PREFIX)) if only_imagenet_val else None
    paths, labels = _list_images(root, classes, name_filter, skipped)
    if not paths:
        which = f"{IMAGENET_VAL_PREFIX}* images" if only_imagenet_val else "JPEG or PNG images"
        raise UserError(f"no {which} in {root}/<class>/")
    [(paths, labels)] = _drop_unusable([(paths, labels)], root, skipped)
    empty = {split: _empty_classes(classes, labels, split, root)}
    ds = _files_dataset(paths, labels, spec, train=False, batch_size=batch_size, crop=crop)
    return ds, _folder_info(root, classes, None, len(paths), spec, batch_size, skipped, empty)
