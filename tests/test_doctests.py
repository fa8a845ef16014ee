"""Every docstring example in the package runs, under the module's real import name.

`pytest --doctest-modules` would import `simulations/*.py` as a top-level package,
which is not how it is installed (`alexnet_keras.simulations`), so the examples are
collected here through importlib instead.
"""

import doctest
import importlib
import pkgutil

import pytest

import alexnet_keras
import alexnet_keras.simulations


def _modules():
    names = []
    for package in (alexnet_keras, alexnet_keras.simulations):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            names.append(info.name)
    return sorted(set(names))


MODULES = _modules()


def test_every_module_is_collected():
    assert "alexnet_keras.layers.lrn" in MODULES
    assert "alexnet_keras.simulations.memory" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
