"""The layers AlexNet needs that Keras lacks, written with `keras.ops` only.

* `LocalResponseNormalization` (`lrn.py`): the paper's "brightness normalisation" (§3.3).
* `SpatialResponseNormalization` (`spatial_norm.py`): the same-map norm of the 2012
  code's `cnorm2`, which the paper does not describe.
* `AlexNetDropout` (`dropout.py`): dropout as the paper ran it, or inverted.
* `GroupedConv2D` (`tower_conv.py`): a `keras.layers.Conv2D` whose channels are
  split into towers, as on the paper's two GPUs.

They import no TensorFlow and run on every Keras backend.
"""

from .dropout import AlexNetDropout
from .lrn import LocalResponseNormalization
from .spatial_norm import SpatialResponseNormalization
from .tower_conv import GroupedConv2D

__all__ = ["AlexNetDropout", "GroupedConv2D", "LocalResponseNormalization", "SpatialResponseNormalization"]
