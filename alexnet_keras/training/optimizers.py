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
        lr_layers: names of layers that train at their own rate: each gets a
            multiplier of the global lr (1 at the start), an optimizer variable
            in `lr_multipliers[name]`. Being a variable, a change reaches an
            already compiled train step, and checkpoints keep it. `cc145` uses
            it for conv1 (see `training.schedules`).

    Example:
    >>> opt = PaperSGD(0.01)
    >>> opt.coupled_decay
    0.0005
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, coupled_decay=5e-4, lr_layers=(), name="paper_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=False, name=name, **kwargs)
        self.coupled_decay = float(coupled_decay)
        self.lr_layers = tuple(lr_layers)
        self.lr_multipliers = {}
        self._multiplier_of = {}

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        for layer in self.lr_layers:
            owned = [v for v in variables if v.path.startswith(layer + "/")]
            if not owned:
                raise ValueError(f"lr_layers names {layer!r}, which has no trainable variables")
            multiplier = self.add_variable((), initializer="ones", name=f"lr_multiplier_{layer}")
            self.lr_multipliers[layer] = multiplier
            self._multiplier_of.update({self._var_key(v): multiplier for v in owned})

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_decay and len(variable.shape) >= 2:
            gradient = gradient + ops.cast(self.coupled_decay, variable.dtype) * variable
        multiplier = self._multiplier_of.get(self._var_key(variable))
        if multiplier is not None:
            learning_rate = ops.cast(learning_rate, variable.dtype) * ops.cast(multiplier, variable.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        config["coupled_decay"] = self.coupled_decay
        config["lr_layers"] = list(self.lr_layers)
        return config
