"""The 2012 training recipe as a library function: `train(TrainConfig(...))`.

Krizhevsky et al. (2012), §5: SGD, batch 128, momentum 0.9, weight decay 0.0005
coupled into the update (`PaperSGD`), lr 0.01 divided by 10 when the validation
error stops improving (three times in about 90 epochs), the paper's initialisation.

A run directory holds everything needed to inspect or resume a run:

* `config.json`: the resolved config, marked `"schema": "alexnet-keras/run/1"`,
  and a record of every resume and what it changed;
* `history.csv`: one row per finished epoch (epochs count from 1);
* `checkpoints/last.keras` (every epoch) and `checkpoints/best.keras` (best
  validation top-1 error), with `checkpoints/last.json` describing `last.keras`;
* `backup/epoch-NNNN.weights.h5` and `backup/epoch-NNNN.json`: the weights,
  optimizer and dropout-seed state after epoch N, and the schedule and best-score
  state; the two newest epochs are kept. `epoch-NNNN.json` is written last, so
  it marks epoch N as finished;
* `state.json`: a copy of the newest epoch's record, for people and tools;
* `tensorboard/` and `summary.json` (how the run ended, and why it stopped).

Guarantees: every file is written to a temporary name, flushed to disk and then
renamed, so a kill leaves either the old or the new file; a kill loses at most
the epoch in progress; no weights with a NaN or infinity are ever saved; nothing
outside the run directory is written, and a folder that is not a run of this
package is never written into. Only the chief process writes (`RunDir.chief`).
"""

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time

import keras
import numpy as np

from .constants import (
    DEFAULT_DROPOUT,
    DEFAULT_INIT,
    DEFAULT_PREPROCESSING,
    DROPOUT_MODES,
    INIT_SCHEMES,
    STRATEGIES,
    TOWER_IMPLS,
    VARIANTS,
)
from .errors import UserError

SYNTHETIC_DEFAULT_EPOCHS = 1  # a few minutes on 2 CPU cores with 20 steps of 128
PAPER_EPOCHS = 90
PLATEAU_PATIENCE = 5  # the paper gives no number; an epoch count that suits 90 epochs
MAX_LR_DROPS = 3  # [P] §5: "reduced three times prior to termination"
RUN_SCHEMA = "alexnet-keras/run/1"  # marks config.json and the backup records as ours
MAX_SEED = 2**32 - 1  # keras.utils.set_random_seed seeds numpy, which takes 32 bits
BACKUP_KEEP = 2  # epochs kept in backup/: the newest and, if it is unreadable, the one before
TMP_TAG = ".tmp"  # inserted into the names of files being written; leftovers are removed on start

# Fields a resumed run may change; every other field keeps the value saved in config.json.
RESUME_MAY_CHANGE = (
    "epochs", "lr_schedule", "plateau_patience", "validation_steps", "strategy", "simulate_gtx580",
    "jit_compile", "steps_per_execution", "tfds_data_dir", "tfds_manual_dir", "run_dir",
)


# The allowed values of the enumerated fields (constants.py defines them once).
CHOICES = {
    "variant": VARIANTS,
    "init": INIT_SCHEMES,
    "dropout": DROPOUT_MODES,
    "tower_impl": TOWER_IMPLS,
    "strategy": STRATEGIES,
}

