"""The `alexnet-keras` command: parse, call the library, print.

Every command is a thin layer over a library function that notebooks can call
too. Bad input (click usage errors and `UserError`) prints one line and exits 2.
The command starts through the launcher `alexnet_keras_cli` (console script and
`python -m alexnet_keras_cli`), under which `import alexnet_keras` loads nothing;
heavy imports (Keras, TF) happen inside the commands, so `--help` is instant.
"""

import json
import os
import sys

import click

from . import constants
from .constants import DROPOUT_MODES, FIDELITIES, INIT_SCHEMES, MEAN_MODES, PARALLEL_MODES, STRATEGIES, VARIANTS, YEARS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the output

PROG = "alexnet-keras"


class _Command(click.Command):
    """Starts Keras only once the arguments parsed, so a usage error costs no backend start-up."""

    late_backend = False  # True: the command starts Keras itself, once its own checks passed

    def invoke(self, ctx):
        if not self.late_backend:
            _quiet_backend_start()
        return super().invoke(ctx)


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are `_Group`s too, so their commands start Keras the same way


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alexnet-keras", prog_name=PROG)
def cli():
    """AlexNet (NIPS 2012) for Keras 3: build, train, replay ILSVRC 2012."""


def _quiet_backend_start():
    """Imports Keras, its backend and our Keras classes with TF's C++ start-up lines sent to /dev/null.

    TF 2.21 prints absl/oneDNN/CUDA notices before its log level applies; they would
    bury our one-line errors. Python exceptions still surface normally. Importing
    layers, models and optimizers registers every class a saved model may name.
    """
    from .training.distribute import require_backend_package

    require_backend_package()  # a missing JAX or torch: one line naming the extra, not Keras' traceback
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()
        from . import layers, models  # noqa: F401  (registration)
        from .training import optimizers  # noqa: F401  (registration)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def echo_json(obj):
    click.echo(json.dumps(obj, indent=2, default=str))


