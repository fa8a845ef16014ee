"""alexnet-keras: a faithful AlexNet (NIPS 2012) for Keras 3.

>>> import alexnet_keras
>>> model = alexnet_keras.AlexNet()          # the paper's two-tower network
>>> owt = alexnet_keras.AlexNet("owt")       # torchvision's layout

Names are imported on first use, so `import alexnet_keras` (and the CLI's
`--help`) stays fast and pulls in no backend until a model is needed.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "AlexNet": "model",
    "AlexNetDropout": "layers",
    "GroupedConv2D": "layers",
    "LocalResponseNormalization": "layers",
    "preprocess_input": "preprocessing",
    "profile_model": "profile",
    "summary_table": "profile",
    "UserError": "errors",
    "load_weights": "convert",
    "load_model": "convert",
    "export_npz": "convert",
    "decode_predictions": "imagenet",
    "plot_filters": "visualize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
