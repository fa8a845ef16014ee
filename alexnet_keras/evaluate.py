"""`load_models`: model files for scoring, loaded in safe mode.

Interim home: this moves to `models/presets.py` (the package core's loading
factory); the scoring itself lives in `alexnet_keras.evaluation`.
"""

import os
import zipfile

from .errors import UserError
from .evaluation.classifiers import check_classifier


def load_models(paths):
    """Loads `.keras` files in safe mode (`.pth`/`.npz` through `alexnet_keras.convert`).

    Raises `UserError` (one line) when a file is missing, corrupt or not a Keras model.
    """
    paths = [os.fspath(p) for p in paths]
    for path in paths:  # check every path before the slow Keras import
        if os.path.isdir(path):
            raise UserError(f"{path} is a directory, not a model file (give a .keras file)")
        if not os.path.isfile(path):
            raise UserError(f"model file not found: {path}")
        if not path.endswith((".keras", ".pth", ".npz")):
            raise UserError(f"not a Keras model file (expected .keras): {path}")
        if path.endswith(".keras") and not zipfile.is_zipfile(path):
            raise UserError(f"cannot load {path}: not a valid .keras file (a .keras model is a zip archive; this one is not)")
    import keras

    from . import models as _models  # noqa: F401  registers AlexNet and its layers

    models = []
    for path in paths:
        if not path.endswith(".keras"):
            from .models.presets import load_model

            models.append(load_model(path))
            continue
        try:
            loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as e:  # zip, JSON and deserialisation errors come in many types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot load {path} as a Keras model: {first[:200]}") from None
        if not isinstance(loaded, keras.Model):
            raise UserError(f"{path} holds a {type(loaded).__name__}, not a Keras model")
        check_classifier(loaded, path)
        models.append(loaded)
    return models
