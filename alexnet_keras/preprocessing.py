"""Input preprocessing specs that travel with a model's config.

A spec is a plain dict, so it serialises inside `AlexNet.get_config()` and a
saved `.keras` file knows how its inputs must be prepared:

* `"paper"`: RGB in [0, 255] minus the ImageNet mean pixel. The paper subtracts
  the mean *image*; like Caffe and most reproductions we use its per-channel mean.
* `"torchvision"`: RGB scaled to [0, 1], then torchvision's mean and std.

Both resize the short side to 256 and centre-crop to the input size for eval.
`normalize` is the one normalisation: the data pipelines (tf.data) and
`preprocess_input` (any Keras backend) both call it.

The mean pixel (a list of 3 numbers in `"mean"`) is the default of every spec.
`with_mean_image(spec, mean)` gives a spec that subtracts a `resize` x `resize`
x 3 mean image instead, as [P] §2 and [CC] do (`data.compute_mean_image`
streams it from a training set). Its `"mean"` is then
`{"image": <base64 of an .npy>}`: the mean times `scale`, rounded to float16
(at most 1/16 of a grey level off; 393,344 bytes of .npy, 524,460 characters of
base64 for 256x256x3), so a saved model carries it in its config.
"""

import base64
import binascii
import copy
import functools
import io
import os
import tempfile

import numpy as np
from keras import ops

from .constants import DEFAULT_PREPROCESSING, INPUT_SIZE
from .errors import UserError

# ImageNet mean pixel, RGB, 0-255: the constant of keras.applications' "caffe" mode
# (keras/src/applications/imagenet_utils.py, `mean = [103.939, 116.779, 123.68]` in BGR).
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# torchvision's ImageNet normalisation (torchvision.models docs), RGB in [0, 1].
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

_INPUT_SIZE = {spec: INPUT_SIZE[variant] for variant, spec in DEFAULT_PREPROCESSING.items()}

SPECS = {
    "paper": {
        "name": "paper",
        "input_size": _INPUT_SIZE["paper"],
        "resize": 256,
        "scale": 1.0,
        "mean": list(IMAGENET_MEAN_RGB),
        "std": [1.0, 1.0, 1.0],
        "antialias": False,
    },
    "torchvision": {
        "name": "torchvision",
        "input_size": _INPUT_SIZE["torchvision"],
        "resize": 256,
        "scale": 1.0 / 255.0,
        "mean": list(TORCHVISION_MEAN),
        "std": list(TORCHVISION_STD),
        "antialias": True,
    },
}


def get_spec(spec):
    """Returns a copy of a spec given by name or as a dict."""
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if spec not in SPECS:
        raise ValueError(f"unknown preprocessing {spec!r}; choose from {sorted(SPECS)}")
    return copy.deepcopy(SPECS[spec])


# --- the mean image ------------------------------------------------------------
MEAN_IMAGE_DTYPE = np.float16  # compact, and exact to 1/16 grey level for pixels in [0, 255]
MEAN_IMAGE_FILE = "mean_image.npy"  # its name in a run directory (float64, as streamed)


def with_mean_image(spec, mean):
    """A copy of `spec` that subtracts the mean image `mean` instead of the mean pixel.

    Args:
        spec: a spec name or dict, e.g. `"paper"`.
        mean: `(resize, resize, 3)` RGB in [0, 255], e.g. `data.compute_mean_image(...)`.

    Returns:
        The spec with `"mean": {"image": ...}`: `mean * scale` as a float16 `.npy`
        in base64 (see the module docstring for its size).
    """
    spec = get_spec(spec)
    mean = np.asarray(mean, np.float64)
    size = spec["resize"]
    if mean.shape != (size, size, 3):
        raise UserError(f"mean image has shape {mean.shape}; spec {spec['name']!r} needs ({size}, {size}, 3)")
    stored = (mean * spec["scale"]).astype(MEAN_IMAGE_DTYPE)
    if not np.all(np.isfinite(stored)):
        raise UserError("mean image has non-finite values (or values beyond float16); recompute it")
    buffer = io.BytesIO()
    np.save(buffer, stored, allow_pickle=False)
    spec["mean"] = {"image": base64.b64encode(buffer.getvalue()).decode("ascii")}
    return spec


def has_mean_image(spec):
    """True when `spec` subtracts a mean image rather than the mean pixel."""
    return isinstance(get_spec(spec)["mean"], dict)


@functools.lru_cache(maxsize=4)
def _decode_mean_image(encoded, size):
    try:
        array = np.lib.format.read_array(io.BytesIO(base64.b64decode(encoded, validate=True)), allow_pickle=False)
    except (binascii.Error, ValueError, OSError) as e:
        raise UserError(f"the preprocessing spec's mean image cannot be read ({e}); recompute it") from None
    if array.dtype != MEAN_IMAGE_DTYPE or array.shape != (size, size, 3) or not np.all(np.isfinite(array)):
        raise UserError(
            f"the preprocessing spec's mean image is {array.dtype} {array.shape}, not finite float16 "
            f"({size}, {size}, 3); recompute it"
        )
    array = array.astype(np.float32)
    array.flags.writeable = False  # shared by every caller through the cache
    return array


