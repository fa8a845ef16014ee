"""`tune` and `ablate` (alexnet_keras.search): the space, the memory constraint, the intervals, and real searches.

The fast tests check the pieces against hand-computed values. The slow ones run
the real CLI in subprocesses on tiny synthetic data: a 5-trial search whose
`best_config.json` `train --config` accepts and whose own memory stays flat, a
search killed with SIGKILL and rerun, and a tiny ablation grid.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import keras_tuner
import numpy as np
import pytest

from alexnet_keras.errors import UserError
from alexnet_keras.search import arms, space, trials
from alexnet_keras.search.ablate import epochs_to, format_report, honesty, interval
from alexnet_keras.search.trials import at_chance, chance_interval
from alexnet_keras.simulations import ablations, clock, memory
from alexnet_keras.training.config import TrainConfig

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
TINY = [
    "--batch-size",
    "8",
    "--steps-per-epoch",
    "2",
    "--validation-steps",
    "1",
    "--set",
    "synthetic_classes=10",
    "--set",
    "synthetic_train_examples=32",
    "--set",
    "synthetic_val_examples=16",
]


# --- the space ------------------------------------------------------------------------------
def test_default_space_is_the_issues():
    s = space.load_space()
    assert s["lr"] == {"min": 1e-3, "max": 5e-2, "sampling": "log"}
    assert (s["weight_decay"]["min"], s["weight_decay"]["max"]) == (1e-4, 1e-3)
    assert (s["momentum"]["min"], s["momentum"]["max"]) == (0.8, 0.95)
    assert (s["dropout_rate"]["min"], s["dropout_rate"]["max"]) == (0.3, 0.6)
    assert s["init"]["choices"] == ["paper", "caffe"] and s["batch_size"]["choices"] == [64, 128, 256]


def test_declare_gives_keras_tuner_hyperparameters():
    hp = keras_tuner.HyperParameters()
    tuned = space.declare(space.pin(space.DEFAULT_SPACE, batch_size=32), hp)
    assert "batch_size" not in tuned and hp.values["batch_size"] == 32  # pinned: fixed, out of the search
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds["lr"] == "Float" and kinds["init"] == "Choice" and kinds["batch_size"] == "Fixed"
    assert hp.space[[p.name for p in hp.space].index("lr")].sampling == "log"


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"learning_rate": 0.1}, "unknown hyperparameter 'learning_rate'"),
        ({"lr": {"min": 0.1, "max": 0.01}}, "lr has an empty range"),
        ({"lr": {"min": 0.0, "max": 0.1, "sampling": "log"}}, "log range needs min > 0"),
        ({"momentum": {"min": 0.5, "max": 1.5}}, "bad value for momentum: 1.5"),
        ({"batch_size": {"choices": []}}, "batch_size has no choices"),
        ({"batch_size": {"min": 8.5, "max": 64}}, "bad value for batch_size: 8.5 (expected an integer"),
        ({"init": {"choices": ["paper", "he"]}}, "bad value for init: 'he'"),
        ({"lr": {"min": 0.001, "max": 0.1, "sampling": "cubic"}}, "sampling must be linear or log"),
    ],
)
def test_bad_spaces_are_refused(bad, fragment):
    with pytest.raises(UserError, match=None) as e:
        space.check_space(bad)
    assert fragment in str(e.value)


def test_batch_choices():
    assert space.batch_choices({"batch_size": {"choices": [256, 64]}}, 128) == [64, 256]
    assert space.batch_choices({"batch_size": {"min": 16, "max": 64}}, 128) == [16, 64]
    assert space.batch_choices({}, 128) == [128]


def test_budget_durations():
    assert clock.parse_duration("1 week") == 7 * 86400
    assert clock.parse_duration("36 h") == 36 * 3600 == clock.parse_duration("1.5 days")
    for bad in ("a week", "3 fortnights", "0 min", "-2 h"):
        with pytest.raises(ValueError, match="cannot read the duration"):
            clock.parse_duration(bad)


# --- the memory constraint ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def check():
    return trials.MemoryCheck(classes=1000, budget_bytes=memory.GTX580_MEMORY_BYTES, replicas=2)


def test_memory_check_agrees_with_the_planner(check):
    from alexnet_keras import AlexNet, profile

    rows = [r.as_dict() for r in profile.profile_model(AlexNet())]
    for batch in (128, 256, 512):
        mine, reason = check.plan(TrainConfig(batch_size=batch))
        theirs = memory.plan(rows, batch, replicas=2)
        assert mine.total_bytes == theirs.total_bytes and mine.fits == theirs.fits
        assert reason == (None if theirs.fits else memory.fit_error(theirs))
    assert check.plan(TrainConfig(batch_size=256))[0].fits and not check.plan(TrainConfig(batch_size=512))[0].fits
    assert "does not split evenly" in check.plan(TrainConfig(batch_size=129))[1]


def test_rejected_trial_builds_nothing(check, tmp_path, monkeypatch):
    """A batch over 3 GB fails the trial before any model is built or any training starts."""
    import alexnet_keras.models.alexnet as alexnet_module

    check.plan(TrainConfig())  # the profile of the architecture: built before the search, as `tune` does
    built = []
    original = alexnet_module.AlexNet.__init__
    monkeypatch.setattr(
        alexnet_module.AlexNet, "__init__", lambda self, *a, **k: built.append(1) or original(self, *a, **k)
    )
    monkeypatch.setattr(trials, "run_train", lambda *a, **k: pytest.fail("a rejected trial trained"))
    hypermodel = trials.RecipeHyperModel(
        TrainConfig(), lambda hp: hp.Choice("batch_size", [512]), lambda c, v: c.update(**v), epochs=1
    )
    tuner = trials.make_tuner("random", hypermodel, tmp_path, seed=0, check=check, max_trials=1)
    trial = tuner.oracle.create_trial("tuner0")
    tuner._try_run_and_update_trial(trial)
    tuner.on_trial_end(trial)
    assert trial.status == "FAILED" and trials.is_rejected(trial)
    assert trial.message.startswith("rejected: batch 512 does not fit: 4.49 GiB per replica (2 x 256 images)")
    assert built == []
    assert (
        json.loads((tmp_path / trials.PROJECT / f"trial_{trial.trial_id}" / trials.PLAN_FILE).read_text())["batch_size"]
        == 512
    )
    tuner.pre_create_trial()
    assert tuner.oracle.max_trials == 2  # the rejection did not use up the one requested trial


def test_the_2012_budget_stops_the_search(tmp_path):
    """Once the finished trials' 2012-clock seconds pass the budget, the oracle creates no new trial."""
    hypermodel = trials.RecipeHyperModel(
        TrainConfig(), lambda hp: hp.Float("lr", 0.001, 0.1), lambda c, v: c.update(**v), epochs=1
    )
    tuner = trials.make_tuner("random", hypermodel, tmp_path, seed=0, budget_seconds=150.0, max_trials=10)
    for seconds in (100.0, 60.0):
        tuner.pre_create_trial()
        trial = tuner.oracle.create_trial("tuner0")
        assert trial.status == "RUNNING"
        tuner.oracle.update_trial(trial.trial_id, {trials.OBJECTIVE: 0.5, "seconds_2012": seconds})
        trial.status = "COMPLETED"
        tuner.oracle.end_trial(trial)
    assert trials.seconds_2012(tuner.oracle.trials.values()) == 160.0
    tuner.pre_create_trial()
    assert tuner.budget_spent and tuner.oracle.create_trial("tuner0").status == "STOPPED"


