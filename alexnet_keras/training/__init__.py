"""Training with the 2012 recipe, one job per module.

* `config`: `TrainConfig`, its validation and the defaults a run resolves (no Keras);
* `optimizers`: `PaperSGD`, SGD with the paper's coupled weight decay;
* `rundir`: the run directory: atomic, chief-only writes, records, history;
* `callbacks`: the learning-rate schedule, the stop on NaN or infinity, what a
  finished epoch writes and what a resume loads, the 2012 clock;
* `distribute`: the `tf.distribute` strategy, including the two-GTX-580 simulation;
* `loop`: `build_model` and `train(config)`.

This file imports nothing: `import alexnet_keras` loads `training.optimizers`
(to register PaperSGD) and must not pull in TensorFlow on other backends.
"""
