"""The 2012 training recipe as a library function: `train(TrainConfig(...))`.

Krizhevsky et al. (2012), §5: SGD, batch 128, momentum 0.9, weight decay 0.0005
coupled into the update (`PaperSGD`), lr 0.01 divided by 10 when the validation
error stops improving (three times in about 90 epochs), the paper's initialisation.

`train` checks everything before it writes anything, then trains with `model.fit`
and the callbacks of `training.callbacks`; the run directory (`training.rundir`)
holds everything needed to inspect or resume the run. A kill loses at most the
epoch in progress, and no weights with a NaN or infinity are ever saved.

TensorFlow (tf.data, tf.distribute) is imported when `train` runs, so this module
loads on any backend (benchmarks call `build_model` under JAX).
"""

import platform
import time

import keras

from .. import preprocessing, profile
from ..constants import DEFAULT_PREPROCESSING
from ..errors import UserError
from ..models import AlexNet
from ..simulations import clock, memory
from . import finetune
from .callbacks import (
    Clock,
    FiniteGuard,
    LearningRateSchedule,
    NonFinite,
    RunWriter,
    restore,
)
from .config import given_fields, lr_layers, parse_schedule, resolve
from .optimizers import PaperSGD
from .progress import aligned_block, fit_callbacks, line_safe
from .rundir import (
    RUN_SCHEMA,
    error_text,
    history_text,
    open_run,
    read_history,
    remove_if_empty,
)


def library_versions():
    import numpy
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "numpy": numpy.__version__,
        **({"jax": __import__("jax").__version__} if keras.backend.backend() == "jax" else {}),
        "platform": platform.platform(),
    }


def build_model(config, class_wnids=None, spec=None):
    """The model `train` trains, compiled with the paper's optimiser and metrics.

    Benchmarks call this too, so they time the very train step `train` runs.
    Call it inside `strategy.scope()` for distributed training. `spec`: the
    preprocessing spec the saved model carries (with `--mean image`, the mean image);
    default: the variant's.
    """
    model = AlexNet(
        config.variant,
        classes=config.classes,
        class_wnids=class_wnids,
        dropout=config.dropout,
        dropout_rate=config.dropout_rate,
        init=config.init,
        tower_impl=config.tower_impl,
        seed=config.seed,
        fidelity=config.fidelity,
        lrn_convention=config.lrn_convention,
        conv1_order=config.conv1_order,
        spatial_norm2=config.spatial_norm2,
        preprocessing=spec,
        dtype=config.precision,  # a dtype policy; variables stay float32
        head_dtype="float32",  # fc8's logits and softmax in float32 under a 16-bit policy
        **config.model_switches(),  # the paper's ablations; the defaults build the paper's network
    )
    model.compile(
        optimizer=PaperSGD(
            config.lr,
            momentum=config.momentum,
            coupled_decay=config.weight_decay,
            lr_layers=lr_layers(config.lr_schedule),
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="acc"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, config.classes), name="top5_acc"),
        ],
        jit_compile=config.jit_compile or keras.backend.backend() == "jax",  # JAX without jit runs op by op
        steps_per_execution=config.steps_per_execution,
        auto_scale_loss=True,  # under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer
    )
    return model


def _positioned(train_ds, epochs_done, steps, pass_batches):
    seen = epochs_done * steps
    passes, offset = divmod(seen, pass_batches) if pass_batches else (0, seen)
    for _ in range(passes):
        iter(train_ds)
    stream = train_ds.repeat()
    return stream.skip(offset) if offset else stream


