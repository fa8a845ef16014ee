"""Test-only: each process of a training run dumps its weights after every epoch.

Loaded by Python at start-up when this folder is on PYTHONPATH. With
`ALEXNET_TEST_DUMP=DIR`, `RunWriter.on_epoch_end` (which runs on every process;
only the chief's writes reach the run directory) also saves the model's weights
as `DIR/p{process}-e{epoch}.npz`, so a test can compare what each process holds.
Training itself runs unchanged.
"""

import os

_dump = os.environ.get("ALEXNET_TEST_DUMP")
if _dump:
    import numpy as np

    from alexnet_keras.training import callbacks, multihost

    _original = callbacks.RunWriter.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        _original(self, epoch, logs)
        weights = {v.path: np.asarray(v) for v in self.model.weights}
        np.savez(os.path.join(_dump, f"p{multihost.process_index()}-e{epoch + 1}.npz"), **weights)

    callbacks.RunWriter.on_epoch_end = on_epoch_end
