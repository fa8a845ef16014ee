"""What `tune` and `ablate` share: a keras-tuner `HyperModel` whose trials are `train` runs.

Each trial is the package's own `alexnet-keras train` (`training.loop.train`) on
the trial's `TrainConfig`, in its own run directory (`RUN/trials/trial_ID`) and
its own child process: the same model, PaperSGD, data pipeline, callbacks and
device setup (`training.distribute`: MirroredStrategy for `--simulate-gtx580`,
`keras.distribution` on JAX) as a `train` run. There is no second training loop,
and keras-tuner's own `distribution_strategy=` is not used: `train` sets the
strategy up itself, on either backend. The process per trial keeps the search's
memory flat (keras-tuner #873, #1031: in one process each trial added ~780 MiB).

keras-tuner keeps the search: its oracles (random, Bayesian, Hyperband, grid),
`directory`/`project_name`, `overwrite=False` to resume, and the trial records.
`RecipeTuner` adds three things to its tuner classes:

* the memory planner as a constraint: a trial whose batch does not fit the budget
  is rejected before anything is built (`FailedTrialError`, recorded with its plan),
  and rejections neither abort the search nor count towards `max_trials`;
* the 2012 clock as a budget: no new trial starts once the trials' summed
  2012-equivalent training time has passed `budget_seconds`;
* resume: a trial killed mid-run is retried by keras-tuner and resumes its own
  run directory (`train(resume=True)`) from its last finished epoch.
"""

import json
import math
import os
import pathlib
import resource
import shutil
import subprocess
import sys

import keras
import keras_tuner

from .. import profile
from ..errors import UserError
from ..models import AlexNet
from ..simulations import memory
from ..training.rundir import RunDir

OBJECTIVE = "val_top1_error"
PROJECT = "tuner"  # keras-tuner's project_name, a folder in the run directory
TRIALS = "trials"  # the trials' own run directories
PLAN_FILE = "plan.json"  # a rejected trial's memory plan, in keras-tuner's trial folder
REJECTED = "rejected: "  # how a rejected trial's message starts
MAX_REJECTIONS = 100  # a search that keeps drawing batches that don't fit stops here
BIG_FILE = 16 * 2**20  # a Hyperband child links its parent's checkpoints rather than copying them
Z95 = 1.96  # the normal distribution's two-sided 95% quantile


class SearchError(keras_tuner.errors.FatalError):
    """Bad input found inside a trial (a `UserError`): the whole search stops with its message."""


def objective():
    return keras_tuner.Objective(OBJECTIVE, direction="min")


class MemoryCheck:
    """The memory planner for trials: one profile per architecture, a plan per batch; nothing trains."""

    def __init__(self, classes, budget_bytes, replicas):
        self.classes, self.budget_bytes, self.replicas = classes, budget_bytes, replicas
        self._rows = {}

    def plan(self, config):
        """`(plan, why it does not fit)`: the reason is None when it fits; the plan None when none can be made."""
        key = (config.variant, json.dumps(config.model_switches(), sort_keys=True))
        if key not in self._rows:  # the architecture's profile, built once before its first trial
            model = AlexNet(config.variant, classes=self.classes, **config.model_switches())
            self._rows[key] = [r.as_dict() for r in profile.profile_model(model)]
            del model
            keras.backend.clear_session()
        try:
            p = memory.plan(self._rows[key], config.batch_size, self.replicas, budget_bytes=self.budget_bytes)
        except UserError as e:  # e.g. a batch that does not split over the replicas
            return None, str(e)
        return p, None if p.fits else memory.fit_error(p)


class RecipeHyperModel(keras_tuner.HyperModel):
    """A trial's hyperparameters -> a `TrainConfig` (`build`) -> a `train()` run (`fit`).

    Args:
        base: the `TrainConfig` every trial starts from (the shared flags).
        declare: a function declaring the searched hyperparameters on an `hp`.
        configure: a function `(base, hp.values) -> TrainConfig`.
        epochs: epochs per trial (Hyperband's `tuner/epochs` wins).
        echo: where each line of the trials' `train` output goes.
    """

    def __init__(self, base, declare, configure, epochs, echo=print):
        super().__init__(name="alexnet_recipe")
        self.base, self._declare, self._configure = base, declare, configure
        self.epochs, self.echo = epochs, echo

    def declare_hyperparameters(self, hp):
        self._declare(hp)

    def build(self, hp):
        """The trial's `TrainConfig`. Pure: keras-tuner also calls it once to discover the space."""
        values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
        return self._configure(self.base, values).update(epochs=hp.values.get("tuner/epochs", self.epochs))

    def fit(self, hp, config, run_dir, parent_dir=None):
        """Trains the trial with `alexnet-keras train` in a child process; returns its metrics for the oracle."""
        run_dir = pathlib.Path(run_dir)
        config = config.update(run_dir=str(run_dir))
        resume = (run_dir / "config.json").exists()
        if not resume and run_dir.exists():  # killed before its first write: nothing to keep
            shutil.rmtree(run_dir)
        if not resume and parent_dir is not None:  # Hyperband: go on from the parent trial's weights
            _copy_run(pathlib.Path(parent_dir), run_dir)
            resume = True
        summary, peak = run_train(config, resume, self.echo)
        return trial_metrics(summary, hp.values.get("tuner/initial_epoch", 0), peak)