# --- summary -------------------------------------------------------------------
@cli.command()
@click.option("--variant", type=click.Choice(VARIANTS), default="2012", show_default=True)
@click.option("--classes", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
def summary(variant, classes, as_json):
    """Per-layer table: output shape, parameters, neurons and MACs."""
    from . import profile
    from .models import AlexNet

    rows = profile.profile_model(AlexNet(variant, classes=classes))
    if as_json:
        echo_json(
            {
                "variant": variant,
                "layers": [r.as_dict() for r in rows],
                "totals": profile.totals(rows),
                "units": {"macs": "multiply-accumulates per image", "flops": "2 x macs"},
            }
        )
    else:
        click.echo(f"AlexNet variant {variant}, {classes} classes")
        click.echo(profile.summary_table(rows))


# --- plan and train ----------------------------------------------------------

_PRECISION_HELP = (
    "float32 (default), mixed_bfloat16 (CPUs with AVX-512 BF16/AMX, Ampere+ GPUs) or mixed_float16 "
    "(older GPUs; loss scaling on): 16-bit compute, float32 weights, fc8 and softmax."
)

_TRAIN_FLAGS = {
    "data": click.option("--data", help="'synthetic' (default), a folder with train/ and val/, or tfds:NAME[/CONFIG]."),
    "variant": click.option("--variant", type=click.Choice(VARIANTS), help="Default: 2012 (the paper's net)."),
    "epochs": click.option("--epochs", type=click.IntRange(min=1), help="Default: 90 on real data, 1 on synthetic."),
    "steps_per_epoch": click.option(
        "--steps-per-epoch",
        type=click.IntRange(min=1),
        help="Batches per epoch (default: one pass over the training set).",
    ),
    "validation_steps": click.option(
        "--validation-steps", type=click.IntRange(min=1), help="Validation batches per epoch (default: the whole set)."
    ),
    "batch_size": click.option("--batch-size", type=click.IntRange(min=1), help="Global batch (paper: 128)."),
    "lr": click.option(
        "--lr", type=click.FloatRange(min=0, min_open=True), help="Initial learning rate (paper: 0.01)."
    ),
    "lr_schedule": click.option(
        "--lr-schedule",
        help="'paper' (drop /10 on plateau, 3 times), step:25,51,79 "
        "(/10 from each 1-based epoch) or cc145 ([CC] model 145's log: conv1's own rate "
        "and no colour noise from epoch 67; use --epochs 91).",
    ),
    "init": click.option("--init", type=click.Choice(INIT_SCHEMES), help="paper: biases 1; caffe: 0.1."),
    "dropout": click.option(
        "--dropout",
        type=click.Choice(DROPOUT_MODES),
        help="paper: scale outputs at test time; inverted: scale at training time.",
    ),
    "fidelity": click.option(
        "--fidelity",
        type=click.Choice(FIDELITIES),
        help="paper (default): the printed network; cuda-convnet: [CC] model 145's "
        "(LRN /n, conv1 ReLU after pool, cnorm2). 2012 variant only.",
    ),
    "mean": click.option(
        "--mean",
        type=click.Choice(MEAN_MODES),
        help="Subtract the mean pixel (default) or the training set's mean image "
        "(one extra pass; saved in the run dir and the model).",
    ),
    "classes": click.option("--classes", type=click.IntRange(min=2), help="Default: the data's class count."),
    "seed": click.option("--seed", type=int, help="Seeds initial weights, shuffling and augmentation (0 to 2^32-1)."),
    "strategy": click.option(
        "--strategy", type=click.Choice(STRATEGIES), help="auto: mirrored over several GPUs, else one device."
    ),
    "parallel": click.option(
        "--parallel",
        type=click.Choice(PARALLEL_MODES),
        help="data: replicas over all local devices (JAX DataParallel, TF mirrored); "
        "towers: the paper's split of every layer over two devices (KERAS_BACKEND=jax).",
    ),
    "tfds_data_dir": click.option("--tfds-data-dir", type=click.Path(file_okay=False), help="TFDS data_dir."),
    "tfds_manual_dir": click.option(
        "--tfds-manual-dir",
        type=click.Path(file_okay=False),
        help="Folder holding manually downloaded TFDS files (e.g. ImageNet's tars).",
    ),
    "run_dir": click.option("--run-dir", type=click.Path(file_okay=False), help="Default: runs/<timestamp>."),
    "precision": click.option("--precision", type=click.Choice(constants.PRECISIONS), help=_PRECISION_HELP),
    "init_from": click.option(
        "--init-from",
        metavar="SOURCE",
        help="Fine-tune: start from a .keras model, a torchvision .pth, an .npz, or 'imagenet' (torchvision's "
        f"weights); fc8 is replaced for the data's classes, variant and preprocessing follow SOURCE, and --lr "
        f"defaults to {constants.FINETUNE_LR:g}.",
    ),
    "freeze": click.option(
        "--freeze",
        metavar="SPEC",
        help="With --init-from: none (default), features (conv1-conv5) or up-to:LAYER (conv1 to LAYER, e.g. "
        "up-to:fc6) keep their weights.",
    ),
    "val_split": click.option(
        "--val-split",
        type=float,
        help="A folder of class folders without train/ and val/: the share of each class held out for validation "
        f"(default {constants.DEFAULT_VAL_SPLIT:g}, seeded by --seed or --set split_seed=N, recorded as "
        f"{constants.SPLIT_FILE} in the run).",
    ),
    # Several processes or hosts (training.multihost); default: KERAS_DISTRIBUTION_* variables, else one.
    "coordinator": click.option(
        "--coordinator",
        metavar="HOST:PORT",
        help="Several processes (KERAS_BACKEND=jax): process 0's host and a free port, the same on every process "
        "(or KERAS_DISTRIBUTION_JOB_ADDRESSES).",
    ),
    "num_processes": click.option(
        "--num-processes",
        type=click.IntRange(min=1),
        help="How many processes train together, data parallel (or KERAS_DISTRIBUTION_NUM_PROCESSES).",
    ),
    "process_id": click.option(
        "--process-id",
        type=click.IntRange(min=0),
        help="This process's index, 0 to N-1; 0 writes the run directory (or KERAS_DISTRIBUTION_PROCESS_ID).",
    ),
}


def _with_train_flags(command):
    for option in reversed(list(_TRAIN_FLAGS.values())):
        command = option(command)
    return command


@cli.command()
@_with_train_flags
@click.option(
    "--simulate-gtx580", is_flag=True, default=None, help="Two replicas of 3 GB, as the paper's two GTX 580s."
)
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir; with --epochs N, extend it to N epochs.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="JSON file of TrainConfig fields.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set any TrainConfig field.")
@click.option("--quiet", is_flag=True, help="Print only errors and the final line (the run directory).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print only the run summary, as one JSON object on stdout; progress and messages go to stderr.",
)
def train(resume, config_file, overrides, quiet, as_json, **flags):
    """Train AlexNet with the 2012 recipe (synthetic data unless --data is given).

    Exit status: 0 when done, 1 when the loss or weights became NaN or infinite
    (nothing from that epoch is saved), 2 for bad input or an unusable run directory,
    3 when another process of a multi-process run was lost (relaunch all with --resume).
    """
    config, values = _config_from(config_file, overrides, flags)
    if resume and not config.run_dir:
        raise click.UsageError("--resume needs --run-dir")
    config.validate()  # a bad value answers before Keras and TF take seconds to start
    _quiet_backend_start()
    from .training.loop import TrainingStopped
    from .training.loop import train as run_training

    with _TrainOutput(quiet, as_json) as out:
        try:
            out.summary = run_training(config, resume=resume, given=set(values), echo=out.echo, verbose=out.verbose)
        except TrainingStopped as e:
            out.summary = e.summary
            click.echo(f"{PROG}: error: {e}", err=True)
            raise click.exceptions.Exit(1) from None


