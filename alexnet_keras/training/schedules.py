"""Learning-rate schedules as functions of the 1-based epoch.

Epochs count from 1, as in `history.csv` and in cuda-convnet's logs ([CC1]
data.py:42 `curr_epoch = init_epoch`, default 1). "Epoch E: set epsw to X" in
[CC]'s log means that X applies from epoch E on: the run was stopped after epoch
E-1 and restarted with the new rate (docs/cuda-convnet-2012.md, Q3). So
`step:25,51,79` trains epochs 1-24 at `lr`, 25-50 at lr/10, 51-78 at lr/100 and
79 on at lr/1000. Keras numbers epochs from 0: 1-based epoch E is Keras epoch E-1.

`cc145` replays model 145's log ([CC] layers/layer-params-145.cfg:169-181):

| 1-based epochs | conv1 | every other layer | colour noise |
|---|---|---|---|
| 1-24 | 0.01 | 0.01 | on (0.1) |
| 25-50 | 0.001 | 0.001 | on |
| 51-66 | 1e-4 | 1e-4 | on |
| 67-71 | 1e-5 | 1e-4 | off |
| 72-78 | 0 | 1e-4 | off |
| 79- | 0 | 1e-5 | off |

(the values with the default `--lr 0.01`; other values scale every entry). The
run was killed after epoch 91, so `cc145` is meant with `--epochs 91`.

Not replayed: the bias lr of 2x the weight lr (epsB=0.02; the starting value is
inferred from model 153's file, not logged for 145, and sibling runs end with a
different epsB, so it is not certain); [CC]'s data scaling by 1/1.1 while the
noise is on and its noise magnitude (√eigenvalues, Q4); the second continuation
(lr back up to 0.001 at epoch 92, noise back on, killed at 135), whose
checkpoint may or may not be the one submitted. With lr 0 a layer takes no new
gradient step, but, as in [CC] (weights.cu:152), the momentum it carried still
decays by 0.9 per step.
"""

import dataclasses

DROP = 0.1  # [P] §5: "divide the learning rate by 10"


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """Fixed drops, optional per-layer rates and an optional end of colour noise.

    Args:
        drops: 1-based epochs from which every layer's lr is divided by 10 once more.
        layers: layer name -> ((first 1-based epoch, lr as a fraction of the base lr), ...):
            from that epoch on the layer trains at that rate, whatever the drops say.
        colour_noise_off: the 1-based epoch from which PCA colour noise is off, or None.

    Example:
    >>> s = StepSchedule(drops=(25, 51, 79))
    >>> [round(s.factor(e), 6) for e in (24, 25, 50, 51, 78, 79)]
    [1.0, 0.1, 0.1, 0.01, 0.01, 0.001]
    """

    drops: tuple = ()
    layers: dict = dataclasses.field(default_factory=dict)
    colour_noise_off: int | None = None

    def factor(self, epoch):
        """The lr of the layers without their own rate at 1-based `epoch`, as a fraction of the base lr."""
        return DROP ** sum(epoch >= d for d in self.drops)

    def layer_factor(self, epoch, layer):
        """The lr of `layer` at 1-based `epoch`, as a fraction of the base lr."""
        factor = self.factor(epoch)
        for first, value in self.layers.get(layer, ()):
            if epoch >= first:
                factor = value
        return factor

    def multiplier(self, epoch, layer):
        """What `PaperSGD` multiplies the global lr by for `layer` (the global lr is `factor`)."""
        return self.layer_factor(epoch, layer) / self.factor(epoch)

    def colour_noise(self, epoch):
        """Whether 1-based `epoch` trains with PCA colour noise."""
        return self.colour_noise_off is None or epoch < self.colour_noise_off

    @property
    def lr_layers(self):
        """The layers with a rate of their own (each gets a multiplier variable in `PaperSGD`)."""
        return tuple(sorted(self.layers))


# [CC] layers/layer-params-145.cfg:169 (25), 174 (51), 177-179 (conv1 at 67 and 72, noise off at 67), 180 (79).
CC145 = StepSchedule(drops=(25, 51, 79), layers={"conv1": ((67, 1e-3), (72, 0.0))}, colour_noise_off=67)
