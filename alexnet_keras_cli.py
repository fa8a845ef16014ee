"""Starts the `alexnet-keras` command (`alexnet_keras.cli`) without importing Keras first.

`import alexnet_keras` imports Keras to register the package's classes: seconds,
and TensorFlow's start-up lines on stderr before the CLI could silence them.
While this module is in `sys.modules`, `alexnet_keras/__init__.py` skips those
imports, so `--help` stays instant; each command imports what it needs.

    alexnet-keras --help                  # the console script: alexnet_keras_cli:main
    python -m alexnet_keras_cli --help    # the same, e.g. from tests

Import it only in a process that runs the command: after it, `import alexnet_keras`
no longer provides `alexnet_keras.AlexNet` and the other top-level names.
"""

import sys

if __name__ == "__main__":  # `python -m alexnet_keras_cli`: the package looks for this name
    sys.modules.setdefault("alexnet_keras_cli", sys.modules[__name__])

from alexnet_keras.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    main()
