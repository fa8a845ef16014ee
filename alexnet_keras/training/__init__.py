"""Training with the 2012 recipe, one job per module.

* `config`: `TrainConfig`, its validation and the defaults a run resolves (no Keras);
* `optimizers`: `PaperSGD`, SGD with the paper's coupled weight decay;
* `rundir`: the run directory: atomic, chief-only writes, records, history;
* `callbacks`: the learning-rate schedule, the stop on NaN or infinity, what a
  finished epoch writes and what a resume loads, the 2012 clock;
* `distribute`: the `tf.distribute` strategy, including the two-GTX-580 simulation;
* `loop`: `build_model` and `train(config)`.

`import alexnet_keras` loads `training.optimizers` (to register PaperSGD), which
runs this file: it re-exports only the plain-Python `TrainConfig`, never the loop
or `distribute`, so no TensorFlow comes in on other backends.
"""

from .config import TrainConfig

__all__ = ["TrainConfig"]