@pytest.mark.parametrize("kind", ["random", "bayesian", "hyperband"])
def test_same_seed_same_trials(kind, tmp_path):
    """The tuner's seed fixes the hyperparameters it draws: the same seed, the same first trials."""

    def first_values(folder, seed):
        hypermodel = trials.RecipeHyperModel(
            TrainConfig(), lambda hp: space.declare(space.DEFAULT_SPACE, hp), lambda c, v: c.update(**v), epochs=1
        )
        tuner = trials.make_tuner(kind, hypermodel, tmp_path / folder, seed=seed, max_trials=4, max_epochs=3)
        values = []
        for _ in range(2):
            trial = tuner.oracle.create_trial(f"t{len(values)}")
            values.append({k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")})
        return values

    assert first_values("a", 7) == first_values("b", 7) != first_values("c", 8)


def test_hyperband_child_starts_from_a_linked_copy_of_its_parent(tmp_path):
    """Checkpoints are hard links (train replaces files, never edits them), everything else a copy."""
    parent, child = tmp_path / "trial_0002", tmp_path / "trial_0003"
    (parent / "checkpoints").mkdir(parents=True)
    (parent / "checkpoints" / "last.keras").write_bytes(b"w" * trials.BIG_FILE)
    (parent / "history.csv").write_text("epoch,acc\n1,0.5\n")
    trials._copy_run(parent, child)
    big, small = "checkpoints/last.keras", "history.csv"
    assert (child / big).stat().st_ino == (parent / big).stat().st_ino
    assert (child / small).stat().st_ino != (parent / small).stat().st_ino
    (child / "new.keras").write_bytes(b"x")
    os.replace(child / "new.keras", child / big)  # how train writes a checkpoint
    assert (parent / big).read_bytes() == b"w" * trials.BIG_FILE and not (tmp_path / "trial_0003.partial").exists()


def test_plot_trials_draws_one_panel_per_hyperparameter(tmp_path):
    from alexnet_keras.plots import plot_trials

    report = {
        "tuner": "random",
        "trials": [
            {"objective": 0.4, "hyperparameters": {"lr": 0.01, "init": "paper", "batch_size": 128}},
            {"objective": 0.3, "hyperparameters": {"lr": 0.002, "init": "caffe", "batch_size": 64}},
            {"objective": None, "hyperparameters": {"lr": 0.03, "init": "paper", "batch_size": 512}},
        ],
    }
    fig = plot_trials(report, tmp_path / "t.png")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in shown] == ["batch_size", "init", "lr"]
    lr_axis = shown[2]
    assert lr_axis.get_xscale() == "log"  # 0.002 to 0.03 spans more than a decade
    done, rejected = lr_axis.collections
    assert sorted(done.get_offsets()[:, 1].tolist()) == [0.3, 0.4] and len(rejected.get_offsets()) == 1
    assert (tmp_path / "t.png").stat().st_size > 0


# --- the ablations -----------------------------------------------------------------------------
def test_arms_are_the_issues_and_each_changes_one_thing():
    assert list(arms.ARMS) == [
        "baseline", "lrn", "pool", "relu", "dropout", "pca", "towers", "depth_conv3", "depth_conv4", "depth_conv5"
    ]  # fmt: skip
    base = TrainConfig()
    assert base.ablated() == {}
    for arm, change in arms.ARMS.items():
        assert base.update(**change).ablated() == ({} if arm in ("baseline", "dropout") else change)
        if arm != "baseline":
            assert arms.claim_id(arm) in ablations.IDS


def test_only_keeps_the_baseline_and_refuses_unknown_ids():
    assert arms.parse_only("pool,lrn,pool") == ["baseline", "pool", "lrn"]
    assert arms.parse_only(None) == list(arms.ARMS)
    with pytest.raises(UserError, match="unknown ablation 'bn'"):
        arms.parse_only("lrn,bn")


def test_interval_one_seed_is_the_binomial_one():
    # Hand computed: change 0.40 - 0.45 = -0.05; var = (0.4*0.6 + 0.45*0.55) / 500 = 0.000975.
    d, low, high = interval([0.40], [0.45], n=500)
    half = 1.96 * math.sqrt(0.000975)
    assert d == pytest.approx(-0.05) and low == pytest.approx(-0.05 - half) and high == pytest.approx(-0.05 + half)


def test_interval_adds_the_seed_noise():
    # Changes -0.04 and -0.08: mean -0.06, sample variance 0.0008, so the seed term is 0.0008 / 2.
    d, low, high = interval([0.40, 0.42], [0.44, 0.50], n=1000)
    p_b, p_a = 0.41, 0.47
    var = (p_b * (1 - p_b) + p_a * (1 - p_a)) / (1000 * 2) + 0.0008 / 2
    assert d == pytest.approx(-0.06) and (high - low) / 2 == pytest.approx(1.96 * math.sqrt(var))


def test_an_arm_at_chance_is_named_as_one_that_did_not_learn():
    # Hand computed: 10 classes, 3145 images: guessing errs 0.9 +- 1.96 * sqrt(0.9 * 0.1 / 3145) = 0.010485.
    chance, half = chance_interval(10, 3145)
    assert chance == pytest.approx(0.9) and half == pytest.approx(0.010485, abs=1e-6)
    assert at_chance(0.909, 10, 3145) and at_chance(0.8896, 10, 3145)
    assert not at_chance(0.8894, 10, 3145) and not at_chance(0.462, 10, 3145)
    assert type(at_chance(np.float64(0.9), 10, 3145)) is bool  # keras-tuner's scores are numpy; reports are JSON
    base = {"id": "baseline", "seeds": 1, "top1_error": 0.462, "top5_error": 0.085, "train_top1_error": 0.5}
    dead = {"id": "dropout", "seeds": 1, "top1_error": 0.909, "top5_error": 0.51, "train_top1_error": 0.895}
    dead.update(change={"top1": -0.447, "top5": -0.425}, ci95={"top1": [-0.467, -0.427], "top5": [-0.445, -0.405]})
    rows = [{**base, "at_chance": False}, {**dead, "at_chance": True}]
    report = {
        "ablations": rows,
        "sign": "change = error(baseline) - error(ablated)",
        "chance_top1_error": [chance, half],
        "spent_2012_seconds": 60.0,
        "honesty": honesty(rows, 3145, 5),
    }
    text = format_report(report)
    assert "dropout: did not learn: top-1 error 90.9%, guessing's 90.0% +- 1.0% (training top-1 error 89.5%)" in text
    assert "baseline: did not learn" not in text
    assert any(line.startswith("dropout: at chance, so it did not learn") for line in report["honesty"])
    assert any(line.startswith("one seed: ") for line in report["honesty"])
    assert not any(line.startswith("one seed: ") for line in honesty([{**r, "seeds": 3} for r in rows], 3145, 5))
    assert report["honesty"][-1].startswith("full scale: ")


def test_plot_ablations_greys_out_an_arm_that_did_not_learn():
    from alexnet_keras.plots import plot_ablations

    def arm(name, top1, dead):
        change = {"top1": top1, "top5": top1 / 2}
        ci = {m: [c - 0.01, c + 0.01] for m, c in change.items()}
        claim = {"top1_change": -0.004, "top5_change": None}
        return {"id": name, "change": change, "ci95": ci, "paper_claim": claim, "at_chance": dead}

    rows = [{"id": "baseline", "ci95": None}, arm("pool", -0.038, False), arm("dropout", -0.447, True)]
    fig = plot_ablations({"ablations": rows, "epochs_per_trial": 5, "seeds": [0]})
    top1 = fig.axes[0]
    assert [t.get_text() for t in top1.get_yticklabels()] == ["pool", "dropout (did not learn)"]
    points = {line.get_color(): list(line.get_xdata()) for line in top1.lines if line.get_marker() == "o"}
    assert points["C0"] == pytest.approx([-3.8]) and points["grey"] == pytest.approx([-44.7])


def test_epochs_to_threshold():
    assert epochs_to([0.9, 0.7, 0.55, 0.5], 0.6) == 3
    assert epochs_to([0.9, 0.8], 0.6) is None


def test_trial_metrics_count_only_a_childs_own_epochs():
    summary = {
        "epochs_completed": 9,
        "best_val_top1_error": 0.3,
        "val_top1_error": 0.31,
        "val_top5_error": 0.1,
        "gtx580_equivalent_seconds": 900.0,
        "seconds_here": 5.0,
    }
    m = trials.trial_metrics(summary, initial_epoch=3)
    assert m["seconds_2012"] == pytest.approx(600.0) and m[trials.OBJECTIVE] == 0.3


# --- real searches (slow) -----------------------------------------------------------------------
def _cli(args, cwd, timeout=900, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, **kwargs)


# The searching process's RSS may grow this much from trial 2 to trial 5 (each trial trains in a child process).
# Measured on the 2-core CI machine: flat to the MiB (1267 MiB after each of 3 trials); in one process
# each trial added about 780 MiB. The bound leaves room for allocator noise.
RSS_GROWTH_BOUND_MIB = 64


@pytest.mark.slow
def test_five_trial_search_writes_the_table_and_a_config_train_accepts(tmp_path):
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps({"lr": {"min": 1e-3, "max": 5e-2, "sampling": "log"}, "momentum": 0.9}))
    args = ["tune", "--tuner", "random", "--max-trials", "5", "--epochs-per-trial", "1", "--space", str(space_file)]
    result = _cli([*args, *TINY, "--run-dir", "search", "--json", "--seed", "3"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert [t["status"] for t in report["trials"]] == ["COMPLETED"] * 5
    assert len({t["hyperparameters"]["lr"] for t in report["trials"]}) == 5
    assert all(1e-3 <= t["hyperparameters"]["lr"] <= 5e-2 for t in report["trials"])
    best = min(report["trials"], key=lambda t: t["objective"])
    assert report["best"]["trial_id"] == best["trial_id"]
    # The objective is what the trial's own run recorded.
    trial_summary = json.loads(
        (tmp_path / "search" / "trials" / f"trial_{best['trial_id']}" / "summary.json").read_text()
    )
    assert best["objective"] == pytest.approx(trial_summary["best_val_top1_error"])
    table = (tmp_path / "search" / "trials.csv").read_text().splitlines()
    assert table[0].startswith("trial_id,status,val_top1_error") and len(table) == 6
    chance, half = report["chance_top1_error"]
    assert chance == pytest.approx(0.9) and report["validation_images"] == 8  # 10 synthetic classes; 1 batch of 8
    assert all(t["at_chance"] == (abs(t["objective"] - chance) <= half) for t in report["trials"])
    rss = [t["rss_mib"] for t in report["trials"]]
    print("searching process RSS after each trial (MiB):", [round(r) for r in rss])
    assert max(rss[1:]) - rss[1] < RSS_GROWTH_BOUND_MIB
    config = json.loads((tmp_path / "search" / "best_config.json").read_text())
    assert config["lr"] == best["hyperparameters"]["lr"] and "run_dir" not in config
    trained = _cli(["train", "--config", "search/best_config.json", "--run-dir", "again", "--json"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    again = json.loads((tmp_path / "again" / "config.json").read_text())["config"]
    assert again["lr"] == best["hyperparameters"]["lr"] and again["batch_size"] == 8


@pytest.mark.slow
def test_killed_search_resumes_without_repeating_a_trial(tmp_path):
    args = ["tune", "--tuner", "random", "--max-trials", "3", "--epochs-per-trial", "2", *TINY, "--run-dir", "s"]
    args += ["--set", "synthetic_train_examples=64"]
    child = subprocess.Popen([*CLI, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = tmp_path / "s" / "trials" / "trial_1" / "backup" / "epoch-0001.json"  # one epoch of two done
    deadline = time.time() + 900
    while not second.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert child.poll() is None, "the search ended before its second trial started"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    first = tmp_path / "s" / "trials" / "trial_0" / "summary.json"
    first_written = first.stat().st_mtime_ns
    time.sleep(2)
    assert not any("alexnet_keras_cli" in _cmdline(p) and str(tmp_path) in _cmdline(p) for p in _pids())
    result = _cli([*args, "--json"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert [t["trial_id"] for t in report["trials"]] == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in report["trials"])
    assert first.stat().st_mtime_ns == first_written  # the finished trial did not run again
    history = (tmp_path / "s" / "trials" / "trial_1" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2"]  # the killed trial resumed, no epoch twice


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
def test_tiny_ablation_grid(tmp_path):
    args = ["ablate", "--only", "pool", "--epochs-per-trial", "1", *TINY, "--run-dir", "a", "--json"]
    result = _cli([*args, "--plot", "a.png"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    rows = {r["id"]: r for r in report["ablations"]}
    assert list(rows) == ["baseline", "pool"]
    n = report["validation_images"]
    assert n == 8  # --validation-steps 1 of batch 8 scored 8 of the 16 validation images
    for arm in ("pool",):
        r = rows[arm]
        d, low, high = interval([rows["baseline"]["top1_error"]], [r["top1_error"]], n)
        assert r["change"]["top1"] == pytest.approx(d) and r["ci95"]["top1"] == pytest.approx([low, high])
        assert r["paper_claim"]["top1_change"] == ablations.claim(arm)["top1_change"]
        assert r["interval_holds_paper"]["top1"] == ablations.agrees(arm, "top1", low, high)
    # Each arm trained the network it names.
    for arm, pool in (("baseline", "3/2"), ("pool", "2/2")):
        (run,) = rows[arm]["run_dirs"]
        cfg = json.loads((tmp_path / "a" / "trials" / os.path.basename(run) / "config.json").read_text())["config"]
        assert cfg["pool"] == pool and cfg["lrn"] is True
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "a" / "ablations.csv").exists()
    assert any("cannot confirm or refute" in line for line in report["honesty"])
    chance, half = report["chance_top1_error"]
    assert chance == pytest.approx(0.9)  # 10 synthetic classes
    for r in rows.values():
        assert r["at_chance"] == (abs(r["top1_error"] - chance) <= half)