train.late_backend = True


def _config_from(config_file, overrides, flags):
    """`(TrainConfig, the fields set on purpose)` from `--config`, the flags and `--set KEY=VALUE`, in that order."""
    from .training.config import TrainConfig, read_config_file

    # The fields set on purpose: a resume checks them against the saved run.
    values = read_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        values[key.strip().replace("-", "_")] = value
    return TrainConfig().update(**values), values


class _TrainOutput:
    """Where `train`'s output goes: all of it (default), only errors and the final line (`--quiet`), or only
    the summary as JSON on stdout (`--json`: everything else, even C-level writes to fd 1, goes to stderr)."""

    def __init__(self, quiet, as_json):
        self.quiet, self.as_json = quiet, as_json
        self.summary = None
        self.lines = []
        self.verbose = 0 if quiet else "auto"
        if quiet:
            self.echo = self.lines.append
        elif as_json:
            self.echo = lambda message: click.echo(message, err=True)
        else:
            self.echo = click.echo
        self._saved_fd = self._redirect = None

    def __enter__(self):
        if self.as_json:
            import contextlib

            sys.stdout.flush()
            try:
                self._saved_fd = os.dup(1)
                os.dup2(2, 1)
            except (OSError, ValueError):  # no real fd 1 (an embedding program): Python-level only
                self._saved_fd = None
            self._redirect = contextlib.redirect_stdout(sys.stderr)
            self._redirect.__enter__()
        return self

    def __exit__(self, kind, error, tb):
        from .training.progress import end_line

        end_line()
        if self._redirect is not None:
            sys.stdout.flush()
            self._redirect.__exit__(kind, error, tb)
            if self._saved_fd is not None:
                os.dup2(self._saved_fd, 1)
                os.close(self._saved_fd)
        if self.as_json and self.summary is not None:
            echo_json(self.summary)
        elif self.quiet and kind is None:
            final = [line for line in self.lines if str(line).startswith("run directory:")]
            click.echo(final[-1] if final else (self.lines[-1] if self.lines else "done"))
        return False


# --- tune and ablate ---------------------------------------------------------------
_SEARCH_FLAGS = (
    "data",
    "val_split",
    "variant",
    "steps_per_epoch",
    "validation_steps",
    "batch_size",
    "seed",
    "precision",
)


