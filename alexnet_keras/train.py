"""The 2012 training recipe as a library function: `train(TrainConfig(...))`.

Krizhevsky et al. (2012), §5: SGD, batch 128, momentum 0.9, weight decay 0.0005
coupled into the update (`PaperSGD`), lr 0.01 divided by 10 when the validation
error stops improving (three times in about 90 epochs), the paper's initialisation.

A run directory holds everything needed to inspect or resume a run:
`config.json`, `history.csv`, `tensorboard/`, `checkpoints/{last,best}.keras`,
`backup/` (BackupAndRestore), `state.json` (schedule and best-checkpoint state,
which BackupAndRestore does not keep) and `summary.json`.
"""

import csv
import dataclasses
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time

import keras

from .errors import UserError

SYNTHETIC_DEFAULT_EPOCHS = 1  # a few minutes on 2 CPU cores with 20 steps of 128
PAPER_EPOCHS = 90
PLATEAU_PATIENCE = 5  # the paper gives no number; an epoch count that suits 90 epochs
MAX_LR_DROPS = 3  # [P] §5: "reduced three times prior to termination"


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run. Printed at the start, saved as `config.json`.

    `None` fields are resolved when the run starts (see `resolve`), and the
    resolved values are what `config.json` records.
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
        path = pathlib.Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"config file {path} is not valid JSON: {e}") from None
        return cls().update(**values.get("config", values))

    def as_dict(self):
        return dataclasses.asdict(self)


def _coerce(key, value, annotation):
    if not isinstance(value, str) or annotation in ("str", "str | None"):
        return value
    if value.lower() in ("none", "null") and "None" in str(annotation):
        return None
    try:
        if "bool" in str(annotation):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if "int" in str(annotation):
            return int(value)
        if "float" in str(annotation):
            return float(value)
    except ValueError:
        raise UserError(f"bad value for {key}: {value!r} (expected {annotation})") from None
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
        logs = logs or {}
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


class Checkpoints(keras.callbacks.Callback):
    """`last.keras` every epoch; `best.keras` when validation top-1 error improves."""

    def __init__(self, directory):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.state = {"best_error": None, "best_epoch": None}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.directory.mkdir(parents=True, exist_ok=True)
        last = self.directory / "last.keras"
        _atomic(lambda tmp: self.model.save(tmp), last)
        error = 1.0 - logs["val_acc"] if "val_acc" in logs else None
        best = self.state["best_error"]
        if best is None or (error is not None and error < best):
            _atomic(lambda tmp: shutil.copyfile(last, tmp), self.directory / "best.keras")
            self.state.update(best_error=error, best_epoch=epoch + 1)


def _atomic(write, path):
    # Write then rename, so a kill mid-save never leaves a truncated checkpoint.
    tmp = path.with_name(path.name.replace(".keras", ".tmp.keras"))
    write(tmp)
    os.replace(tmp, path)


class RunState(keras.callbacks.Callback):
    """Persists what BackupAndRestore does not keep: the schedule's counters and the
    best checkpoint's score. `restore` puts them back and keeps `history.csv`
    contiguous before a resumed `fit` starts.
    """

    def __init__(self, run_dir, parts):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.parts = parts  # name -> callback with a `state` dict
        self.path = self.run_dir / "state.json"

    def restore(self):
        """Returns the number of epochs the backup holds (0 for a fresh run)."""
        meta = self.run_dir / "backup" / "training_metadata.json"
        epochs = json.loads(meta.read_text())["epoch"] if meta.exists() else 0
        if epochs and self.path.exists():
            saved = json.loads(self.path.read_text())
            for name, part in self.parts.items():
                part.state.update(saved.get(name, {}))
        _trim_history(self.run_dir / "history.csv", epochs)
        return epochs

    def on_epoch_end(self, epoch, logs=None):
        state = {name: part.state for name, part in self.parts.items()}
        state["epoch"] = epoch + 1
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.path)


def _trim_history(path, epochs):
    """Keeps the header and the rows of the first `epochs` epochs."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


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


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that says what happened and what to try."""

    def __init__(self, echo=print):
        super().__init__()
        self.echo = echo
        self.stopped_at = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped_at = batch
            self.model.stop_training = True
            self.echo(f"loss became {loss} at batch {batch}: training stopped (try a lower --lr)")


# --- the run -------------------------------------------------------------------
def build_model(config, class_wnids=None):
    """The model `train` trains, compiled with the paper's optimiser and metrics.

    Benchmarks call this too, so they time the very train step `train` runs.
    Call it inside `strategy.scope()` for distributed training.
    """
    from .model import AlexNet
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
    """Fills the config's data-dependent defaults from the loaded data."""
    changes = {}
    if config.classes is None:
        changes["classes"] = info.classes
    elif config.classes != info.classes:
        raise UserError(f"--classes {config.classes} does not match the data's {info.classes} classes")
    if config.epochs is None:
        changes["epochs"] = SYNTHETIC_DEFAULT_EPOCHS if info.synthetic else PAPER_EPOCHS
    return dataclasses.replace(config, **changes)


