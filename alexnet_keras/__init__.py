"""alexnet-keras: a faithful AlexNet (NIPS 2012) for Keras 3.

>>> import alexnet_keras
>>> model = alexnet_keras.AlexNet()          # the paper's two-tower network
>>> owt = alexnet_keras.AlexNet("owt")       # torchvision's layout

`import alexnet_keras` imports Keras and registers AlexNet, its layers and
PaperSGD with it, so `keras.saving.load_model("alexnet.keras")` works after it
(as after `import keras_hub`). It never imports TensorFlow on another backend:
the TF-only modules (data, the training loop, scoring) load when used.

The `alexnet-keras` command starts through `alexnet_keras_cli`, a launcher
outside this package. While it is loaded this file imports nothing, so `--help`
needs no Keras; the commands import what they use.
"""

import importlib.util
import pathlib
import sys

__version__ = "0.1.0"

__all__ = [
    "AlexNet",
    "AlexNetDropout",
    "GroupedConv2D",
    "LocalResponseNormalization",
    "PaperSGD",
    "SpatialResponseNormalization",
    "UserError",
    "constants",
    "convert",
    "decode_predictions",
    "export_npz",
    "load_model",
    "load_weights",
    "plot_filters",
    "preprocess_input",
    "profile_model",
    "summary_table",
]


def _map_checkout_simulations():
    """In a source checkout, the top-level `simulations/` is `alexnet_keras.simulations`.

    An install puts it inside the package (pyproject's package-dir). Python started
    in a checkout's root imports this source tree instead, even after a
    non-editable `pip install .`, and here it sits beside the package.
    """
    package = pathlib.Path(__file__).resolve().parent
    source = package.parent / "simulations"
    name = f"{__name__}.simulations"
    if name in sys.modules or (package / "simulations").is_dir() or not (source / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(
        name, source / "__init__.py", submodule_search_locations=[str(source)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    sys.modules[__name__].simulations = module  # as the import system does for a submodule


_map_checkout_simulations()


def plot_filters(*args, **kwargs):
    """conv1's kernels as in the paper's Figure 3; see `alexnet_keras.plots.plot_filters`."""
    from .plots import plot_filters as plot  # matplotlib loads on use

    return plot(*args, **kwargs)


if "alexnet_keras_cli" not in sys.modules:  # the CLI launcher: commands import what they use
    from . import constants
    from .errors import UserError
    from .imagenet import decode_predictions
    from .layers import AlexNetDropout, GroupedConv2D, LocalResponseNormalization, SpatialResponseNormalization
    from .models import AlexNet, convert, load_model
    from .preprocessing import preprocess_input
    from .profile import profile_model, summary_table
    from .training.optimizers import PaperSGD
    from .weights import export_npz, load_weights
