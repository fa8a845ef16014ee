"""What `import alexnet_keras` does, each in a fresh interpreter.

* It registers the Keras classes, so `keras.saving.load_model` works after it,
  with no `custom_objects` (issue 12, item 8).
* On JAX it never imports TensorFlow.
* The CLI's launcher keeps `--help` free of Keras.
* A checkout's top-level simulations/ is `alexnet_keras.simulations`.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import alexnet_keras
from alexnet_keras import AlexNet, AlexNetDropout, PaperSGD

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

LOAD = """
import sys, numpy as np
{imports}
model = keras.saving.load_model(sys.argv[1])  # safe mode, no custom_objects
x = np.load(sys.argv[2])
np.testing.assert_allclose(model(x, training=False), np.load(sys.argv[3]), rtol=1e-5, atol=1e-6)
print(type(model).__name__, type(getattr(model, "optimizer", None)).__name__)
"""


def python(code, *args, env=ENV, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def saved(model, tmp_path, x):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras.ops.convert_to_numpy(model(x, training=False)))
    return path, tmp_path / "x.npy", tmp_path / "y.npy"


@pytest.mark.parametrize(
    "kwargs, side",
    [
        (dict(variant="2012", include_top=False, input_shape=(67, 67, 3)), 67),  # LRN and the grouped convs
        (dict(variant="owt", include_top=False, input_shape=(99, 99, 3)), 99),
    ],
    ids=["2012", "owt"],
)
def test_load_model_after_import_alexnet_keras(kwargs, side, tmp_path):
    x = np.random.default_rng(0).normal(size=(2, side, side, 3)).astype("float32") * 50
    files = saved(AlexNet(**kwargs), tmp_path, x)
    result = python(LOAD.format(imports="import alexnet_keras, keras"), *files, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[0] == "AlexNet"
    # The defect it fixes: without the import, Keras cannot find the class.
    bare = python(LOAD.format(imports="import keras"), *files, cwd=tmp_path)
    assert bare.returncode != 0 and "AlexNet" in bare.stderr


def test_compiled_model_with_paper_dropout_and_sgd_loads(tmp_path):
    """AlexNetDropout and PaperSGD are registered too (a training checkpoint names both)."""
    inputs = keras.Input((6,))
    model = keras.Model(inputs, AlexNetDropout(0.5, mode="paper")(keras.layers.Dense(3)(inputs)))
    model.compile(optimizer=PaperSGD(0.01), loss="mse")
    model.train_on_batch(np.ones((2, 6), "float32"), np.ones((2, 3), "float32"))  # builds the optimizer state
    files = saved(model, tmp_path, np.ones((2, 6), "float32"))
    result = python(LOAD.format(imports="import alexnet_keras, keras"), *files, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["Functional", "PaperSGD"]


def test_jax_never_imports_tensorflow():
    pytest.importorskip("jax")
    code = (
        "import sys, keras, alexnet_keras, alexnet_keras.predict, alexnet_keras.weights.torchvision, "
        "alexnet_keras.simulations.memory\n"
        "assert keras.backend.backend() == 'jax'\n"
        "model = alexnet_keras.AlexNet('owt', classes=10)\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if m.startswith('tensorflow'))[:5]\n"
        "print('ok')"
    )
    result = python(code, env=dict(ENV, KERAS_BACKEND="jax"))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def _imported_modules(stderr):
    """Top-level module names from `-X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_cli_help_imports_no_keras(how):
    if how == "console script":
        script = shutil.which("alexnet-keras", path=os.path.dirname(sys.executable)) or shutil.which("alexnet-keras")
        if script is None:
            pytest.skip("the alexnet-keras console script is not installed")
        command = [script, "--help"]
    else:
        command = [sys.executable, "-m", "alexnet_keras_cli", "--help"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=dict(ENV, PYTHONPROFILEIMPORTTIME="1")
    )
    assert result.returncode == 0 and "summary" in result.stdout, result.stderr[-2000:]
    imported = _imported_modules(result.stderr)
    assert {"click", "alexnet_keras"} <= imported  # the trace sees the imports
    heavy = imported & {"keras", "tensorflow", "jax", "numpy"}
    assert not heavy, sorted(heavy)


def test_public_names():
    assert len(set(alexnet_keras.__all__)) == len(alexnet_keras.__all__)
    missing = [name for name in alexnet_keras.__all__ if not hasattr(alexnet_keras, name)]
    assert not missing
    assert alexnet_keras.AlexNet is AlexNet and alexnet_keras.load_model.__module__ == "alexnet_keras.models.presets"
    assert callable(alexnet_keras.convert) and alexnet_keras.constants.VARIANTS == ("2012", "owt")


def test_checkout_simulations_are_the_package_simulations():
    code = "import alexnet_keras.simulations.paper as p, alexnet_keras; print(p.__file__); print(alexnet_keras.simulations.__name__)"
    result = python(code, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    path, name = result.stdout.split()
    assert pathlib.Path(path) == REPO / "simulations" / "paper.py" and name == "alexnet_keras.simulations"