def default_run_dir():
    return str(pathlib.Path("runs") / time.strftime("%Y%m%d-%H%M%S"))


def prepare_run_dir(config, resume):
    """Creates the run directory, or loads the saved config when resuming."""
    run_dir = pathlib.Path(config.run_dir or default_run_dir())
    saved = run_dir / "config.json"
    if resume:
        if not saved.exists():
            raise UserError(f"nothing to resume: {saved} does not exist")
        config = TrainConfig.from_file(saved)
    elif saved.exists():
        raise UserError(f"{run_dir} already holds a run; use --resume to continue it, or another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(config, run_dir=str(run_dir))


def train(config, *, resume=False, echo=print, verbose="auto"):
    """Trains AlexNet with the paper's recipe and returns the run summary.

    Args:
        config: a `TrainConfig`.
        resume: continue the run in `config.run_dir` (its saved config is used).
        echo: where progress lines go (print, click.echo, a logger...).
        verbose: Keras progress: "auto" shows bars on a terminal, a line per epoch otherwise.

    Returns:
        the summary dict also written to `summary.json`.
    """
    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"train needs the TensorFlow backend (tf.data, tf.distribute); KERAS_BACKEND is "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
        )
    from . import data, distribute, profile
    from .model import DEFAULT_PREPROCESSING
    from .simulations import clock, memory

    config = prepare_run_dir(config, resume)
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
    run_dir = pathlib.Path(config.run_dir)
    record = {"config": config.as_dict(), "seed": config.seed, "versions": library_versions(), "data": info.describe()}
    (run_dir / "config.json").write_text(json.dumps(record, indent=2))
    echo("config: " + json.dumps(config.as_dict()))
    echo(f"data: {info.describe()}")
    echo(f"strategy: {type(strategy).__name__} with {replicas} replica(s), {config.batch_size // replicas} images each")

    with strategy.scope():
        model = build_model(config, class_wnids=info.class_wnids)
    rows = profile.profile_model(model)
    macs = profile.totals(rows)["macs"]
    if config.simulate_gtx580:
        plan = memory.plan([r.as_dict() for r in rows], config.batch_size, replicas=replicas)
        echo(memory.format_plan(plan))
        memory.check_fits([r.as_dict() for r in rows], config.batch_size, replicas=replicas)

    steps = config.steps_per_epoch or info.steps_per_epoch
    if not steps:
        raise UserError(f"the training set ({info.train_examples} images) is smaller than one batch of {config.batch_size}")
    if config.steps_per_epoch:
        train_ds = train_ds.repeat()
    images_per_epoch = steps * config.batch_size
    echo(f"2012 clock: one epoch of {images_per_epoch} images would take "
         f"{clock.format_duration(clock.gtx580_seconds(images_per_epoch, macs))} on 2x GTX 580")

    schedule = LearningRateSchedule(config.lr, boundaries, config.plateau_patience, echo)
    checkpoints = Checkpoints(run_dir / "checkpoints")
    state = RunState(run_dir, {"schedule": schedule, "checkpoints": checkpoints})
    resumed_from = state.restore()
    if resumed_from:
        echo(f"resuming from the end of epoch {resumed_from}")
    timer = Clock(images_per_epoch, macs, echo)
    nan = StopOnNaN(echo)
    callbacks = [
        schedule,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        checkpoints,
        state,  # after the callbacks whose state it saves
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
        nan,
        timer,
        # last: an epoch counts as done only once everything above has recorded it
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True, delete_checkpoint=False),
    ]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    started = time.perf_counter()
    history = model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=val_ds,
        validation_steps=config.validation_steps,
        callbacks=callbacks,
        shuffle=False,  # the dataset is already shuffled
        verbose=verbose,
    )
    here = time.perf_counter() - started
    epochs_completed = resumed_from + len(history.epoch)
    if nan.stopped_at is not None:
        epochs_completed -= 1  # the epoch that diverged is not complete
    last = {k: v[-1] for k, v in history.history.items()} if history.epoch else {}
    images_seen = len(history.epoch) * images_per_epoch
    summary = {
        "replicas": replicas,
        "strategy": type(strategy).__name__,
        "epochs_completed": epochs_completed,
        "epochs_requested": config.epochs,
        "resumed_from_epoch": resumed_from,
        "images_per_second": timer.images_per_second,
        "val_top1_error": 1.0 - last["val_acc"] if "val_acc" in last else None,
        "val_top5_error": 1.0 - last["val_top5_acc"] if "val_top5_acc" in last else None,
        "best_val_top1_error": checkpoints.state["best_error"],
        "best_epoch": checkpoints.state["best_epoch"],
        "seconds_here": here,
        "gtx580_equivalent_seconds": clock.gtx580_seconds(epochs_completed * images_per_epoch, macs),
        "data": info.describe(),
        "synthetic_data": info.synthetic,
        "skipped_files": info.skipped,
        "stopped_on_nan": nan.stopped_at is not None,
        "macs_per_image": macs,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    echo(clock.sentence(here, images_seen, macs))
    echo(f"run directory: {run_dir}")
    return summary
