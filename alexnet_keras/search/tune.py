"""`alexnet-keras tune`: a keras-tuner search over the training recipe, under the 2012 limits.

`tune(base, ...)` searches lr, weight decay, momentum, dropout, init and batch
size (`space.DEFAULT_SPACE`, or a `--space` file) with keras-tuner's random,
Bayesian or Hyperband search. Every trial is a `train()` run (`search.trials`).
The run directory holds keras-tuner's folder (`tuner/`), the trials' run
directories (`trials/`), the report (`trials.json`, `trials.csv`) and
`best_config.json`, which `alexnet-keras train --config` accepts unchanged.
"""

import csv
import io
import json
import pathlib

from ..errors import UserError
from ..simulations import clock, hardware
from ..training.config import TrainConfig
from ..training.loop import pinned_data_info
from ..training.rundir import RunDir
from . import space as spaces
from .trials import (
    OBJECTIVE,
    MemoryCheck,
    RecipeHyperModel,
    SearchError,
    at_chance,
    chance_interval,
    is_rejected,
    make_tuner,
    seconds_2012,
    text_table,
    validated_images,
)

TUNER_KINDS = ("hyperband", "random", "bayesian")
REPORT = "trials.json"
TABLE = "trials.csv"
BEST_CONFIG = "best_config.json"
DEFAULT_MAX_TRIALS = 8
DEFAULT_EPOCHS_PER_TRIAL = 3
DEFAULT_MAX_EPOCHS = 9  # Hyperband: the most epochs one trial gets
# Fields a trial's run sets for itself; best_config.json leaves them out so `train --config` starts a new run.
_RUN_FIELDS = ("run_dir", "coordinator", "num_processes", "process_id")


def budget_bytes(simulate_gtx580, budget_gib):
    """The memory budget per replica: `--budget-gib`, else a GTX 580's 3 GiB under `--simulate-gtx580`, else none."""
    if budget_gib is not None:
        return int(budget_gib * 2**30)
    return hardware.GTX580.memory_bytes if simulate_gtx580 else None


def memory_check(base, info, budget):
    """A `MemoryCheck` for the base config's devices (the paper's 2 cards under --simulate-gtx580), or None."""
    if budget is None:
        return None
    return MemoryCheck(info.classes, budget, replicas=hardware.GTX580.cards_in_paper if base.simulate_gtx580 else 1)


def check_some_fit(check, base, batches):
    """`UserError` when no batch the space can give fits the budget: the search could only reject."""
    if check is None:
        return
    verdicts = [check.plan(base.update(batch_size=b)) for b in batches]
    if all(reason is not None for _, reason in verdicts):
        largest = max((p.max_per_replica_batch * p.replicas for p, _ in verdicts if p is not None), default=0)
        raise UserError(
            f"no batch in the search space ({', '.join(map(str, batches))}) fits the memory budget of "
            f"{check.budget_bytes / 2**30:.2f} GiB per replica; the largest that fits is about {largest}"
        )