# (lowest allowed, whether None is allowed) for integer fields.
_INT_FIELDS = {
    "classes": (2, True),
    "epochs": (1, True),
    "steps_per_epoch": (1, True),
    "validation_steps": (1, True),
    "batch_size": (1, False),
    "plateau_patience": (1, False),
    "seed": (0, False),
    "steps_per_execution": (1, False),
    "synthetic_classes": (2, False),
    "synthetic_train_examples": (1, True),
    "synthetic_val_examples": (1, True),
}
# (lowest, whether the lowest is excluded, highest excluded) for float fields; all must be finite.
_FLOAT_FIELDS = {
    "lr": (0.0, True, math.inf),
    "momentum": (0.0, False, 1.0),
    "weight_decay": (0.0, False, math.inf),
    "dropout_rate": (0.0, False, 1.0),
}
_BOOL_FIELDS = ("simulate_gtx580", "jit_compile")
_PATH_FIELDS = ("tfds_data_dir", "tfds_manual_dir", "run_dir")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run. Printed at the start, saved as `config.json`.

    `None` fields are resolved when the run starts (see `resolve`), and the
    resolved values are what `config.json` records. `validate` checks every field.
    """

    variant: str = "2012"
    data: str = "synthetic"
    classes: int | None = None  # default: the data's class count
    epochs: int | None = None  # default: 90 on real data, 1 on synthetic
    steps_per_epoch: int | None = None  # default: one pass over the training set
    validation_steps: int | None = None  # default: the whole validation set
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "paper"  # "paper" (drop on plateau) or "step:25,51,79"
    plateau_patience: int = PLATEAU_PATIENCE
    init: str | None = None  # "paper" | "caffe" | "torch"; default: the variant's
    dropout: str | None = None  # "paper" | "inverted"; default: the variant's
    dropout_rate: float = 0.5
    tower_impl: str = "split"
    seed: int = 0
    strategy: str = "auto"
    simulate_gtx580: bool = False
    jit_compile: bool = False  # faster without XLA for this net on TF CPU (measured)
    steps_per_execution: int = 1
    synthetic_classes: int = 1000
    synthetic_train_examples: int | None = None
    synthetic_val_examples: int | None = None
    tfds_data_dir: str | None = None
    tfds_manual_dir: str | None = None
    run_dir: str | None = None

    @classmethod
    def field_names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def update(self, **values):
        """Returns a copy with `values` set, converting strings from `--set key=value`."""
        types = {f.name: f.type for f in dataclasses.fields(self)}
        changes = {}
        for key, value in values.items():
            if key not in types:
                raise UserError(f"unknown config field {key!r}; fields: {', '.join(types)}")
            changes[key] = _coerce(key, value, types[key])
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_file(cls, path):
        """A config from a JSON object of fields, or from a run's `config.json` (`{"config": {...}}`)."""
        return cls().update(**read_config_file(path))

    def as_dict(self):
        return dataclasses.asdict(self)

    def validate(self):
        """Raises `UserError` naming the first field with a value that cannot work; returns self."""
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value is None and name in ("init", "dropout"):
                continue
            if value not in allowed:
                raise UserError(f"bad value for {name}: {value!r} (choose from {', '.join(allowed)})")
        for name, (low, none_ok) in _INT_FIELDS.items():
            value = getattr(self, name)
            if value is None and none_ok:
                continue
            high = MAX_SEED if name == "seed" else None
            if type(value) is not int or value < low or (high is not None and value > high):
                span = f"from {low} to {high}" if high is not None else f">= {low}"
                raise UserError(f"bad value for {name}: {value!r} (expected an integer {span})")
        for name, (low, low_open, high) in _FLOAT_FIELDS.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < low or (low_open and value == low) or value >= high:
                span = f"{'>' if low_open else '>='} {low:g}" + (f" and < {high:g}" if math.isfinite(high) else "")
                raise UserError(f"bad value for {name}: {value!r} (expected a finite number {span})")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"bad value for {name}: {getattr(self, name)!r} (expected true or false)")
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UserError(f"bad value for {name}: {value!r} (expected a path)")
        if not isinstance(self.data, str) or not self.data:
            raise UserError(f"bad value for data: {self.data!r} (expected 'synthetic', a folder or tfds:NAME)")
        if not isinstance(self.lr_schedule, str):
            raise UserError(f"bad value for lr_schedule: {self.lr_schedule!r} (expected 'paper' or 'step:E1,E2,...')")
        parse_schedule(self.lr_schedule, self.epochs)
        return self