def training_stream(train_ds, epochs_done, steps, pass_batches, quiet=None):
    """The endless stream of training batches, positioned where an uninterrupted run
    of `steps` batches per epoch is after `epochs_done` epochs.

    Each pass over `train_ds` shuffles and augments with the next seeds of its
    seed sequence, and a new iterator draws them without reading any data. So
    whole passes are skipped by opening (and dropping) one iterator each, and
    only a part pass, when `steps` does not divide into passes, is read and dropped
    (all of it when the pass length is unknown, a TFDS set without a size).

    `quiet`: `(first 1-based epoch without colour noise, a function returning the
    training set without it)`. From that epoch on the stream reads the noise-free
    set, positioned the same way, so each batch keeps its images, crops and flips.
    """
    if quiet is None:
        return _positioned(train_ds, epochs_done, steps, pass_batches)
    first, load_quiet = quiet
    stream = _positioned(load_quiet(), max(epochs_done, first - 1), steps, pass_batches)
    if epochs_done >= first - 1:
        return stream
    noisy = _positioned(train_ds, epochs_done, steps, pass_batches).take((first - 1 - epochs_done) * steps)
    return noisy.concatenate(stream)


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
    from . import distribute, multihost

    echo = line_safe(echo)  # a message never lands on the end of a progress bar
    # 1. Check everything, writing nothing.
    config.validate()
    given = given_fields(config) if given is None else set(given)
    distribute.start_processes(config)  # several processes: join them first, so process 0 is the chief
    chief = distribute.is_chief()
    config, run, saved_record, changed = open_run(config, resume, given, chief)
    history_rows = read_history(run) if resume else []
    boundaries = parse_schedule(config.lr_schedule)
    # Devices first: TF's logical devices and JAX's device setup come before either initialises.
    devices = distribute.setup(config)
    replicas = devices.replicas
    # --init-from's weights and a plain folder's split (training.finetune); both None otherwise.
    config, source, split = finetune.prepare(config, run, resume, given)
    config, train_ds, val_ds, info, spec, mean = _load_data(
        config, run, spec=finetune.source_spec(config, source), split=split
    )

    def new_model():
        keras.utils.set_random_seed(config.seed)  # the same initial weights as a fresh run
        with devices.scope():
            # A fine-tune labels its new head with the folder's own names.
            labels = info.class_wnids if source is None else list(info.class_names)
            model = build_model(config, class_wnids=labels, spec=spec)
            if source is not None:
                finetune.start_from(model, source, config.freeze)
            model.optimizer.build(model.trainable_variables)
        return model

    model = new_model()
    macs = _macs_and_memory_plan(model, config, replicas, echo)
    pass_batches = info.steps_per_epoch
    steps = _steps_per_epoch(config, info)

    schedule = LearningRateSchedule(config.lr, boundaries, config.plateau_patience, echo)
    writer = RunWriter(run, schedule, history_rows, echo)
    loaded, resumed_from = None, 0
    if resume:
        model, loaded, note = _resume(model, new_model, run, schedule, writer)
        resumed_from = loaded["epoch"] if loaded else 0
        if config.epochs < resumed_from:
            raise UserError(
                f"--epochs {config.epochs} is fewer than the {resumed_from} epochs this run has "
                f"finished; give --epochs {resumed_from + 1} or more to extend it"
            )
        echo(note)

    # 2. Write: only now does the run directory change.
    _start_run_dir(
        run,
        config,
        info,
        resume=resume,
        saved_record=saved_record,
        changed=changed,
        resumed_from=resumed_from,
        loaded=loaded,
        history_rows=history_rows,
        chief=chief,
    )
    finetune.record_split(run, split)
    if mean is not None and not (run / preprocessing.MEAN_IMAGE_FILE).exists():
        run.write_with(preprocessing.MEAN_IMAGE_FILE, lambda tmp: preprocessing.save_mean_image(mean, tmp))
    echo(aligned_block("config", config.as_dict()))  # config.json keeps the JSON
    if changed:
        echo("changed on resume: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
    echo(f"data: {info.describe()}")
    if source is not None:
        echo(finetune.describe(config, source))
    echo(
        f"strategy: {devices.name} with {replicas} replica(s), {devices.per_device_batch} images each"
        + (f" (keras {keras.backend.backend()})" if devices.kind != "tf" else "")
    )
    if multihost.active() is not None:
        echo(multihost.active().describe(config.batch_size) + "; validation in whole global batches")
    images_per_epoch = steps * config.batch_size
    echo(
        f"2012 clock: one epoch of {images_per_epoch} images would take "
        f"{clock.format_duration(clock.gtx580_seconds(images_per_epoch, macs))} on 2x GTX 580"
    )

    # 3. Train.
    timer = Clock(images_per_epoch, macs, echo)
    # Progress first: it ends each epoch's bar before any later callback prints (training.progress).
    callback_list = [*fit_callbacks(verbose), FiniteGuard(), *callbacks, schedule, writer, timer]
    if chief:
        callback_list.append(keras.callbacks.TensorBoard(str(run / "tensorboard"), write_graph=False, profile_batch=0))
        echo(f"tensorboard: tensorboard --logdir {run.path / 'tensorboard'}")
    started = time.perf_counter()
    stopped = None
    if config.epochs > resumed_from:
        noise_off = schedule.boundaries.colour_noise_off if schedule.boundaries is not None else None
        quiet = None
        if noise_off is not None and config.epochs >= noise_off:
            quiet = (noise_off, lambda: _load_data(config, run, spec=spec, colour_noise=False, split=split)[1])
        stream = devices.distribute_dataset(training_stream(train_ds, resumed_from, steps, pass_batches, quiet))
        val_stream = devices.distribute_dataset(multihost.whole_batches(val_ds, config.batch_size))
        with devices.fit_scope():
            stopped = _fit(model, stream, val_stream, config, resumed_from, steps, callback_list, writer, verbose)
    else:
        echo(f"the run has finished all {config.epochs} epochs; nothing to train (give --epochs N to extend it)")
    here = time.perf_counter() - started

    # 4. Report.
    done = writer.finished
    summary = _summary(
        writer,
        timer,
        info,
        config,
        replicas=replicas,
        strategy=devices.name,
        resumed_from=resumed_from,
        seconds=here,
        images_per_epoch=images_per_epoch,
        macs=macs,
        stopped=stopped,
    )
    run.write_json("summary.json", summary)
    if stopped:
        kept = f"the state after epoch {done} is kept" if done else "nothing was saved"
        raise TrainingStopped(f"{stopped}: training stopped; {kept} in {run.path} (try a lower --lr)", summary)
    echo(clock.sentence(here, (done - resumed_from) * images_per_epoch, macs))
    echo(f"run directory: {run.path}")
    return summary


def _source_options(config):
    """The options that pick the training images, shared by `data.load` and the mean-image pass."""
    return dict(
        batch_size=config.batch_size,
        seed=config.seed,
        tfds_data_dir=config.tfds_data_dir,
        tfds_manual_dir=config.tfds_manual_dir,
        synthetic_classes=config.synthetic_classes,
        synthetic_train_examples=config.synthetic_train_examples,
    )


def _load_data(config, run, spec=None, colour_noise=True, split=None):
    """The training and validation datasets, the config with the data's defaults
    resolved, the preprocessing spec and the mean image computed here (or None).

    With `--mean image` the mean comes from the run directory's `mean_image.npy` if
    there is one (a resume: the same spec bit for bit), else from one pass over the
    training set; `train` writes it once the run directory is set up.
    """
    from .. import data

    mean = None
    if spec is None:
        spec = preprocessing.get_spec(DEFAULT_PREPROCESSING[config.variant])
        if config.mean == "image":
            saved = run / preprocessing.MEAN_IMAGE_FILE
            if saved.exists():
                spec = preprocessing.with_mean_image(spec, preprocessing.load_mean_image(saved))
            else:
                images = config.data if split is None else finetune.split_train_images(split)
                mean = data.compute_mean_image(images, spec=spec, **_source_options(config))
                spec = preprocessing.with_mean_image(spec, mean)
    keras.utils.set_random_seed(config.seed)
    colour_noise = colour_noise and config.pca_lighting
    if split is not None:  # a folder of class folders: its recorded (or new) split
        train_ds, val_ds, info = finetune.load_split(split, spec, config, colour_noise)
    else:
        train_ds, val_ds, info = _load(config, spec, colour_noise)
    config = resolve(config, info)
    if info.classes < 2:
        raise UserError(f"the data has {info.classes} class; training needs at least 2")
    return config, train_ds, val_ds, info, spec, mean


def _load(config, spec, colour_noise=True):
    """`data.load` of the config's data: `(train_ds, val_ds, info)`."""
    from .. import data

    return data.load(
        config.data,
        spec=spec,
        synthetic_val_examples=config.synthetic_val_examples,
        colour_noise=colour_noise,
        **_source_options(config),
    )


def pinned_data_info(config):
    """`(config, DataInfo)` for `tune` and `ablate`; nothing trains.

    A plain folder of class folders is split once here and the split pinned in the
    config (`val_split`, `split_seed`), so every trial, whatever its seed, holds out
    the same images. The `DataInfo` (classes, sizes) is the data read as `train` reads it.
    """
    spec = preprocessing.get_spec(DEFAULT_PREPROCESSING[config.variant])
    split = finetune.folder_split(config, None)
    if split is None:
        return config, _load(config, spec)[2]
    config = config.update(val_split=split.fraction, split_seed=split.seed)
    return config, finetune.load_split(split, spec, config)[2]


def _macs_and_memory_plan(model, config, replicas, echo):
    """MACs per image for the 2012 clock; with `simulate_gtx580`, the memory plan, refusing a batch that does not fit."""
    rows = profile.profile_model(model)
    if config.simulate_gtx580:
        layers = [r.as_dict() for r in rows]
        if config.parallel == "towers":  # each card holds half of every layer, for the whole batch of each pair
            batch = config.batch_size // replicas
            echo(memory.format_towers_plan(memory.towers_plan(layers, batch)))
            memory.check_towers_fits(layers, batch)
        else:
            echo(memory.format_plan(memory.plan(layers, config.batch_size, replicas=replicas)))
            memory.check_fits(layers, config.batch_size, replicas=replicas)
    return profile.totals(rows)["macs"]


def _steps_per_epoch(config, info):
    steps = config.steps_per_epoch or info.steps_per_epoch
    if steps is None:
        raise UserError("the training set's size is unknown; give --steps-per-epoch")
    if not steps:
        raise UserError(
            f"the training set ({info.train_examples} images) is smaller than one batch of {config.batch_size}"
        )
    return steps


def _resume(model, new_model, run, schedule, writer):
    """Loads the newest loadable state and the schedule and best-score state saved with it.

    Returns `(model, record, note)`: the record is None when no state could be loaded
    (the model is then rebuilt fresh: a failed load may have left some weights behind).
    """
    loaded, note = restore(model, run)
    if loaded is None:
        model = new_model()
    else:
        schedule.state.update(loaded.get("schedule") or {})
        writer.best.update(loaded.get("checkpoints") or {})
        writer.finished = loaded["epoch"]
    return model, loaded, note


def _start_run_dir(run, config, info, *, resume, saved_record, changed, resumed_from, loaded, history_rows, chief):
    """Writes config.json (with the resume record) and, on resume, drops what came after the loaded state."""
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
        run.write_text("history.csv", history_text(history_rows))
        if loaded is not None:  # a kill may have come between a backup's record and its copy
            run.write_json("state.json", loaded)
    elif chief:
        created = not run.path.exists()
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {run.path}: {error_text(e)}") from None
    try:
        run.write_json("config.json", record)
    except UserError:
        if created:
            remove_if_empty(run.path)
        raise


def _fit(model, stream, val_ds, config, resumed_from, steps, callback_list, writer, verbose):
    """Runs `model.fit`; returns why it stopped early (a non-finite value) or None."""
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
            verbose=0,  # progress.FitProgress draws the bar (Keras' own collided with our epoch lines)
        )
    except NonFinite as e:
        return str(e)
    except UserError as e:  # a failed write: say what stays resumable
        kept = (
            f"the run resumes from epoch {writer.finished} with --resume"
            if writer.finished
            else ("no epoch was finished")
        )
        raise UserError(f"{e}; {kept}") from None
    return None


def _summary(
    writer, timer, info, config, *, replicas, strategy, resumed_from, seconds, images_per_epoch, macs, stopped
):
    """How the run ended, as `summary.json` records it."""
    last = writer.rows[-1] if writer.rows else {}

    def error(key):
        return 1.0 - float(last[key]) if last.get(key) not in (None, "") else None

    return {
        "replicas": replicas,
        "strategy": strategy,
        "epochs_completed": writer.finished,
        "epochs_requested": config.epochs,
        "resumed_from_epoch": resumed_from,
        "images_per_second": timer.images_per_second,
        "val_top1_error": error("val_acc"),
        "val_top5_error": error("val_top5_acc"),
        "best_val_top1_error": writer.best["best_error"],
        "best_epoch": writer.best["best_epoch"],
        "seconds_here": seconds,
        "gtx580_equivalent_seconds": clock.gtx580_seconds(writer.finished * images_per_epoch, macs),
        "data": info.describe(),
        "synthetic_data": info.synthetic,
        "skipped_files": info.skipped,
        "stopped": stopped,
        "macs_per_image": macs,
    }