def mean_image(spec):
    """The spec's mean image, float32 `(resize, resize, 3)` in the units of `x * scale`, or None."""
    spec = get_spec(spec)
    mean = spec["mean"]
    if not isinstance(mean, dict):
        return None
    if set(mean) != {"image"} or not isinstance(mean["image"], str):
        raise UserError(f"the preprocessing spec's mean must be 3 numbers or {{'image': ...}}, got keys {sorted(mean)}")
    return _decode_mean_image(mean["image"], spec["resize"])


def _mean_for(x, spec):
    """What `normalize` subtracts from `x`: the mean pixel, or the centre crop of the mean image.

    [CC] subtracts the *centre* crop of its mean image from every crop, wherever
    the crop was taken and flipped or not (convdata.py:137 `data_mean_crop`,
    convdata.py:216-226 `subtract_mean`), in training and in its multiview test;
    a `resize`-sized square gets the whole mean image. Offsets are floored, as
    [CC]'s border_size and `evaluation.crops` are. Ten-crop scoring normalises
    the 256 square before cutting its patches, so each patch loses the matching
    crop of the mean; [CC]'s centre crop needs the patches cut from unnormalised
    squares and then passed through `normalize`.
    """
    image = mean_image(spec)
    if image is None:
        return spec["mean"]
    height, width = tuple(x.shape)[-3:-1] if len(x.shape) >= 3 else (None, None)
    size = image.shape[0]
    if not (isinstance(height, int) and isinstance(width, int)) or height > size or width > size:
        raise ValueError(
            f"a mean-image spec needs images (..., H, W, 3) of known size up to {size}x{size}, got {tuple(x.shape)}"
        )
    top, left = (size - height) // 2, (size - width) // 2
    return image[top : top + height, left : left + width]


def normalize(x, spec, constant=None):
    """`(x * scale - mean) / std` for a spec (name or dict): the one normalisation.

    `mean` is the spec's mean pixel (the default), or for a spec made by
    `with_mean_image` the centre `H` x `W` crop of its mean image (see `_mean_for`).

    Args:
        x: float pixels `(..., 3)` (`(..., H, W, 3)` with a mean image): a NumPy
            array, a tf tensor (inside tf.data) or a Keras backend tensor.
        spec: a spec name or dict.
        constant: turns the mean and std into arrays `x` can be combined with; by
            default `np.float32` arrays, which NumPy, TF and JAX values take.

    Example:
    >>> [round(float(v), 3) for v in normalize(np.full(3, 255.0, np.float32), "paper")]
    [131.32, 138.221, 151.061]
    """
    spec = get_spec(spec)
    constant = constant or (lambda values: np.asarray(values, np.float32))
    return (x * spec["scale"] - constant(_mean_for(x, spec))) / constant(spec["std"])


def preprocess_input(x, spec=None, *, model=None, variant=None):
    """Maps RGB pixels in [0, 255] (channels last) to the model's input range.

    As `keras.applications.*.preprocess_input`, the result has the input's kind:
    a NumPy array gives a new float32 NumPy array (`x` itself is left unchanged),
    anything else (a tensor, a list) a float32 tensor of the Keras backend.

    Args:
        x: array or tensor of shape `(..., 3)`, RGB, values in [0, 255].
        spec: a spec name (`"paper"`, `"torchvision"`) or a spec dict.
        model: instead of `spec`: an AlexNet, whose own spec (`model.preprocessing`) is used.
        variant: instead of `spec`: `"2012"` or `"owt"`, for that variant's default spec.
            With none of the three: `"paper"`.

    Example:
    >>> preprocess_input(np.full((1, 1, 3), 255.0), variant="owt")[0, 0]  # doctest: +ELLIPSIS
    array([2.248..., 2.428..., 2.64...], dtype=float32)
    """
    spec = _spec_for(spec, model, variant)
    if isinstance(x, np.ndarray):
        return np.asarray(normalize(x.astype(np.float32), spec), np.float32)
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    return normalize(x, spec, constant=lambda values: ops.convert_to_tensor(values, "float32"))


def _spec_for(spec, model, variant):
    """The spec `preprocess_input` applies: given, the model's own, or the variant's default."""
    if sum(v is not None for v in (spec, model, variant)) > 1:
        raise ValueError("give one of spec, model and variant to preprocess_input, not several")
    if model is not None:
        own = getattr(model, "preprocessing", None)
        if not isinstance(own, dict):
            raise ValueError(f"{type(model).__name__} carries no preprocessing spec (an AlexNet does); pass spec=")
        return own
    if variant is not None:
        if str(variant) not in DEFAULT_PREPROCESSING:
            raise ValueError(f"variant must be one of {tuple(DEFAULT_PREPROCESSING)}, got {variant!r}")
        return DEFAULT_PREPROCESSING[str(variant)]
    return "paper" if spec is None else spec


# --- the mean image in a run directory -------------------------------------------
def save_mean_image(mean, path):
    """Writes the streamed mean (float64 `.npy`) to `path` atomically (temp file, then `os.replace`)."""
    mean = np.asarray(mean, np.float64)
    if not np.all(np.isfinite(mean)):
        raise UserError(f"mean image has non-finite values; not writing {path}")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mean_image-", suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, mean, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_mean_image(path):
    """The float64 mean image `save_mean_image` wrote (no pickles); `UserError` if unreadable."""
    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the mean image {path}: {e}; delete it to recompute it") from None
    if mean.ndim != 3 or mean.shape[-1] != 3 or not np.all(np.isfinite(mean)):
        raise UserError(f"{path} is not a finite (H, W, 3) mean image; delete it to recompute it")
    return mean