def read_config_file(path):
    """The fields in a JSON config file, as a dict; `UserError` for anything else."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}" if not path.exists() else f"config file {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text; it must hold a JSON object of TrainConfig fields") from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"config file {path} is not valid JSON: {e}") from None
    if isinstance(values, dict) and "config" in values:
        values = values["config"]
    if not isinstance(values, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(values), "a number")
        raise UserError(f'config file {path} holds {kind}; it must hold a JSON object of TrainConfig fields, '
                        'e.g. {"batch_size": 64}')
    return values


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false"}


def _coerce(key, value, annotation):
    if not isinstance(value, str) or annotation in ("str", "str | None"):
        return value
    if value.lower() in ("none", "null") and "None" in str(annotation):
        return None
    kind = next((k for k in ("bool", "int", "float") if k in str(annotation)), None)
    try:
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise UserError(f"bad value for {key}: {value!r} (expected {_EXPECTED[kind]})") from None
    return value


def parse_schedule(spec, epochs):
    """`"paper"` -> None (plateau); `"step:25,51,79"` -> sorted epoch boundaries."""
    if spec == "paper":
        return None
    if spec.startswith("step:"):
        try:
            boundaries = sorted(int(b) for b in spec[5:].split(","))
        except ValueError:
            boundaries = None
        if boundaries and all(0 < b for b in boundaries):
            return boundaries
    raise UserError(f"bad --lr-schedule {spec!r}: use 'paper' or 'step:E1,E2,...' (epochs, e.g. step:25,51,79)")


def library_versions():
    import numpy
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


# --- the run directory -----------------------------------------------------------
def _tmp_name(name):
    # "last.keras" -> "last.tmp.keras": Keras picks the format from the ending.
    stem, dot, rest = name.partition(".")
    return f"{stem}{TMP_TAG}{dot}{rest}" if dot else name + TMP_TAG


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fingerprint(path):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class RunDir:
    """The one way into a run directory.

    Every write goes to a temporary name, is flushed to disk and renamed over the
    real name. A write that fails removes its temporary file, keeps the old file,
    and raises a one-line `UserError`. When `chief` is False (a process other than
    the first in a multi-process run) every write is skipped and nothing is checked.
    """

    def __init__(self, path, chief=True):
        self.path = pathlib.Path(path)
        self.chief = chief

    def __truediv__(self, relative):
        return self.path / relative

    def config_record(self):
        """config.json if this is a run of ours, else None."""
        try:
            record = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError):
            return None
        if isinstance(record, dict) and record.get("schema") == RUN_SCHEMA and isinstance(record.get("config"), dict):
            return record
        return None

    def write_with(self, relative, write):
        """Calls `write(tmp_path)`, then makes the result `relative` atomically."""
        if not self.chief:
            return
        path = self.path / relative
        tmp = path.with_name(_tmp_name(path.name))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
        except BaseException as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            if isinstance(e, OSError) or _is_disk_error(e):
                raise UserError(f"cannot write {path}: {_why(e)}; its previous version is kept and "
                                "no partial file is left") from None
            raise
        try:
            _fsync(path.parent)  # makes the rename itself durable; not every filesystem allows it
        except OSError:
            pass

    def write_text(self, relative, text):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(text)

        self.write_with(relative, write)

    def write_json(self, relative, obj):
        self.write_text(relative, json.dumps(obj, indent=2) + "\n")

    def remove(self, relative):
        if self.chief:
            try:
                (self.path / relative).unlink()
            except FileNotFoundError:
                pass

    def partial_files(self):
        """Temporary files a killed run left behind (only in the folders a run writes)."""
        found = []
        for folder in (self.path, self.path / "checkpoints", self.path / "backup"):
            if folder.is_dir():
                found += [p for p in folder.iterdir()
                          if p.is_file() and (TMP_TAG + "." in p.name or p.name.endswith(TMP_TAG))]
        return sorted(found)


def _is_disk_error(e):
    # h5py reports write failures as its own error types; they carry the errno text.
    text = str(e)
    return any(s in text for s in ("No space left", "Read-only file system", "Permission denied", "Disk quota"))


def _why(e):
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _check_fresh(run):
    """A new run needs a missing or empty folder; a run of ours needs --resume."""
    path = run.path
    if path.exists() and not path.is_dir():
        raise UserError(f"--run-dir {path} is a file; give a folder (new or empty)")
    # A kill between creating the folder and writing config.json leaves at most its temporary file.
    if not path.exists() or all(p.name == _tmp_name("config.json") for p in path.iterdir()):
        return
    if run.config_record() is not None:
        raise UserError(f"{path} already holds an alexnet-keras run; add --resume to continue or extend it "
                        "(--resume --epochs N), or give another --run-dir")
    raise UserError(f"{path} is not empty and is not an alexnet-keras run (no config.json marked {RUN_SCHEMA}); "
                    "give a new or empty --run-dir")


def _read_history(run):
    """The rows of history.csv as dicts (epochs from 1); refuses a file that is not ours."""
    path = run / "history.csv"
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
        header = next(csv.reader(io.StringIO(text)), [])
        rows = list(csv.DictReader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path}: {e}; move it away and --resume again") from None
    ok = header[:1] == ["epoch"] and all(r.get("epoch", "").isdigit() and int(r["epoch"]) >= 1 for r in rows)
    if not ok:
        raise UserError(f"{path} is not a history this package wrote (its first column must be 'epoch', "
                        "counting from 1); move it away and --resume again")
    return rows


def _history_text(rows):
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys and k != "epoch"]
    out = io.StringIO()
    writer = csv.DictWriter(out, ["epoch", *sorted(keys)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --- callbacks -----------------------------------------------------------------
class LearningRateSchedule(keras.callbacks.Callback):
    """The paper's schedule: divide by 10 when validation error plateaus (at most 3
    times), or fixed drops at given epochs. Its state survives a resume."""

    def __init__(self, lr, boundaries=None, patience=PLATEAU_PATIENCE, echo=print):
        super().__init__()
        self.base_lr = lr
        self.boundaries = boundaries
        self.patience = patience
        self.echo = echo
        self.state = {"lr": lr, "best_error": None, "wait": 0, "drops": 0}

    def on_epoch_begin(self, epoch, logs=None):
        if self.boundaries is not None:
            self.state["drops"] = sum(epoch >= b for b in self.boundaries)
            self.state["lr"] = self.base_lr * 0.1 ** self.state["drops"]
        self.model.optimizer.learning_rate.assign(self.state["lr"])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["lr"] = self.state["lr"]
        if self.boundaries is not None:
            return
        error = 1.0 - logs.get("val_acc", logs.get("acc", 0.0))
        best = self.state["best_error"]
        if best is None or error < best - 1e-4:
            self.state.update(best_error=error, wait=0)
            return
        self.state["wait"] += 1
        if self.state["wait"] >= self.patience and self.state["drops"] < MAX_LR_DROPS:
            self.state.update(lr=self.state["lr"] / 10, wait=0, drops=self.state["drops"] + 1)
            self.echo(f"validation error has not improved for {self.patience} epochs: lr -> {self.state['lr']:g}")


class NonFinite(Exception):
    """Raised inside `fit` so that no later callback saves anything from a diverged model."""


class FiniteGuard(keras.callbacks.Callback):
    """Stops the run at the first non-finite loss, or at an epoch's end when a metric,
    a weight or an optimizer slot is not finite. It raises, so it must come before
    every callback that writes: nothing after it runs for that epoch."""

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFinite(f"non-finite loss ({float(loss)}) at epoch {self.epoch} batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        bad = _non_finite([*self.model.variables, *self.model.optimizer.variables])
        if bad:
            raise NonFinite(f"non-finite weights ({bad}) at the end of epoch {epoch + 1}")
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise NonFinite(f"non-finite {key} ({value}) at the end of epoch {epoch + 1}")


def _non_finite(variables):
    """The path of the first float variable holding a NaN or infinity, else None."""
    for v in variables:
        value = np.asarray(v)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            return v.path
    return None


def _seed_variables(model):
    # Dropout's seed state: restoring it makes a resumed epoch draw the masks it would have drawn.
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class RunWriter(keras.callbacks.Callback):
    """Everything a finished epoch leaves in the run directory, in this order:

    1. `checkpoints/last.keras` and `best.keras` (when validation error improves);
    2. the epoch's row in `history.csv`;
    3. `checkpoints/last.json`, the record of last.keras;
    4. `backup/epoch-NNNN.weights.h5`, then `backup/epoch-NNNN.json`: from this
       moment epoch N counts as finished;
    5. `state.json`; backups older than the `BACKUP_KEEP` newest are removed.

    A record (3, 4) is written only after its weights and the epoch's history row,
    so whatever record a resume loads, the history holds its epoch. A kill between
    any two steps leaves an earlier state resumable; resuming rewrites the rest.
    """

    def __init__(self, run, schedule, history_rows, echo=print):
        super().__init__()
        self.run = run
        self.schedule = schedule
        self.rows = history_rows
        self.echo = echo
        self.best = {"best_error": None, "best_epoch": None}
        self.finished = 0  # epochs whose backup record is written

    def record(self, epoch, weights):
        return {
            "schema": RUN_SCHEMA,
            "epoch": epoch,
            "weights": weights,
            "fingerprint": _fingerprint(self.run / weights) if self.run.chief else None,
            "schedule": dict(self.schedule.state),
            "checkpoints": dict(self.best),
            "seed_states": {v.path: np.asarray(v).tolist() for v in _seed_variables(self.model)},
        }

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        n = epoch + 1
        run = self.run
        run.write_with("checkpoints/last.keras", lambda tmp: self.model.save(tmp))
        error = 1.0 - logs["val_acc"] if "val_acc" in logs else None
        best = self.best["best_error"]
        if best is None or (error is not None and error < best):
            run.write_with("checkpoints/best.keras", lambda tmp: shutil.copyfile(run / "checkpoints/last.keras", tmp))
            self.best.update(best_error=error, best_epoch=n)
        self.rows[:] = [r for r in self.rows if int(r["epoch"]) < n]
        self.rows.append({"epoch": str(n), **{k: repr(float(v)) for k, v in logs.items()}})
        run.write_text("history.csv", _history_text(self.rows))
        run.write_json("checkpoints/last.json", self.record(n, "checkpoints/last.keras"))

        name = f"backup/epoch-{n:04d}"
        run.write_with(f"{name}.weights.h5", lambda tmp: self.model.save_weights(tmp))
        record = self.record(n, f"{name}.weights.h5")
        run.write_json(f"{name}.json", record)
        self.finished = n
        run.write_json("state.json", record)
        for old in _backups(run):
            if old < n - BACKUP_KEEP + 1:
                run.remove(f"backup/epoch-{old:04d}.json")
                run.remove(f"backup/epoch-{old:04d}.weights.h5")


def _backups(run):
    """Epochs with a backup record, newest first."""
    found = []
    for p in (run / "backup").glob("epoch-*.json"):
        stem = p.name[len("epoch-"):-len(".json")]
        if stem.isdigit():
            found.append(int(stem))
    return sorted(found, reverse=True)


class Clock(keras.callbacks.Callback):
    """Training throughput here, and what the same epoch would have cost in 2012."""

    def __init__(self, images_per_epoch, macs_per_image, echo=print):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.macs_per_image = macs_per_image
        self.echo = echo
        self.train_seconds = 0.0
        self.wall_seconds = 0.0
        self.epochs = 0
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        from .simulations import clock

        now = time.perf_counter()
        train_seconds = (self._train_end or now) - self._start
        self.train_seconds += train_seconds
        self.wall_seconds += now - self._start
        self.epochs += 1
        then = clock.gtx580_seconds(self.images_per_epoch, self.macs_per_image)
        self.echo(
            f"epoch {epoch + 1}: {self.images_per_epoch / train_seconds:.1f} img/s here; "
            f"2012 clock: this epoch would take {clock.format_duration(then)} on 2x GTX 580"
        )

    @property
    def images_per_second(self):
        return self.epochs * self.images_per_epoch / self.train_seconds if self.train_seconds else None


# --- resume --------------------------------------------------------------------
class _Unusable(Exception):
    """A saved state that cannot be loaded; the message says why, in a few words."""


def _load_state(model, run, record_path):
    """Loads one saved state (a backup epoch or last.keras) into `model`; returns its record."""
    record = _read_record(run, record_path)
    weights = record["weights"]
    path = run / weights
    if pathlib.PurePath(weights).is_absolute() or ".." in pathlib.PurePath(weights).parts or not path.is_file():
        raise _Unusable(f"{weights} is missing")
    expected = record.get("fingerprint")
    if expected and _fingerprint(path) != expected:
        raise _Unusable(f"{weights} is unreadable (changed or cut short since {record_path} was written)")
    try:
        model.load_weights(path)
    except Exception as e:  # noqa: BLE001 -- h5py and zip errors of every kind mean the same: unusable
        raise _Unusable(f"{weights} is unreadable ({_why(e)})") from None
    if _non_finite([*model.variables, *model.optimizer.variables]):
        raise _Unusable(f"{weights} holds non-finite weights")
    seeds = record.get("seed_states") or {}
    for v in _seed_variables(model):
        if v.path in seeds:
            v.assign(np.asarray(seeds[v.path], dtype=v.dtype))
    return record


def _read_record(run, record_path):
    try:
        record = json.loads((run / record_path).read_text())
    except (OSError, ValueError) as e:
        raise _Unusable(f"{record_path} is unreadable ({_why(e)})") from None
    ok = (isinstance(record, dict) and record.get("schema") == RUN_SCHEMA and type(record.get("epoch")) is int
          and record["epoch"] >= 1 and isinstance(record.get("weights"), str))
    if not ok:
        raise _Unusable(f"{record_path} is unreadable (not a record of this package)")
    return record


def restore(model, run):
    """Loads the newest loadable state of `run` into `model` (built, optimizer built).

    Every record (the backup epochs' records, `state.json` and
    `checkpoints/last.json`) names its weights; they are tried newest epoch first,
    a backup before `last.keras` for the same epoch. Returns `(record, note)`: the
    record of the state loaded, or None for the start, and one line saying what
    was loaded and what could not be.
    """
    paths = [f"backup/epoch-{e:04d}.json" for e in _backups(run)]
    paths += [p for p in ("state.json", "checkpoints/last.json") if (run / p).exists()]
    problems, records = [], []

    def problem(e):
        if str(e) not in problems:  # state.json names the same weights as the newest backup
            problems.append(str(e))

    for order, record_path in enumerate(paths):
        try:
            records.append((-_read_record(run, record_path)["epoch"], order, record_path))
        except _Unusable as e:
            problem(e)
    for _, _, record_path in sorted(records):
        try:
            record = _load_state(model, run, record_path)
        except _Unusable as e:
            problem(e)
            continue
        note = f"resuming from the end of epoch {record['epoch']} ({record['weights']})"
        return record, "; ".join([*problems, note])
    if problems:
        return None, "; ".join([*problems, "no loadable state: starting again from epoch 1"])
    return None, "no finished epoch to resume from: starting from epoch 1"


def training_stream(train_ds, epochs_done, steps, pass_batches):
    """The endless stream of training batches, positioned where an uninterrupted run
    of `steps` batches per epoch is after `epochs_done` epochs.

    Each pass over `train_ds` shuffles and augments with the next seeds of its
    seed sequence, and a new iterator draws them without reading any data. So
    whole passes are skipped by opening (and dropping) one iterator each, and
    only a part pass, when `steps` does not divide into passes, is read and dropped
    (all of it when the pass length is unknown, a TFDS set without a size).
    """
    seen = epochs_done * steps
    passes, offset = divmod(seen, pass_batches) if pass_batches else (0, seen)
    for _ in range(passes):
        iter(train_ds)
    stream = train_ds.repeat()
    return stream.skip(offset) if offset else stream


def _resumed_config(record, config, given):
    """The saved config with the changes a resume may make; refuses the others."""
    try:
        saved = TrainConfig().update(**record["config"])
    except (UserError, TypeError) as e:
        raise UserError(f"{config.run_dir}/config.json is damaged ({e}); nothing to resume") from None
    changed = {}
    for key in given:
        new, old = getattr(config, key), getattr(saved, key)
        if key == "run_dir" or new is None or new == old:
            continue
        if key not in RESUME_MAY_CHANGE:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} {new} conflicts with this run's saved {key} {old}; a resumed run keeps it "
                            "(leave the flag out, or start a new --run-dir)")
        changed[key] = [old, new]
    saved = dataclasses.replace(saved, **{k: v[1] for k, v in changed.items()}, run_dir=config.run_dir)
    return saved, changed


def open_run(config, resume, given, chief=True):
    """Checks the run directory, writing nothing. Returns `(config, run, saved record, changes)`."""
    run = RunDir(config.run_dir or default_run_dir(), chief)
    config = dataclasses.replace(config, run_dir=str(run.path))
    if not resume:
        if chief:
            _check_fresh(run)
        return config, run, None, {}
    record = run.config_record()
    if record is None:
        raise UserError(f"{run.path} is not an alexnet-keras run (no config.json marked {RUN_SCHEMA}); "
                        "nothing to resume")
    config, changed = _resumed_config(record, config, given)
    return config.validate(), run, record, changed


# --- the run -------------------------------------------------------------------
def build_model(config, class_wnids=None):
    """The model `train` trains, compiled with the paper's optimiser and metrics.

    Benchmarks call this too, so they time the very train step `train` runs.
    Call it inside `strategy.scope()` for distributed training.
    """
    from .models import AlexNet
    from .optimizers import PaperSGD

    model = AlexNet(
        config.variant,
        classes=config.classes,
        class_wnids=class_wnids,
        dropout=config.dropout,
        dropout_rate=config.dropout_rate,
        init=config.init,
        tower_impl=config.tower_impl,
        seed=config.seed,
    )
    model.compile(
        optimizer=PaperSGD(config.lr, momentum=config.momentum, coupled_decay=config.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="acc"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, config.classes), name="top5_acc"),
        ],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def resolve(config, info):
    """Fills the config's data- and variant-dependent defaults, as config.json records them."""
    changes = {}
    if config.classes is None:
        changes["classes"] = info.classes
    elif config.classes != info.classes:
        raise UserError(f"--classes {config.classes} does not match the data's {info.classes} classes")
    if config.epochs is None:
        changes["epochs"] = SYNTHETIC_DEFAULT_EPOCHS if info.synthetic else PAPER_EPOCHS
    if config.init is None:
        changes["init"] = DEFAULT_INIT[config.variant]
    if config.dropout is None:
        changes["dropout"] = DEFAULT_DROPOUT[config.variant]
    return dataclasses.replace(config, **changes)


