"""The Keras callbacks of a run, and loading a saved state back into a model.

* `LearningRateSchedule`: divide by 10 on a plateau (at most 3 times), or at given epochs;
* `FiniteGuard`: stops at the first NaN or infinite loss, weight or metric, before any write;
* `RunWriter`: what a finished epoch leaves in the run directory (checkpoints, history,
  backup, state), and `restore`, which loads the newest loadable one back;
* `Clock`: throughput here and the same epoch on the 2012 clock.
"""

import math
import pathlib
import time

import keras
import numpy as np

from ..simulations import clock
from .config import MAX_LR_DROPS, PLATEAU_PATIENCE
from .rundir import (
    BACKUP_KEEP,
    RUN_SCHEMA,
    UnusableState,
    backup_epochs,
    error_text,
    fingerprint,
    has_optimizer_state,
    history_text,
    link_or_copy,
    model_without_optimizer,
    read_record,
)


class LearningRateSchedule(keras.callbacks.Callback):
    """The paper's schedule: divide by 10 when validation error plateaus (at most 3
    times), or a `StepSchedule` (`step:...`, `cc145`): fixed drops from given 1-based
    epochs, and per-layer rates set through `PaperSGD.lr_multipliers`. Its state
    survives a resume; a step schedule is a function of the epoch alone."""

    def __init__(self, lr, boundaries=None, patience=PLATEAU_PATIENCE, echo=print):
        super().__init__()
        self.base_lr = lr
        self.boundaries = boundaries  # a StepSchedule, or None for the plateau rule
        self.patience = patience
        self.echo = echo
        self.state = {"lr": lr, "best_error": None, "wait": 0, "drops": 0}
        self.layer_lr = {}

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer (mixed_float16)
        if self.boundaries is not None:
            number = epoch + 1  # Keras counts from 0; schedules, history.csv and [CC]'s logs from 1
            self.state["drops"] = sum(number >= d for d in self.boundaries.drops)
            self.state["lr"] = self.base_lr * self.boundaries.factor(number)
            for layer, multiplier in getattr(optimizer, "lr_multipliers", {}).items():
                multiplier.assign(self.boundaries.multiplier(number, layer))
                self.layer_lr[layer] = self.base_lr * self.boundaries.layer_factor(number, layer)
        optimizer.learning_rate.assign(self.state["lr"])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["lr"] = self.state["lr"]
        logs.update({f"lr_{layer}": lr for layer, lr in self.layer_lr.items()})
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
        bad = non_finite_variable([*self.model.variables, *self.model.optimizer.variables])
        if bad:
            raise NonFinite(f"non-finite weights ({bad}) at the end of epoch {epoch + 1}")
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise NonFinite(f"non-finite {key} ({value}) at the end of epoch {epoch + 1}")


def non_finite_variable(variables):
    """The path of the first float variable holding a NaN or infinity, else None."""
    for v in variables:
        value = np.asarray(v)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            return v.path
    return None


