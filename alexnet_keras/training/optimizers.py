"""The paper's optimiser: SGD with momentum and weight decay coupled into the update.

Krizhevsky et al. (2012), §5:  v <- 0.9 v - 0.0005 eps w - eps dL/dw,  w <- w + v.
Keras' SGD computes v <- m v - eps g, w <- w + v, so feeding it g = dL/dw + 0.0005 w
gives exactly the paper's rule. Keras' own `weight_decay` is decoupled (applied to w
directly, outside the momentum), which differs from the second step on.
"""

import keras
from keras import ops

from ..constants import KERAS_PACKAGE


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class PaperSGD(keras.optimizers.SGD):
    """SGD with momentum and L2 decay coupled into the momentum update.

    Decay applies to kernels (tensors of rank >= 2) only: cuda-convnet's configs give
    biases no weight cost.

    Args:
        learning_rate: the paper's eps (0.01 at the start).
        momentum: 0.9 in the paper.
        coupled_decay: 0.0005 in the paper.

    Example:
    >>> opt = PaperSGD(0.01)
    >>> opt.coupled_decay
    0.0005
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, coupled_decay=5e-4, name="paper_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=False, name=name, **kwargs)
        self.coupled_decay = float(coupled_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_decay and len(variable.shape) >= 2:
            gradient = gradient + ops.cast(self.coupled_decay, variable.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        config["coupled_decay"] = self.coupled_decay
        return config
