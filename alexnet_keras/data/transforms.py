"""Per-image preprocessing (tf.data): decoding, resizing, crops, augmentation.

Preprocessing follows Krizhevsky et al. 2012 (§2, §4.1): the short side is
resized to 256 and the centre 256x256 kept; training then takes a random
input-size crop, a random horizontal flip and PCA colour noise. Evaluation takes
the centre crop (or, with `crop=False`, the whole 256x256 for ten-crop testing).
The normalisation is `preprocessing.normalize`, the one the models' own
`preprocess_input` uses.
"""

import tensorflow as tf

from ..preprocessing import get_spec, normalize

AUTOTUNE = tf.data.AUTOTUNE

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
NO_COLOUR_NOISE = "no_colour_noise"  # spec key set by `without_colour_noise`


# --- decoding and evaluation -------------------------------------------------
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


def _normalize(image, spec):
    return normalize(tf.cast(image, tf.float32), spec)


def _resize_center(image, spec):
    """Short side to `spec["resize"]`, then the centre square of that size (paper §2)."""
    image = resize_short_side(image, spec["resize"], antialias=spec["antialias"])
    return center_crop(image, spec["resize"])


def eval_square(square, spec, crop):
    """Centre crop (if `crop`) and normalisation of an already resized image."""
    if crop:
        square = center_crop(square, spec["input_size"])
    return _normalize(square, spec)


def eval_transform(image, spec, crop=True):
    """Evaluation preprocessing of one uint8 RGB image.

    Short side to `resize`, then the normalised centre `input_size` crop taken
    straight from the resized image (as torchvision does), or with `crop=False`
    the normalised centre `resize` x `resize` square (for ten-crop testing).
    """
    spec = get_spec(spec)
    resized = resize_short_side(image, spec["resize"], antialias=spec["antialias"])
    return _normalize(center_crop(resized, spec["input_size"] if crop else spec["resize"]), spec)


# --- training augmentation ---------------------------------------------------
def pca_color_noise(image, alphas):
    """Adds the paper's PCA colour noise to RGB pixels in [0, 255] (§4.1).

    Every pixel gets `EIGVEC @ (alphas * EIGVAL) * 255`; `alphas` has shape [3].
    No clipping, as in the paper and fb.resnet.torch.
    """
    alphas = tf.cast(alphas, tf.float32)
    offset = tf.linalg.matvec(tf.constant(PCA_EIGVEC), alphas * tf.constant(PCA_EIGVAL)) * 255.0
    return tf.cast(image, tf.float32) + offset


def without_colour_noise(spec):
    """A copy of `spec` whose training maps add no PCA colour noise (`--lr-schedule cc145`
    from epoch 67). Crops and flips stay as they were. For loading data only: the
    saved model's spec never has this key. `data.load(colour_noise=False)` uses it."""
    spec = get_spec(spec)
    spec[NO_COLOUR_NOISE] = True
    return spec


def augment_square(square, spec, seed):
    """Random crop, random flip, PCA colour noise and normalisation of a resize x resize image."""
    crop_seed, flip_seed, alpha_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    size = spec["input_size"]
    image = tf.image.stateless_random_crop(square, [size, size, 3], seed=crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    if spec.get(NO_COLOUR_NOISE):
        return _normalize(tf.cast(image, tf.float32), spec)
    alphas = tf.random.stateless_normal([3], seed=alpha_seed, stddev=PCA_ALPHA_STD)
    return _normalize(pca_color_noise(image, alphas), spec)


def train_transform(image, spec, seed):
    """Training preprocessing of one uint8 RGB image; `seed` is a shape-[2] int tensor."""
    spec = get_spec(spec)
    return augment_square(_resize_center(image, spec), spec, seed)


# --- datasets ------------------------------------------------------------------
def with_seeds(ds, seed):
    """Zips a shape-[2] stateless seed onto each element, new ones every epoch."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds)


def pipeline(ds, decode, spec, *, train, batch_size, seed=0, crop=True, shuffle_buffer=None):
    """Decodes, preprocesses and batches a dataset of `(encoded, label)`, as `data.load` describes."""
    if not train:
        ds = ds.map(lambda x, y: (eval_transform(decode(x), spec, crop), y), AUTOTUNE)
        return ds.batch(batch_size).prefetch(AUTOTUNE)
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = with_seeds(ds, seed).map(
        lambda pair, s: (train_transform(decode(pair[0]), spec, s), pair[1]),
        AUTOTUNE,
        deterministic=True,  # a resumed epoch must see the uninterrupted run's batches (issue 13)
    )
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
