"""AlexNet (`alexnet.py`, the graph) and the models that files describe (`presets.py`)."""

from .alexnet import AlexNet
from .presets import convert, load_model, load_models

__all__ = ["AlexNet", "convert", "load_model", "load_models"]