def run_train(config, resume, echo=print):
    """`alexnet-keras train` on `config` in a child process: `(summary, the child's peak RSS in MiB)`.

    A process per trial, because one process training trial after trial grows by
    hundreds of MiB each time (keras-tuner #873, #1031; measured here, see the
    README). The child dies with this process (`PR_SET_PDEATHSIG`), so a killed
    search leaves no trial training on its own. Its output lines go to `echo`.
    """
    run_dir = pathlib.Path(config.run_dir)
    spec = run_dir.with_name(run_dir.name + ".config.json")  # beside the run: train wants a fresh directory
    RunDir(spec.parent).write_json(spec.name, {k: v for k, v in config.as_dict().items() if v is not None})
    argv = [sys.executable, "-m", "alexnet_keras_cli", "train", "--config", str(spec), "--json"]
    child = subprocess.Popen(
        argv + (["--resume"] if resume else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )
    last = _forward(child.stderr, echo)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = code = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss / 1024
    if code == 0:
        return json.loads(out), peak
    message = last.removeprefix("alexnet-keras: error: ") or f"train exited with status {code}"
    if code == 2:  # bad input: every trial would fail the same way
        raise SearchError(message)
    raise keras_tuner.errors.FailedTrialError(f"stopped: {message}" if code == 1 else message)


def _forward(stream, echo):
    """Echoes a child's lines as they come; returns the last non-empty one."""
    last = ""
    for line in stream:
        line = line.rstrip("\n")
        echo(line)
        last = line.strip() or last
    return last


def _die_with_parent():
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass  # elsewhere a killed search may leave its trial to finish on its own


def trial_metrics(summary, initial_epoch=0, trial_peak_rss_mib=None):
    """What the oracle records for a finished trial: the objective, the other errors, time and memory.

    `seconds_2012` counts only this trial's own epochs (a Hyperband child's
    parent epochs were counted with the parent). `rss_mib` is the searching
    process's own resident memory after the trial: what must not grow.
    """
    done = summary["epochs_completed"] or 0
    own = (done - initial_epoch) / done if done else 0.0
    best = summary["best_val_top1_error"]
    return {
        OBJECTIVE: best if best is not None else float("nan"),
        "final_val_top1_error": _number(summary["val_top1_error"]),
        "final_val_top5_error": _number(summary["val_top5_error"]),
        "seconds_2012": summary["gtx580_equivalent_seconds"] * own,
        "seconds_here": summary["seconds_here"],
        "rss_mib": current_rss_mib(),
        "trial_peak_rss_mib": _number(trial_peak_rss_mib),
    }


def _number(value):
    return float("nan") if value is None else float(value)


def current_rss_mib():
    """This process's resident memory now, in MiB (Linux /proc; the peak where it is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _copy_run(source, target):
    """A copy of a finished trial's run directory; checkpoints are hard links (writes replace, never edit)."""

    def copy(src, dst):
        if os.path.getsize(src) >= BIG_FILE:
            try:
                return os.link(src, dst)
            except OSError:
                pass
        return shutil.copy2(src, dst)

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=copy)
    os.replace(tmp, target)