def seed_variables(model):
    # Dropout's seed state: restoring it makes a resumed epoch draw the masks it would have drawn.
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class RunWriter(keras.callbacks.Callback):
    """Everything a finished epoch leaves in the run directory, in this order:

    1. `checkpoints/last.keras`, and `best.keras`: when validation error improves, a
       hard link to last.keras; else, if it still holds an optimizer state, the same
       model without it (see `rundir`: no file is stored twice);
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
            "fingerprint": fingerprint(self.run / weights) if self.run.chief else None,
            "schedule": dict(self.schedule.state),
            "checkpoints": dict(self.best),
            # In model order: a seed generator's path carries a per-process name counter
            # (seed_generator_3 after other models in the same process), so paths do not match on resume.
            "seed_states": [np.asarray(v).tolist() for v in seed_variables(self.model)],
        }

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        n = epoch + 1
        run = self.run
        run.write_with("checkpoints/last.keras", lambda tmp: self.model.save(tmp), everywhere=True)
        error = 1.0 - logs["val_acc"] if "val_acc" in logs else None
        best = self.best["best_error"]
        best_path = run / "checkpoints/best.keras"
        if best is None or (error is not None and error < best):
            # The best epoch is this one: best.keras is last.keras under a second name, not a second copy.
            run.write_with("checkpoints/best.keras", lambda tmp: link_or_copy(run / "checkpoints/last.keras", tmp))
            self.best.update(best_error=error, best_epoch=n)
        elif run.chief and has_optimizer_state(best_path):
            # An older epoch, whose file last.keras no longer shares: keep what a model needs, drop the momentum.
            run.write_with("checkpoints/best.keras", lambda tmp: model_without_optimizer(best_path, tmp))
        self.rows[:] = [r for r in self.rows if int(r["epoch"]) < n]
        self.rows.append({"epoch": str(n), **{k: repr(float(v)) for k, v in logs.items()}})
        run.write_text("history.csv", history_text(self.rows))
        run.write_json("checkpoints/last.json", self.record(n, "checkpoints/last.keras"))

        name = f"backup/epoch-{n:04d}"
        run.write_with(f"{name}.weights.h5", lambda tmp: self.model.save_weights(tmp), everywhere=True)
        record = self.record(n, f"{name}.weights.h5")
        run.write_json(f"{name}.json", record)
        self.finished = n
        run.write_json("state.json", record)
        for old in backup_epochs(run):
            if old < n - BACKUP_KEEP + 1:
                run.remove(f"backup/epoch-{old:04d}.json")
                run.remove(f"backup/epoch-{old:04d}.weights.h5")


# --- resume ---------------------------------------------------------------------
def _load_state(model, run, record_path):
    """Loads one saved state (a backup epoch or last.keras) into `model`; returns its record."""
    record = read_record(run, record_path)
    weights = record["weights"]
    path = run / weights
    if pathlib.PurePath(weights).is_absolute() or ".." in pathlib.PurePath(weights).parts or not path.is_file():
        raise UnusableState(f"{weights} is missing")
    expected = record.get("fingerprint")
    if expected and fingerprint(path) != expected:
        raise UnusableState(f"{weights} is unreadable (changed or cut short since {record_path} was written)")
    try:
        model.load_weights(path)
    except Exception as e:  # noqa: BLE001 -- h5py and zip errors of every kind mean the same: unusable
        raise UnusableState(f"{weights} is unreadable ({error_text(e)})") from None
    if non_finite_variable([*model.variables, *model.optimizer.variables]):
        raise UnusableState(f"{weights} holds non-finite weights")
    seeds = record.get("seed_states") or []
    variables = seed_variables(model)
    if isinstance(seeds, dict):  # records written before the list: keyed by path
        seeds = [seeds[v.path] for v in variables] if all(v.path in seeds for v in variables) else []
    if len(seeds) == len(variables):
        for v, state in zip(variables, seeds, strict=True):
            v.assign(np.asarray(state, dtype=v.dtype))
    return record


def restore(model, run):
    """Loads the newest loadable state of `run` into `model` (built, optimizer built).

    Every record (the backup epochs' records, `state.json` and
    `checkpoints/last.json`) names its weights; they are tried newest epoch first,
    a backup before `last.keras` for the same epoch. Returns `(record, note)`: the
    record of the state loaded, or None for the start, and one line saying what
    was loaded and what could not be.
    """
    paths = [f"backup/epoch-{e:04d}.json" for e in backup_epochs(run)]
    paths += [p for p in ("state.json", "checkpoints/last.json") if (run / p).exists()]
    problems, records = [], []

    def problem(e):
        if str(e) not in problems:  # state.json names the same weights as the newest backup
            problems.append(str(e))

    for order, record_path in enumerate(paths):
        try:
            records.append((-read_record(run, record_path)["epoch"], order, record_path))
        except UnusableState as e:
            problem(e)
    for _, _, record_path in sorted(records):
        try:
            record = _load_state(model, run, record_path)
        except UnusableState as e:
            problem(e)
            continue
        note = f"resuming from the end of epoch {record['epoch']} ({record['weights']})"
        return record, "; ".join([*problems, note])
    if problems:
        return None, "; ".join([*problems, "no loadable state: starting again from epoch 1"])
    return None, "no finished epoch to resume from: starting from epoch 1"


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