def _with_search_flags(command):
    """The data and run flags `tune` and `ablate` share with `train`."""
    options = [_TRAIN_FLAGS[name] for name in _SEARCH_FLAGS]
    options += [
        click.option("--simulate-gtx580", is_flag=True, default=None, help="Train each trial as on two 3 GB GTX 580s."),
        click.option(
            "--config", "config_file", type=click.Path(dir_okay=False), help="JSON file of TrainConfig fields."
        ),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set any TrainConfig field."),
        click.option(
            "--plot", "plot_path", type=click.Path(dir_okay=False), help="Also draw the results to this image."
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print only the report, as one JSON object on stdout; progress goes to stderr.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _search_base(config_file, overrides, flags):
    """The config every trial starts from; `--batch-size` and the rest as `train` reads them."""
    config, _ = _config_from(config_file, overrides, flags)
    return config.validate()


@cli.command("tune")
@_with_search_flags
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default="runs/tune",
    show_default=True,
    help="The search's directory: keras-tuner's folder, the trials' runs, the report and best_config.json. "
    "The same command with the same --run-dir resumes the search.",
)
@click.option(
    "--space",
    "space_file",
    type=click.Path(dir_okay=False),
    help="JSON search space (default: lr, weight_decay, momentum, dropout_rate, init, batch_size).",
)
@click.option("--tuner", type=click.Choice(("hyperband", "random", "bayesian")), default="hyperband", show_default=True)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Random and Bayesian search: trials to run (rejected ones don't count).",
)
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=9,
    show_default=True,
    help="Hyperband: the most epochs one trial trains.",
)
@click.option(
    "--epochs-per-trial",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Random and Bayesian search: epochs of each trial.",
)
@click.option(
    "--budget-2012",
    metavar="DURATION",
    help="Stop once the trials' 2012-clock training time passes this, e.g. '1 week' or '36 h'.",
)
@click.option(
    "--budget-gib",
    type=click.FloatRange(min=0, min_open=True),
    help="Memory per replica in GiB that a trial must fit (default: 3 with --simulate-gtx580, else none).",
)
def tune_command(
    run_dir,
    space_file,
    tuner,
    max_trials,
    max_epochs,
    epochs_per_trial,
    budget_2012,
    budget_gib,
    config_file,
    overrides,
    plot_path,
    as_json,
    **flags,
):
    """Search the training recipe with keras-tuner; each trial is a `train` run under the same limits."""
    from .search.space import load_space

    space = load_space(space_file)  # bad input answers before Keras starts
    base = _search_base(config_file, overrides, flags)
    if budget_2012 is not None:
        from .simulations.clock import parse_duration

        try:
            parse_duration(budget_2012)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--budget-2012") from None
    _quiet_backend_start()
    from .search.tune import format_report, tune

    with _TrainOutput(False, as_json) as out:
        report = tune(
            base,
            run_dir=run_dir,
            space=space,
            tuner=tuner,
            max_trials=max_trials,
            max_epochs=max_epochs,
            epochs_per_trial=epochs_per_trial,
            seed=base.seed,
            budget_2012=budget_2012,
            budget_gib=budget_gib,
            pinned={"batch_size": flags["batch_size"]},
            echo=out.echo,
        )
        out.summary = report
        if plot_path:
            from .plots import plot_trials

            plot_trials(report, plot_path)
            out.echo(f"wrote {plot_path}")
        out.echo(format_report(report))
        out.echo(f"best config: {os.path.join(run_dir, 'best_config.json')}" if report["best"] else "no best config")


tune_command.late_backend = True


@cli.command("ablate")
@_with_search_flags
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default="runs/ablate",
    show_default=True,
    help="The grid's directory; the same command with the same --run-dir resumes it.",
)
@click.option(
    "--only",
    metavar="ID,...",
    help="Arms to run (the baseline always runs): lrn, pool, relu, dropout, pca, towers, "
    "depth_conv3, depth_conv4, depth_conv5. Default: all.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Training seeds per arm (--seed, --seed + 1, ...).",
)
@click.option("--epochs-per-trial", type=click.IntRange(min=1), default=5, show_default=True)
def ablate_command(run_dir, only, seeds, epochs_per_trial, config_file, overrides, plot_path, as_json, **flags):
    """Replay the paper's ablations and set each measured change beside the paper's claim."""
    from .search.arms import check_arms, parse_only

    arms = parse_only(only)
    base = check_arms(_search_base(config_file, overrides, flags), arms)
    _quiet_backend_start()
    from .search.ablate import ablate, format_report

    with _TrainOutput(False, as_json) as out:
        report = ablate(
            base,
            run_dir=run_dir,
            arms=arms,
            seeds=seeds,
            epochs_per_trial=epochs_per_trial,
            echo=out.echo,
        )
        out.summary = report
        if plot_path:
            from .plots import plot_ablations

            plot_ablations(report, plot_path)
            out.echo(f"wrote {plot_path}")
        out.echo(format_report(report))