class RecipeTuner:
    """Mixed in before a keras-tuner tuner class: trials run `RecipeHyperModel.fit` (see the module docstring).

    Args:
        check: a `MemoryCheck`, or None for no memory constraint.
        budget_seconds: the 2012-clock budget, or None.
        trials: the requested `max_trials` (rejections don't use it up), or None.
    """

    def __init__(self, *args, check=None, budget_seconds=None, trials=None, **kwargs):
        self.check, self.budget_seconds, self.requested_trials = check, budget_seconds, trials
        self.budget_spent = False
        self._rejections = {}
        super().__init__(*args, **kwargs)

    @property
    def run_root(self):
        return pathlib.Path(self.project_dir).parent

    def trial_run_dir(self, trial_id):
        return self.run_root / TRIALS / f"trial_{trial_id}"

    def _try_run_and_update_trial(self, trial, *args, **kwargs):
        from keras_tuner.src import config as tuner_config  # DEBUG (True in 1.4.8) prints each failure's traceback

        debug, tuner_config.DEBUG = tuner_config.DEBUG, False
        try:
            return super()._try_run_and_update_trial(trial, *args, **kwargs)
        finally:
            tuner_config.DEBUG = debug

    def pre_create_trial(self):
        trials = list(self.oracle.trials.values())
        rejected = sum(is_rejected(t) for t in trials)
        if self.requested_trials is not None:
            self.oracle.max_trials = self.requested_trials + min(rejected, MAX_REJECTIONS)
        if self.budget_seconds is not None and trials and seconds_2012(trials) >= self.budget_seconds:
            self.budget_spent = True
            self.oracle.max_trials = len(trials)  # the oracle's own stop: no new trial
        if rejected >= MAX_REJECTIONS:
            self.oracle.max_trials = len(trials)

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        config = self.hypermodel.build(hp)
        if self.check is not None:  # before anything is built
            plan, reason = self.check.plan(config)
            if reason is not None:
                self._reject(trial, reason, plan)
        parent = hp.values.get("tuner/trial_id")
        parent_dir = self.trial_run_dir(parent) if parent else None
        return self.hypermodel.fit(hp, config, self.trial_run_dir(trial.trial_id), parent_dir=parent_dir)

    def _reject(self, trial, reason, plan):
        self._rejections[trial.trial_id] = REJECTED + reason
        if plan is not None:
            RunDir(self.get_trial_dir(trial.trial_id)).write_text(PLAN_FILE, json.dumps(plan.as_dict(), indent=1))
        raise keras_tuner.errors.FailedTrialError(REJECTED + reason)

    def on_trial_end(self, trial):
        if trial.trial_id in self._rejections:  # one line, not keras-tuner's traceback
            trial.message = self._rejections.pop(trial.trial_id)
        elif trial.message and trial.status == "FAILED":
            trial.message = trial.message.strip().splitlines()[-1]
        super().on_trial_end(trial)

    def load_model(self, trial):
        """The trial's best checkpoint, as `get_best_models()` expects (loaded in safe mode)."""
        from ..models import load_model

        return load_model(self.trial_run_dir(trial.trial_id) / "checkpoints" / "best.keras")

    def save_model(self, trial_id, model, step=0):
        """Nothing to do: `train()` already checkpoints every trial in its run directory."""


def validated_images(config, info):
    """The images a trial's validation scored: the whole set, or `--validation-steps` batches of it."""
    if config.validation_steps is None:
        return info.val_examples
    return min(info.val_examples, config.validation_steps * config.batch_size)


def chance_interval(classes, n):
    """(error, half width): guessing's top-1 error over `classes` and its 95% binomial half width on `n` images."""
    chance = 1 - 1 / classes
    return chance, Z95 * math.sqrt(chance * (1 - chance) / n)


def at_chance(top1_error, classes, n):
    """Whether a top-1 error on `n` images cannot be told from guessing (inside guessing's 95% interval)."""
    chance, half = chance_interval(classes, n)
    return bool(abs(top1_error - chance) <= half)  # keras-tuner's scores are numpy floats: JSON wants a bool


def text_table(header, rows):
    """Rows of cells as left-aligned text columns, the header first."""
    rows = [[str(x) for x in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def is_rejected(trial):
    return trial.status == "FAILED" and (trial.message or "").startswith(REJECTED)


def seconds_2012(trials):
    """The trials' summed 2012-equivalent training seconds."""
    total = 0.0
    for t in trials:
        if t.metrics.exists("seconds_2012"):
            total += t.metrics.get_last_value("seconds_2012")
    return total


TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
    "grid": keras_tuner.GridSearch,
}


def make_tuner(kind, hypermodel, run_dir, *, seed, check=None, budget_seconds=None, max_trials=None, max_epochs=None):
    """A keras-tuner tuner of `kind` over `hypermodel`, resuming the search in `run_dir` if there is one."""
    cls = type(f"Recipe{TUNERS[kind].__name__}", (RecipeTuner, TUNERS[kind]), {})
    kwargs = dict(
        objective=objective(),
        seed=seed,
        directory=str(run_dir),
        project_name=PROJECT,
        overwrite=False,  # resume: finished trials are read back, a killed one retried
        max_consecutive_failed_trials=10**9,  # rejected or diverged trials never abort the search
    )
    if kind == "hyperband":
        kwargs["max_epochs"] = max_epochs
    elif max_trials is not None:
        kwargs["max_trials"] = max_trials
    return cls(hypermodel, check=check, budget_seconds=budget_seconds, trials=max_trials, **kwargs)