def tune(
    base,
    *,
    run_dir,
    space=None,
    tuner="hyperband",
    max_trials=DEFAULT_MAX_TRIALS,
    max_epochs=DEFAULT_MAX_EPOCHS,
    epochs_per_trial=DEFAULT_EPOCHS_PER_TRIAL,
    seed=0,
    budget_2012=None,
    budget_gib=None,
    pinned=None,
    echo=print,
):
    """Runs (or resumes) a search; returns the report that `trials.json` holds.

    Args:
        base: the `TrainConfig` every trial starts from.
        run_dir: the search's directory; the same directory resumes.
        space: a checked space (`space.load_space`); default: `DEFAULT_SPACE`.
        tuner: "hyperband", "random" or "bayesian".
        max_trials: trials for random and Bayesian search (rejected ones don't count).
        max_epochs: Hyperband's most epochs per trial.
        epochs_per_trial: epochs of each random or Bayesian trial.
        seed: the tuner's seed (trials train with `base.seed`).
        budget_2012: a duration ("1 week") of 2012-clock training time, or None.
        budget_gib: memory per replica in GiB (default: 3 under --simulate-gtx580).
        pinned: fields fixed by the caller, out of the search (e.g. {"batch_size": 64}).
    """
    if tuner not in TUNER_KINDS:
        raise UserError(f"--tuner must be one of {', '.join(TUNER_KINDS)}, got {tuner!r}")
    budget_seconds = _budget_seconds(budget_2012)
    space = spaces.pin(spaces.check_space(space or spaces.DEFAULT_SPACE), **(pinned or {}))
    base, info = pinned_data_info(base.validate())  # best_config.json keeps a plain folder's split too
    check = memory_check(base, info, budget_bytes(base.simulate_gtx580, budget_gib))
    check_some_fit(check, base, spaces.batch_choices(space, base.batch_size))
    run_dir = pathlib.Path(run_dir)
    _check_same_search(run_dir, space, tuner, seed)

    hypermodel = RecipeHyperModel(
        base,
        declare=lambda hp: spaces.declare(space, hp),
        configure=lambda config, values: config.update(**values),
        epochs=epochs_per_trial,
        echo=echo,
    )
    try:
        search = make_tuner(
            tuner,
            hypermodel,
            run_dir,
            seed=seed,
            check=check,
            budget_seconds=budget_seconds,
            max_trials=None if tuner == "hyperband" else max_trials,
            max_epochs=max_epochs,
        )
    except ImportError as e:  # BayesianOptimization's scipy and scikit-learn are an extra
        raise UserError(
            f"--tuner {tuner} needs {e.name or 'scipy and scikit-learn'}: pip install 'alexnet-keras[bayesian]'"
        ) from None
    try:
        search.search()
    except SearchError as e:
        raise UserError(str(e)) from None
    report = build_report(search, base, space, tuner, seed, budget_seconds, info)
    write_report(run_dir, report)
    return report


def _budget_seconds(text):
    if text is None:
        return None
    try:
        return clock.parse_duration(text)
    except ValueError as e:
        raise UserError(f"--budget-2012: {e}") from None


def _check_same_search(run_dir, space, tuner, seed):
    """A resumed search must be the same search: keras-tuner would mix two spaces in one oracle."""
    saved = run_dir / "search.json"
    record = {"tuner": tuner, "seed": seed, "space": space}
    if saved.exists():
        old = json.loads(saved.read_text())
        if old != json.loads(json.dumps(record)):
            raise UserError(
                f"{run_dir} holds another search ({old['tuner']}, seed {old['seed']}, its own space); "
                "give a new --run-dir, or the same --tuner, --seed and --space to resume it"
            )
        return
    RunDir(run_dir).write_json(saved.name, record)


def trial_rows(search):
    """One dict per trial, in start order: id, status, objective, hyperparameters, 2012 time, memory."""
    rows = []
    for trial_id in search.oracle.start_order:
        t = search.oracle.trials[trial_id]
        metrics = {name: t.metrics.get_last_value(name) for name in t.metrics.metrics}
        status = "REJECTED" if is_rejected(t) else t.status
        rows.append(
            {
                "trial_id": t.trial_id,
                "status": status,
                "objective": t.score if t.status == "COMPLETED" else None,
                "hyperparameters": dict(t.hyperparameters.values),
                "seconds_2012": metrics.get("seconds_2012"),
                "seconds_here": metrics.get("seconds_here"),
                "rss_mib": metrics.get("rss_mib"),
                "trial_peak_rss_mib": metrics.get("trial_peak_rss_mib"),
                "message": t.message if t.status != "COMPLETED" else None,
                "run_dir": str(search.trial_run_dir(t.trial_id)) if not is_rejected(t) else None,
            }
        )
    return rows


