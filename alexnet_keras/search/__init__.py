"""keras-tuner over the 2012 recipe: `tune` (a search) and `ablate` (the paper's ablations).

* `space`: the search space, its defaults and checks (plain Python);
* `arms`: the ablations as `TrainConfig` changes (plain Python);
* `trials`: the `HyperModel` whose trials are `train()` runs, and the tuner that
  adds the memory budget, the 2012-clock budget and resume;
* `tune`, `ablate`: the two searches and their reports.

Nothing is imported here, so the CLI can check its input before Keras starts.
"""