def default_run_dir():
    return str(pathlib.Path("runs") / time.strftime("%Y%m%d-%H%M%S"))


def _given_fields(config):
    defaults = TrainConfig()
    return {f for f in TrainConfig.field_names() if getattr(config, f) != getattr(defaults, f)}


class TrainingStopped(RuntimeError):
    """The run stopped early (a non-finite loss or weights); `summary` says why and what was kept."""

    def __init__(self, message, summary):
        super().__init__(message)
        self.summary = summary


def train(config, *, resume=False, given=None, echo=print, verbose="auto", callbacks=()):
    """Trains AlexNet with the paper's recipe and returns the run summary.

    Args:
        config: a `TrainConfig`.
        resume: continue (or, with a larger `epochs`, extend) the run in
            `config.run_dir`. Its saved config is used; fields in `given` may
            change it only where `RESUME_MAY_CHANGE` allows, else `UserError`.
        given: the names of the fields the caller set on purpose (the CLI passes
            the flags it got); default: the fields that differ from `TrainConfig()`.
        echo: where progress lines go (print, click.echo, a logger...).
        verbose: Keras progress: "auto" shows bars on a terminal, a line per epoch otherwise.
        callbacks: more Keras callbacks, run after the finiteness check and
            before the run directory's writers.

    Returns:
        the summary dict also written to `summary.json`.

    Raises:
        UserError: bad input, a run directory that cannot be used, or a failed
            write (the message says which file; the last finished epoch is kept).
        TrainingStopped: the loss or the weights became NaN or infinite. Nothing
            from that epoch was saved; `summary.json` says why.
    """
    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"train needs the TensorFlow backend (tf.data, tf.distribute); KERAS_BACKEND is "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
        )
    from . import data, distribute, profile
    from .simulations import clock, memory

    # 1. Check everything, writing nothing.
    config.validate()
    given = _given_fields(config) if given is None else set(given)
    chief = distribute.is_chief()
    config, run, saved_record, changed = open_run(config, resume, given, chief)
    history_rows = _read_history(run) if resume else []
    boundaries = parse_schedule(config.lr_schedule, config.epochs)
    # Devices first: logical devices can only be set before TF initialises.
    strategy = distribute.strategy_for(config.strategy, config.simulate_gtx580)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(f"batch size {config.batch_size} does not divide by {replicas} replicas")

    keras.utils.set_random_seed(config.seed)
    train_ds, val_ds, info = data.load(
        config.data,
        batch_size=config.batch_size,
        spec=DEFAULT_PREPROCESSING[config.variant],
        seed=config.seed,
        tfds_data_dir=config.tfds_data_dir,
        tfds_manual_dir=config.tfds_manual_dir,
        synthetic_classes=config.synthetic_classes,
        synthetic_train_examples=config.synthetic_train_examples,
        synthetic_val_examples=config.synthetic_val_examples,
    )
    config = resolve(config, info)
    if info.classes < 2:
        raise UserError(f"the data has {info.classes} class; training needs at least 2")

    def new_model():
        keras.utils.set_random_seed(config.seed)  # the same initial weights as a fresh run
        with strategy.scope():
            model = build_model(config, class_wnids=info.class_wnids)
            model.optimizer.build(model.trainable_variables)
        return model

    model = new_model()
    rows = profile.profile_model(model)
    macs = profile.totals(rows)["macs"]
    if config.simulate_gtx580:
        plan = memory.plan([r.as_dict() for r in rows], config.batch_size, replicas=replicas)
        echo(memory.format_plan(plan))
        memory.check_fits([r.as_dict() for r in rows], config.batch_size, replicas=replicas)

    pass_batches = info.steps_per_epoch
    steps = config.steps_per_epoch or pass_batches
    if steps is None:
        raise UserError("the training set's size is unknown; give --steps-per-epoch")
    if not steps:
        raise UserError(f"the training set ({info.train_examples} images) is smaller than one batch of {config.batch_size}")

    schedule = LearningRateSchedule(config.lr, boundaries, config.plateau_patience, echo)
    writer = RunWriter(run, schedule, history_rows, echo)
    resumed_from = 0
    if resume:
        loaded, note = restore(model, run)
        if loaded is None:
            model = new_model()  # a failed load may have left some weights behind
        else:
            resumed_from = loaded["epoch"]
            schedule.state.update(loaded.get("schedule") or {})
            writer.best.update(loaded.get("checkpoints") or {})
        if config.epochs < resumed_from:
            raise UserError(f"--epochs {config.epochs} is fewer than the {resumed_from} epochs this run has "
                            f"finished; give --epochs {resumed_from + 1} or more to extend it")
        echo(note)
        writer.finished = resumed_from

    # 2. Write: only now does the run directory change.
    created = False
    record = {
        "schema": RUN_SCHEMA,
        "config": config.as_dict(),
        "seed": config.seed,
        "versions": library_versions(),
        "data": info.describe(),
        "resumes": (saved_record or {}).get("resumes", []),
    }
    if resume:
        if changed or config.epochs > resumed_from:  # a resume with nothing to do leaves no trace
            record["resumes"] = record["resumes"] + [{"from_epoch": resumed_from, "changed": changed}]
        for partial in run.partial_files():
            run.remove(partial.relative_to(run.path))
        history_rows[:] = [r for r in history_rows if int(r["epoch"]) <= resumed_from]
        run.write_text("history.csv", _history_text(history_rows))
        if loaded is not None:  # a kill may have come between a backup's record and its copy
            run.write_json("state.json", loaded)
    elif chief:
        created = not run.path.exists()
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {run.path}: {_why(e)}") from None
    try:
        run.write_json("config.json", record)
    except UserError:
        if created:
            _remove_empty(run.path)
        raise
    echo("config: " + json.dumps(config.as_dict()))
    if changed:
        echo("changed on resume: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
    echo(f"data: {info.describe()}")
    echo(f"strategy: {distribute.strategy_name(strategy)} with {replicas} replica(s), "
         f"{config.batch_size // replicas} images each")

    images_per_epoch = steps * config.batch_size
    echo(f"2012 clock: one epoch of {images_per_epoch} images would take "
         f"{clock.format_duration(clock.gtx580_seconds(images_per_epoch, macs))} on 2x GTX 580")

    timer = Clock(images_per_epoch, macs, echo)
    callback_list = [FiniteGuard(), *callbacks, schedule, writer, timer]
    if chief:
        callback_list.append(keras.callbacks.TensorBoard(str(run / "tensorboard"), write_graph=False, profile_batch=0))
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    started = time.perf_counter()
    stopped = None
    if config.epochs > resumed_from:
        stream = training_stream(train_ds, resumed_from, steps, pass_batches)
        try:
            model.fit(
                stream,
                initial_epoch=resumed_from,
                epochs=config.epochs,
                steps_per_epoch=steps,
                validation_data=val_ds,
                validation_steps=config.validation_steps,
                callbacks=callback_list,
                shuffle=False,  # the dataset is already shuffled
                verbose=verbose,
            )
        except NonFinite as e:
            stopped = str(e)
        except UserError as e:  # a failed write: say what stays resumable
            kept = f"the run resumes from epoch {writer.finished} with --resume" if writer.finished else (
                "no epoch was finished")
            raise UserError(f"{e}; {kept}") from None
    else:
        echo(f"the run has finished all {config.epochs} epochs; nothing to train (give --epochs N to extend it)")
    here = time.perf_counter() - started
    done = writer.finished
    last = history_rows[-1] if history_rows else {}

    def metric(key):
        return 1.0 - float(last[key]) if last.get(key) not in (None, "") else None

    summary = {
        "replicas": replicas,
        "strategy": distribute.strategy_name(strategy),
        "epochs_completed": done,
        "epochs_requested": config.epochs,
        "resumed_from_epoch": resumed_from,
        "images_per_second": timer.images_per_second,
        "val_top1_error": metric("val_acc"),
        "val_top5_error": metric("val_top5_acc"),
        "best_val_top1_error": writer.best["best_error"],
        "best_epoch": writer.best["best_epoch"],
        "seconds_here": here,
        "gtx580_equivalent_seconds": clock.gtx580_seconds(done * images_per_epoch, macs),
        "data": info.describe(),
        "synthetic_data": info.synthetic,
        "skipped_files": info.skipped,
        "stopped": stopped,
        "macs_per_image": macs,
    }
    run.write_json("summary.json", summary)
    if stopped:
        kept = f"the state after epoch {done} is kept" if done else "nothing was saved"
        raise TrainingStopped(f"{stopped}: training stopped; {kept} in {run.path} (try a lower --lr)", summary)
    echo(clock.sentence(here, (done - resumed_from) * images_per_epoch, macs))
    echo(f"run directory: {run.path}")
    return summary


def _remove_empty(path):
    """Removes a run directory this call created, if it holds nothing but empty folders."""
    for folder in sorted([path, *[p for p in path.rglob("*") if p.is_dir()]], key=lambda p: -len(p.parts)):
        try:
            folder.rmdir()
        except OSError:
            return