def build_report(search, base, space, tuner, seed, budget_seconds, info):
    rows = trial_rows(search)
    for r in rows:  # a trial whose best error is guessing's did not train: its settings failed, nothing finer
        batch = r["hyperparameters"].get("batch_size", base.batch_size)
        scored = validated_images(base.update(batch_size=batch), info)
        r["at_chance"] = None if r["objective"] is None else at_chance(r["objective"], info.classes, scored)
    n = validated_images(base, info)
    done = [r for r in rows if r["objective"] is not None]
    best = min(done, key=lambda r: r["objective"]) if done else None
    spent = seconds_2012(search.oracle.trials.values())
    week = clock.parse_duration("1 week")
    epoch_2012 = clock.gtx580_seconds(clock.IMAGES_PER_EPOCH)
    return {
        "objective": OBJECTIVE,
        "tuner": tuner,
        "seed": seed,
        "space": space,
        "data": info.describe(),
        "trials": rows,
        "best": best,
        "validation_images": n,
        "chance_top1_error": chance_interval(info.classes, n),
        "best_config": _best_config(base, best) if best else None,
        "budget_2012_seconds": budget_seconds,
        "spent_2012_seconds": spent,
        "stopped_by_budget": search.budget_spent,
        "week_2012": {
            "imagenet_epochs": week / epoch_2012,
            "trials_like_these": week / (spent / len(done)) if done and spent else None,
        },
    }


def _best_config(base, best):
    config = base.update(**{k: v for k, v in best["hyperparameters"].items() if not k.startswith("tuner/")})
    return {k: v for k, v in config.as_dict().items() if k not in _RUN_FIELDS}


def write_report(run_dir, report):
    """`trials.json`, `trials.csv` and `best_config.json`, each written whole (temp file, then rename)."""
    run = RunDir(run_dir)
    run.write_json(REPORT, report)
    run.write_text(TABLE, table_csv(report))
    if report["best_config"] is not None:
        TrainConfig().update(**report["best_config"]).validate()  # what `train --config` will read
        run.write_json(BEST_CONFIG, report["best_config"])


def _hp_names(report):
    return sorted({k for r in report["trials"] for k in r["hyperparameters"] if not k.startswith("tuner/")})


def table_csv(report):
    names = _hp_names(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial_id", "status", OBJECTIVE, *names, "seconds_2012", "rss_mib"])
    for r in report["trials"]:
        writer.writerow(
            [r["trial_id"], r["status"], r["objective"], *(r["hyperparameters"].get(n) for n in names)]
            + [r["seconds_2012"], r["rss_mib"]]
        )
    return out.getvalue()


def format_report(report):
    """The trials table and what the search found, as text."""
    names = _hp_names(report)
    header = ["trial", "status", "top-1 err", *names, "2012 time", "RSS MiB"]
    lines = []
    for r in report["trials"]:
        hps = r["hyperparameters"]
        lines.append(
            [
                r["trial_id"],
                r["status"].lower(),
                f"{r['objective']:.2%}" if r["objective"] is not None else "-",
                *(_fmt(hps.get(n)) for n in names),
                clock.format_duration(r["seconds_2012"]) if r["seconds_2012"] is not None else "-",
                f"{r['rss_mib']:.0f}" if r["rss_mib"] is not None else "-",
            ]
        )
    text = text_table(header, lines)
    for r in report["trials"]:
        if r["status"] in ("REJECTED", "FAILED", "INVALID") and r["message"]:
            text.append(f"trial {r['trial_id']} {r['status'].lower()}: {r['message']}")
    failed = [r["trial_id"] for r in report["trials"] if r.get("at_chance")]
    if failed:
        chance, half = report["chance_top1_error"]
        text.append(
            f"trial{'s' if len(failed) > 1 else ''} {', '.join(failed)}: did not learn (best top-1 error within "
            f"guessing's {chance:.1%} +- {half:.1%}): those settings failed to train here"
        )
    best = report["best"]
    if best:
        text.append(f"best: trial {best['trial_id']}, validation top-1 error {best['objective']:.2%}")
    else:
        text.append("best: none (no trial finished)")
    spent, week = report["spent_2012_seconds"], report["week_2012"]
    text.append(f"2012 clock: the trials trained for {clock.format_duration(spent)} of two GTX 580s' time")
    if report["stopped_by_budget"]:
        text.append(f"stopped: the budget of {clock.format_duration(report['budget_2012_seconds'])} is spent")
    sentence = f"a week of two GTX 580s bought {week['imagenet_epochs']:.1f} epochs of ImageNet (1.2M images)"
    if week["trials_like_these"]:
        sentence += f", or about {week['trials_like_these']:.0f} trials like these"
    text.append(sentence)
    return "\n".join(text)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
