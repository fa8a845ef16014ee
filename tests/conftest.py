"""Shared fixtures: the ../shared data (skipped when absent) and optional torch."""

import os
import pathlib

import pytest

try:
    # torchvision must load before TensorFlow: importing it after TF segfaults
    # (TF 2.21 with torch 2.14.1 / torchvision 0.29.1). torch alone is fine either way.
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:
    pass

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
_SHARED = pathlib.Path(os.environ.get("ALEXNET_SHARED", REPO.parent / "shared")).resolve()
# Notebooks and subprocesses find the shared data through this variable.
if _SHARED.is_dir():
    os.environ["ALEXNET_SHARED"] = str(_SHARED)

IN_CI = os.environ.get("CI", "").lower() == "true"


def shared_path(*parts):
    """A path under ../shared, or a clean skip on machines without it."""
    path = _SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture
def imagenette():
    return shared_path("data", "imagenette")


@pytest.fixture
def imagenet_samples():
    return shared_path("data", "imagenet-samples")


def require_torch():
    """Imports torch, or skips; under CI=true a missing torch is a failure."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("torch/torchvision are required under CI=true (install the 'torch' extra)")
        pytest.skip("torch not installed (pip install 'alexnet-keras[torch]')")
    return torch
