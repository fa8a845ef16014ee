"""The search space of `alexnet-keras tune`: the default one, `--space FILE.json`, and its checks.

A space maps `TrainConfig` field names to one of

* a range: `{"min": 0.001, "max": 0.05, "sampling": "log"}` (`"linear"` by default);
* choices: `{"choices": ["paper", "caffe"]}`;
* a fixed value: `0.9`.

Plain Python: `declare(space, hp)` turns it into keras-tuner hyperparameters.

>>> sorted(DEFAULT_SPACE)
['batch_size', 'dropout_rate', 'init', 'lr', 'momentum', 'weight_decay']
>>> check_space({"lr": {"min": 0.1, "max": 0.1}})
Traceback (most recent call last):
...
alexnet_keras.errors.UserError: --space: lr has an empty range (min 0.1 >= max 0.1)
"""

import json
import math
import pathlib

from ..errors import UserError
from ..training.config import ABLATION_FIELDS, TrainConfig

# Issue 10's defaults: what the paper's recipe (§5) leaves open around its own values.
DEFAULT_SPACE = {
    "lr": {"min": 1e-3, "max": 5e-2, "sampling": "log"},
    "weight_decay": {"min": 1e-4, "max": 1e-3},
    "momentum": {"min": 0.8, "max": 0.95},
    "dropout_rate": {"min": 0.3, "max": 0.6},
    "init": {"choices": ["paper", "caffe"]},
    "batch_size": {"choices": [64, 128, 256]},
}
# What a space may tune: the recipe's numbers and choices, and the ablation switches.
TUNABLE = ("lr", "weight_decay", "momentum", "dropout_rate", "init", "batch_size", "dropout", *ABLATION_FIELDS)
SAMPLINGS = ("linear", "log")


def load_space(path=None):
    """The space in the JSON file `path` (the default space when None), checked."""
    if path is None:
        return check_space(DEFAULT_SPACE)
    path = pathlib.Path(path)
    try:
        space = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--space file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read --space file {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"--space file {path} is not valid JSON: {e}") from None
    if not isinstance(space, dict) or not space:
        raise UserError(f'--space file {path} must hold a JSON object of hyperparameters, e.g. {{"lr": 0.01}}')
    return check_space(space)


def check_space(space):
    """`UserError` (one line) for an unknown name, an empty range or a value `TrainConfig` refuses."""
    for name, spec in space.items():
        if name not in TUNABLE:
            raise UserError(f"--space: unknown hyperparameter {name!r} (tunable: {', '.join(TUNABLE)})")
        if isinstance(spec, dict) and "choices" in spec:
            choices = spec["choices"]
            if set(spec) != {"choices"} or not isinstance(choices, list):
                raise UserError(f'--space: {name} takes {{"choices": [...]}} with a list and nothing else')
            if not choices:
                raise UserError(f"--space: {name} has no choices")
            for value in choices:
                _check_value(name, value)
        elif isinstance(spec, dict):
            unknown = set(spec) - {"min", "max", "sampling"}
            low, high = spec.get("min"), spec.get("max")
            if unknown or not all(_is_number(v) for v in (low, high)):
                raise UserError(f'--space: {name} takes {{"min": A, "max": B, "sampling": "linear"|"log"}}')
            if spec.get("sampling", "linear") not in SAMPLINGS:
                raise UserError(f"--space: {name}'s sampling must be linear or log, got {spec['sampling']!r}")
            if low >= high:
                raise UserError(f"--space: {name} has an empty range (min {low:g} >= max {high:g})")
            if spec.get("sampling") == "log" and low <= 0:
                raise UserError(f"--space: {name}'s log range needs min > 0, got {low:g}")
            for value in (low, high):
                _check_value(name, value)
        else:
            _check_value(name, spec)
    return space


_INTEGER = ("batch_size", "towers")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(name, value):
    try:
        TrainConfig().update(**{name: value}).validate()
    except UserError as e:
        raise UserError(f"--space: {e}") from None


def declare(space, hp):
    """Declares `space` on a `keras_tuner.HyperParameters`; returns the names it tunes (fixed values are not)."""
    tuned = []
    for name, spec in space.items():
        if isinstance(spec, dict) and "choices" in spec:
            hp.Choice(name, spec["choices"])
        elif isinstance(spec, dict):
            kind = hp.Int if name in _INTEGER else hp.Float
            kind(name, spec["min"], spec["max"], sampling=spec.get("sampling", "linear"))
        else:
            hp.Fixed(name, spec)
            continue
        tuned.append(name)
    return tuned


def pin(space, **values):
    """`space` with `values` fixed (an explicit `--batch-size` leaves the search)."""
    return {**space, **{k: v for k, v in values.items() if v is not None}}


def batch_choices(space, default):
    """Every batch size the space can give (a range gives its ends: memory grows with the batch)."""
    spec = space.get("batch_size", default)
    if isinstance(spec, dict) and "choices" in spec:
        return sorted(spec["choices"])
    if isinstance(spec, dict):
        return [int(spec["min"]), int(spec["max"])]
    return [spec]
