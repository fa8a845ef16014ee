"""Weights files: torchvision's `.pth` (`torchvision.py`), our `.npz` (`npz.py`), and loading any of
them, `.weights.h5` and `.keras` into an AlexNet (`io.py`, with the one safe `.keras` loader)."""

from .io import load_keras, load_weights
from .npz import export_npz, read_npz

__all__ = ["export_npz", "load_keras", "load_weights", "read_npz"]
