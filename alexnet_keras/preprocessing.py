"""Input preprocessing specs that travel with a model's config.

A spec is a plain dict, so it serialises inside `AlexNet.get_config()` and a
saved `.keras` file knows how its inputs must be prepared:

* `"paper"`: RGB in [0, 255] minus the ImageNet mean pixel. The paper subtracts
  the mean *image*; like Caffe and most reproductions we use its per-channel mean.
* `"torchvision"`: RGB scaled to [0, 1], then torchvision's mean and std.

Both resize the short side to 256 and centre-crop to the input size for eval.
`normalize` is the one normalisation: the data pipelines (tf.data) and
`preprocess_input` (any Keras backend) both call it.
"""

import copy

import numpy as np
from keras import ops

from .constants import DEFAULT_PREPROCESSING, INPUT_SIZE

# ImageNet mean pixel, RGB, 0-255 (Caffe's ilsvrc_2012_mean; the usual constant).
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


def normalize(x, spec, constant=None):
    """`(x * scale - mean) / std` for a spec (name or dict): the one normalisation.

    Args:
        x: float pixels `(..., 3)`: a NumPy array, a tf tensor (inside tf.data)
            or a Keras backend tensor.
        spec: a spec name or dict.
        constant: turns the per-channel mean and std into arrays `x` can be
            combined with; by default `np.float32` arrays, which NumPy, TF and
            JAX values take.

    Example:
    >>> [round(float(v), 3) for v in normalize(np.full(3, 255.0, np.float32), "paper")]
    [131.32, 138.221, 151.061]
    """
    spec = get_spec(spec)
    constant = constant or (lambda values: np.asarray(values, np.float32))
    return (x * spec["scale"] - constant(spec["mean"])) / constant(spec["std"])


def preprocess_input(x, spec="paper"):
    """Maps RGB pixels in [0, 255] (channels last) to the model's input range.

    Args:
        x: array or tensor of shape `(..., 3)`, RGB, values in [0, 255].
        spec: a spec name (`"paper"`, `"torchvision"`) or a spec dict, for example
            `model.preprocessing`.

    Example:
    >>> float(preprocess_input(np.full((1, 1, 3), 255.0), "torchvision")[0, 0, 0])  # doctest: +ELLIPSIS
    2.248...
    """
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    return normalize(x, spec, constant=lambda values: ops.convert_to_tensor(values, "float32"))
