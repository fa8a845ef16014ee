"""Input preprocessing specs that travel with a model's config.

A spec is a plain dict, so it serialises inside `AlexNet.get_config()` and a
saved `.keras` file knows how its inputs must be prepared:

* `"paper"`: RGB in [0, 255] minus the ImageNet mean pixel. The paper subtracts
  the mean *image*; like Caffe and most reproductions we use its per-channel mean.
* `"torchvision"`: RGB scaled to [0, 1], then torchvision's mean and std.

Both resize the short side to 256 and centre-crop to the input size for eval.
"""

import copy

from keras import ops

# ImageNet mean pixel, RGB, 0-255 (Caffe's ilsvrc_2012_mean; the usual constant).
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# torchvision's ImageNet normalisation (torchvision.models docs), RGB in [0, 1].
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

SPECS = {
    "paper": {
        "name": "paper",
        "input_size": 227,
        "resize": 256,
        "scale": 1.0,
        "mean": list(IMAGENET_MEAN_RGB),
        "std": [1.0, 1.0, 1.0],
        "antialias": False,
    },
    "torchvision": {
        "name": "torchvision",
        "input_size": 224,
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


def preprocess_input(x, spec="paper"):
    """Maps RGB pixels in [0, 255] (channels last) to the model's input range.

    Args:
        x: array or tensor of shape `(..., 3)`, RGB, values in [0, 255].
        spec: a spec name (`"paper"`, `"torchvision"`) or a spec dict, for example
            `model.preprocessing`.

    Example:
    >>> import numpy as np
    >>> float(preprocess_input(np.full((1, 1, 3), 255.0), "torchvision")[0, 0, 0])  # doctest: +ELLIPSIS
    2.248...
    """
    spec = get_spec(spec)
    x = ops.cast(ops.convert_to_tensor(x), "float32") * spec["scale"]
    return (x - ops.convert_to_tensor(spec["mean"], "float32")) / ops.convert_to_tensor(
        spec["std"], "float32"
    )