ablate_command.late_backend = True


# --- evaluate and compete ----------------------------------------------------------
def _gtx580_clock(models, images, crops, seconds):
    """'this run took X here; it would have taken Y on 2x GTX 580 in 2012' for scoring."""
    from .profile import macs_per_image
    from .simulations import clock

    return clock.sentence(seconds, images * crops, macs_per_image=macs_per_image(models), training=False)


def _score_models(model_paths, source, ten_crop, only_imagenet_val, batch_size, precision=None):
    """Loads, scores and times; returns (score, models, clock sentence)."""
    import time

    from .evaluation import evaluate
    from .models.presets import load_models
    from .training.progress import Bar

    models = load_models(model_paths, precision=precision)
    start = time.perf_counter()
    with Bar("scoring", unit="images", stream=sys.stderr) as bar:  # stdout keeps the result (and --json)
        result = evaluate(
            models,
            source,
            ten_crop=ten_crop,
            only_imagenet_val=only_imagenet_val,
            batch_size=batch_size,
            names=list(model_paths),
            progress=bar,
        )
    took = time.perf_counter() - start
    return result, _gtx580_clock(models, result.images, 10 if ten_crop else 1, took)


@cli.command("plan")
@click.option("--variant", type=click.Choice(VARIANTS), default="2012", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Global batch.")
@click.option("--simulate-gtx580", is_flag=True, help="Two replicas of a 3 GB GTX 580, each taking half of the batch.")
@click.option(
    "--budget-gib",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Memory per replica in GiB (default: 3, a GTX 580 3 GB).",
)
@click.option(
    "--why-two-gpus",
    is_flag=True,
    help="Also model what cuda-convnet held per card (2012 net): one card vs the paper's two-card split.",
)
@click.option(
    "--parallel",
    type=click.Choice(PARALLEL_MODES),
    default=None,
    help="data: replicas (2 with --simulate-gtx580); towers: the paper's split over 2 cards, "
    "memory per card and bytes exchanged per step (arithmetic: any backend, any devices).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_command(variant, batch_size, simulate_gtx580, budget_gib, why_two_gpus, parallel, as_json):
    """Per-layer profile and training memory per replica: does the batch fit?"""
    from . import profile
    from .errors import UserError
    from .models import AlexNet
    from .simulations import clock, hardware, memory

    rows = profile.profile_model(AlexNet(variant))
    budget = hardware.GTX580.memory_bytes if budget_gib is None else int(budget_gib * 2**30)
    if parallel == "towers":
        return _plan_towers(rows, variant, batch_size, simulate_gtx580, budget, why_two_gpus, as_json)
    replicas = hardware.GTX580.cards_in_paper if simulate_gtx580 else 1
    p = memory.plan(rows, batch_size, replicas=replicas, budget_bytes=budget)
    macs = profile.totals(rows)["macs"]
    epoch = clock.gtx580_seconds(clock.IMAGES_PER_EPOCH, macs_per_image=macs)
    w = None
    if why_two_gpus:
        if variant != "2012":
            raise UserError(
                f"--why-two-gpus models the paper's 2012 network, not --variant {variant}: use --variant 2012"
            )
        w = memory.why_two_gpus(rows, batch_size, budget)
    if as_json:
        echo_json(
            {
                "variant": variant,
                "simulate_gtx580": simulate_gtx580,
                **p.as_dict(),
                "gtx580_epoch_seconds": epoch,
                **({"cuda_convnet_2012": w.as_dict()} if w else {}),
            }
        )
    else:
        click.echo(
            f"AlexNet {variant}: training plan for batch {batch_size}"
            + (" on 2x GTX 580 (3 GB each)" if simulate_gtx580 else "")
        )
        click.echo(memory.format_plan(p))
        click.echo(
            f"one epoch of {clock.IMAGES_PER_EPOCH:,} images: about "
            f"{clock.format_duration(epoch)} on 2x GTX 580 in 2012"
        )
        if w is not None:
            click.echo("")
            click.echo(memory.format_why_two_gpus(w))
    memory.check_fits(rows, batch_size, replicas=replicas, budget_bytes=budget)  # exit 2 after the plan


def _plan_towers(rows, variant, batch_size, simulate_gtx580, budget, why_two_gpus, as_json):
    """`plan --parallel towers`: each card's memory and the exchanges of the paper's split, on the 2012 clock."""
    from . import profile
    from .simulations import clock, memory

    t = memory.towers_plan(rows, batch_size, budget_bytes=budget)  # refuses a net without towers (owt)
    split = clock.split_breakdown(profile.totals(rows)["macs"], t.sent_bytes_per_card / batch_size)
    epoch = clock.IMAGES_PER_EPOCH * split["seconds_per_image"]
    w = memory.why_two_gpus(rows, batch_size, budget) if why_two_gpus else None
    if as_json:
        echo_json(
            {
                "variant": variant,
                "simulate_gtx580": simulate_gtx580,
                **t.as_dict(),
                "gtx580_epoch_seconds": epoch,
                "gtx580_split": split,
                **({"cuda_convnet_2012": w.as_dict()} if w else {}),
            }
        )
    else:
        click.echo(
            f"AlexNet {variant}: towers plan for batch {batch_size}"
            + (" on 2x GTX 580 (3 GB each)" if simulate_gtx580 else f" on 2 cards of {budget / 2**30:g} GiB")
        )
        click.echo(memory.format_towers_plan(t))
        click.echo(
            f"one epoch of {clock.IMAGES_PER_EPOCH:,} images: about {clock.format_duration(epoch)} on 2x GTX 580 "
            f"in 2012: per image {split['compute_seconds_per_image'] * 1e3:.2f} ms of compute (each card half "
            f"of every layer's MACs) + {split['exchange_seconds_per_image'] * 1e3:.3f} ms over PCIe "
            f"({split['exchange_share']:.1%}; {split['assumptions']})"
        )
        if w is not None:
            click.echo("")
            click.echo(memory.format_why_two_gpus(w))
    memory.check_towers_fits(rows, batch_size, budget_bytes=budget)  # exit 2 after the plan


_DATA_HELP = "Data: an image folder (class sub-folders), 'synthetic' or a TFDS name."


@cli.command("evaluate")
@click.option(
    "--model",
    "model_paths",
    multiple=True,
    required=True,
    type=click.Path(),
    help="A .keras model; repeat for an ensemble (softmax averaged).",
)
@click.option("--data", "source", required=True, help=_DATA_HELP)
@click.option("--ten-crop", is_flag=True, help="Average over the paper's ten patches.")
@click.option("--only-imagenet-val", is_flag=True, help="Keep only ILSVRC2012_val_* images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the score as JSON.")
@click.option(
    "--precision",
    type=click.Choice(constants.PRECISIONS),
    help="Score under this dtype policy (default: the model's own, float32 unless saved under a mixed one).",
)
def evaluate_command(model_paths, source, ten_crop, only_imagenet_val, batch_size, as_json, precision):
    """Top-1 and top-5 error with 95% intervals."""
    result, when = _score_models(model_paths, source, ten_crop, only_imagenet_val, batch_size, precision)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        echo_json(_evaluate_json(result, when))
    else:
        click.echo(result.summary())
        click.echo(when)


def _evaluate_json(result, when):
    """`evaluate --json`: the score's fields once each (the intervals only under "ci95"), and the clock."""
    fields = {k: v for k, v in result.as_dict().items() if k not in ("top1_ci95", "top5_ci95")}
    return {**fields, "clock": when}


@cli.command("compete")
@click.option("--year", type=click.Choice([str(y) for y in YEARS]), default=str(YEARS[-1]), show_default=True)
@click.option(
    "--model",
    "model_paths",
    multiple=True,
    type=click.Path(),
    help="A .keras model to place on the table; repeat for an ensemble.",
)
@click.option("--data", "source", default=None, help=_DATA_HELP)
@click.option("--name", default="your entry", show_default=True, help="Label of your entry.")
@click.option("--ten-crop", is_flag=True, help="Average over the paper's ten patches.")
@click.option("--only-imagenet-val", is_flag=True, help="Keep only ILSVRC2012_val_* images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the table (and your entry) as JSON.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a bar chart of the table, e.g. table.png.",
)
def compete_command(year, model_paths, source, name, ten_crop, only_imagenet_val, batch_size, as_json, plot_path):
    """Replay ILSVRC: the ranked table, and where your model would have placed."""
    from .errors import UserError
    from .plots import figure_format, plot_leaderboard
    from .simulations import report

    year = int(year)
    if bool(model_paths) != bool(source):
        raise UserError("--model and --data go together: give both to place a model, neither for the table")
    if plot_path:
        figure_format(plot_path)  # an unwritable path or unknown format fails before any scoring
    result = placement = when = None
    if model_paths:
        result, when = _score_models(model_paths, source, ten_crop, only_imagenet_val, batch_size)
        for w in result.warnings:
            click.echo(f"warning: {w}", err=True)
        placement = report.place_score(year, result.as_dict(), name)
    if as_json:
        echo_json(report.compete_report(year, placement, None if result is None else result.as_dict(), when))
    else:
        click.echo(report.compete_text(year, placement, None if result is None else result.summary(), when))
    if plot_path:
        plot_leaderboard(placement or year, plot_path)
        click.echo(f"wrote {plot_path}", err=as_json)


# --- convert, predict, show -------------------------------------------------------
@cli.command("convert")
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
def convert_command(src, dst):
    """Convert torchvision AlexNet weights (SRC.pth) to DST.keras, DST.weights.h5 or DST.npz."""
    from .models.presets import convert
    from .training.progress import Bar

    with Bar("convert", stream=sys.stderr) as bar:  # on stderr, so stdout keeps the result line
        model = convert(src, dst, progress=bar)
    click.echo(f"wrote {dst} (AlexNet {model.variant}, {model.classes} classes)")


@cli.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_path", type=click.Path(), help="A .keras model file.")
@click.option("--weights", type=click.Path(), help="Instead of --model: .pth (torchvision) or .npz weights.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Classes per image.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict_command(images, model_path, weights, top, as_json):
    """Top-k ImageNet classes, with probabilities, for each IMAGE."""
    from .constants import IMAGENET_CLASSES
    from .errors import UserError
    from .models.presets import load_model
    from .predict import predict

    flag, source = _predict_source(model_path, weights)
    for image in images:  # before the (slow) model load
        if os.path.isdir(image):
            raise UserError(f"{image} is a directory, not an image file")
        if not os.path.exists(image):
            raise UserError(f"image not found: {image}")
    try:
        model = load_model(source)
    except UserError as e:
        raise UserError(f"{flag} {source}: {e}") from None
    if getattr(model, "preprocessing", None) is None:
        raise UserError(f"{flag} {source} has no preprocessing spec, so it is not an AlexNet of this package; use one")
    classes = getattr(model, "classes", None)
    if getattr(model, "class_wnids", None) is None and classes not in (None, IMAGENET_CLASSES):
        raise UserError(
            f"{flag} {source} has {classes} outputs and records no class wnids (as after training on synthetic "
            "data), so predict cannot name its classes"
        )
    try:
        results = predict(list(images), model=model, top=top)
    except UserError as e:  # predict names a model object "the model": say which flag gave it
        message = str(e)
        if message.startswith("the model "):
            raise UserError(f"{flag} {source} {message[len('the model ') :]}") from None
        raise
    warning = _imagenet_names_warning(model, source, flag)  # after the images passed: an error stays one line
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(
            [
                {"image": image, "predictions": [{"wnid": w, "name": n, "probability": p} for w, n, p in preds]}
                for image, preds in zip(images, results, strict=True)
            ]
        )
        return
    for image, preds in zip(images, results, strict=True):
        click.echo(image)
        for rank, (wnid, name, prob) in enumerate(preds, 1):
            click.echo(f"  {rank}. {name} ({wnid})  {prob:.4f}")


def _predict_source(model_path, weights):
    """(flag, path) of predict's model: exactly one of --model and --weights, an existing file of its kind."""
    from .errors import UserError

    if bool(model_path) == bool(weights):
        raise UserError("predict needs exactly one of model files: --model (a .keras file) or --weights (.pth or .npz)")
    flag, path, kinds = ("--model", model_path, (".keras",)) if model_path else ("--weights", weights, (".pth", ".npz"))
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a directory: give a {' or '.join(kinds)} file")
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path}: file not found")
    return flag, path


def _imagenet_names_warning(model, source, flag="--model"):
    """One line when the ImageNet names predict prints cannot be what the model learned, else None.

    A model trained on synthetic data has no class wnids, so its outputs would be
    read as ImageNet-1k's; its run directory (`RUN/checkpoints/x.keras`) says so in
    summary.json or config.json. A `--model` without wnids from elsewhere gets the milder
    warning; `--weights` (converted torchvision weights) are ImageNet's by construction.
    """
    if getattr(model, "class_wnids", None) is not None:
        return None
    here = os.path.dirname(os.path.abspath(source))
    run = os.path.dirname(here) if os.path.basename(here) == "checkpoints" else here
    synthetic = None
    try:
        with open(os.path.join(run, "summary.json"), encoding="utf-8") as f:
            synthetic = bool(json.load(f).get("synthetic_data"))
    except (OSError, ValueError, AttributeError):
        try:
            with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
                synthetic = json.load(f)["config"].get("data") in (None, "synthetic")
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass
    if synthetic:
        return f"{source} was trained on synthetic data ({run}): the ImageNet names below are not classes it learned"
    if flag == "--weights":
        return None
    return (
        f"{source} does not record its classes (no class_wnids, as after training on synthetic data): "
        "the names below assume ImageNet-1k's order"
    )


@cli.group()
def show():
    """Figures: the paper's filters (Figure 3) and a run's training curves."""


@show.command("filters")
@click.option("--model", "model_path", required=True, type=click.Path(), help="A .keras model, or .pth/.npz weights.")
@click.option("--out", required=True, type=click.Path(), help="Image file to write, e.g. fig3.png.")
def show_filters(model_path, out):
    """conv1's kernels as in the paper's Figure 3 (two GPU groups for 2012)."""
    from .plots import plot_filters

    fig = plot_filters(model_path, out)
    click.echo(f"wrote {out} ({len(fig.axes)} kernels)")


@show.command("curves", cls=click.Command)  # plain Command: needs no Keras, so it starts none
@click.option(
    "--run-dir",
    "run_dirs",
    multiple=True,
    required=True,
    type=click.Path(),
    help="A training run directory (its history.csv); repeat to overlay runs.",
)
@click.option("--label", "labels", multiple=True, help="Legend label per --run-dir, in order (default: folder names).")
@click.option("--out", type=click.Path(), help="Image file to write (default: curves.png in the first --run-dir).")
def show_curves(run_dirs, labels, out):
    """Loss, top-1 and top-5 error against epoch (lr drops marked, 2012-clock axis)."""
    from .plots import plot_curves

    out = out or os.path.join(run_dirs[0], "curves.png")
    plot_curves(list(run_dirs), out, labels=list(labels) or None)
    click.echo(f"wrote {out} ({len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''})")


def main(argv=None):
    """Console entry point: one-line errors with exit 2, never a traceback for bad input."""
    from .errors import UserError

    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
        code = 0
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else PROG
        click.echo(f"{PROG}: error: {e.format_message()} (see '{where} --help')", err=True)
        code = 2
    except (click.ClickException, UserError) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        click.echo(f"{PROG}: error: {message}", err=True)
        code = 2
    except click.Abort:
        click.echo(f"{PROG}: aborted", err=True)
        code = 130
    multihost = sys.modules.get("alexnet_keras.training.multihost")  # loaded only by multi-process runs
    if multihost is not None:
        multihost.finish(code or 0)  # a failed process leaves at once; the others learn it from the watchdog
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
