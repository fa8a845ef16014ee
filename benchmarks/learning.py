"""The learning benchmark: the 2012 net trained from scratch on imagenette, epoch by epoch.

Target (issue 11): at least 80% validation top-1 accuracy within 30 epochs, from
random initialisation, with the paper's recipe or a documented change that keeps
the architecture. Three changes here, all recorded in `config.json`:

- the learning-rate schedule. The paper's "divide by 10 when the validation error
  stops improving" (plateau, patience 5) never dropped in 12 epochs (69% at epoch 12),
  so the lr drops at fixed epochs (`--lr-schedule step:20,27`, 1-based epochs). A first
  run with `step:13,19` flattened at 76.2% after the first drop while lr 0.01 was still
  gaining (`benchmarks/results/imagenette-2012-step13/`), so lr 0.01 now runs 19 epochs.
- the batch, 64 instead of 128: imagenette's 9,469 images give 73 updates an epoch at 128,
  and with batch 128 the same schedule stopped at 79.5% (`results/imagenette-2012-batch128/`).
- the precision, `--precision mixed_bfloat16`: the float32 variables and updates stay,
  the convolutions and matmuls compute in bfloat16, which this AVX-512 BF16 CPU runs
  about 1.9x faster for this net (`benchmarks/RESULTS.md`).

    python -m benchmarks.learning [--run-dir DIR] [--epochs 30] [--data ../shared/data/imagenette] [--resume]
    python -m benchmarks.learning --collect-only RUN_DIR [--log FILE] [--no-eval]

The first form runs, from the repository root,

    python -m alexnet_keras_cli train --simulate-gtx580 --data ../shared/data/imagenette --epochs 30 \\
        --batch-size 64 --lr-schedule step:20,27 --precision mixed_bfloat16 --seed 0 --run-dir DIR

with its output copied to `DIR.log`; `--collect-only` skips the training. Both
then copy the run's small files (`history.csv`, `summary.json`, `config.json`,
the log as `train.log`; never checkpoints) into `benchmarks/results/imagenette-2012/`,
write `learning.json` (the per-epoch table, the target's verdict, the machine), print
the table, and score `checkpoints/best.keras` on imagenette's val/ with the
centre crop and with the paper's ten crops (`alexnet-keras evaluate --json`),
into `eval.json`.

Plain Python: training and scoring run as subprocesses of the package's CLI.
"""

import argparse
import csv
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from benchmarks.harness import REPO, load_average, machine_info

TARGET_TOP1 = 0.80  # issue 11: validation top-1 accuracy...
TARGET_EPOCHS = 30  # ...reached within this many epochs
LR_SCHEDULE = "step:20,27"  # the documented changes: see the module docstring
PRECISION = "mixed_bfloat16"
PACKAGE_PRECISION = "float32"  # train's default: recorded without a flag
BATCH_SIZE = 64
SEED = 0
DEFAULT_EPOCHS = 30
DEFAULT_DATA = "../shared/data/imagenette"  # relative to the repository root, as the README's commands
DEFAULT_RUN_DIR = REPO / "runs" / "imagenette-2012"  # runs/ is git-ignored
RESULTS = REPO / "benchmarks" / "results" / "imagenette-2012"
COPIED = ("history.csv", "summary.json", "config.json")  # small files only; checkpoints are 450 MB each
SUMMARY = "summary.json"  # written when the run ends
BEST_CHECKPOINT = "checkpoints/best.keras"
LOG_NAME = "train.log"

# Keras' one line per epoch when output is piped ("Epoch 1/22", then "73/73 - 296s - 4s/step - acc: ..."),
# the package's own epoch line that replaced it ("epoch 1/22: 73 steps in 4:56 - acc: ..."; h:mm:ss
# or m:ss, training and validation), and its Clock line ("epoch 1: 44.9 img/s here; ...").
_EPOCH_START = re.compile(r"^Epoch (\d+)/\d+\s*$")
_EPOCH_END = re.compile(r"^\d+/\d+ - (\d+(?:\.\d+)?)(ms|s|min|h) - ")
_EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+: \d+ steps? in (\d+(?::\d\d){1,2})\b")
_CLOCK = re.compile(r"^epoch (\d+): ([\d.]+) img/s here")
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}


class BenchmarkError(Exception):
    """Bad input: printed as one line, exit status 2."""


def train_argv(
    run_dir,
    epochs=DEFAULT_EPOCHS,
    data=DEFAULT_DATA,
    resume=False,
    lr_schedule=LR_SCHEDULE,
    seed=SEED,
    precision=PRECISION,
    batch_size=BATCH_SIZE,
):
    """The training command, as run from the repository root (float32, the package's default, adds no flag)."""
    argv = [sys.executable, "-m", "alexnet_keras_cli", "train", "--simulate-gtx580", "--data", str(data)]
    argv += ["--epochs", str(epochs)] + (["--batch-size", str(batch_size)] if batch_size else [])
    argv += ["--lr-schedule", lr_schedule]
    argv += ["--precision", precision] if precision not in (None, PACKAGE_PRECISION) else []
    argv += ["--seed", str(seed), "--run-dir", str(run_dir)]
    return argv + (["--resume"] if resume else [])


def command_text(argv):
    """The command as a person types it: `python -m ...`."""
    return " ".join(["python", *argv[1:]])


def log_path(run_dir):
    """`runs/imagenette-2012` -> `runs/imagenette-2012.log` (beside the run directory, never inside it)."""
    run_dir = pathlib.Path(run_dir)
    return run_dir.parent / (run_dir.name + ".log")


def read_history_text(text):
    """history.csv's text as a list of dicts: `epoch` an int, every other column a float (None if empty)."""
    return [
        {k: int(v) if k == "epoch" else (float(v) if v not in ("", None) else None) for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(text))
    ]


def read_history(path):
    """history.csv (see `read_history_text`)."""
    return read_history_text(pathlib.Path(path).read_text())


def parse_log(text):
    """Per-epoch timing from a training log: `{epoch: {"seconds": s, "images_per_second": r}}`.

    `seconds` is Keras' wall time for the epoch (training and validation);
    `images_per_second` is the package's training-only rate. A resumed run's log
    repeats epochs: the last occurrence wins.
    """
    epochs, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if m := _EPOCH_START.match(line):
            current = int(m.group(1))
        elif (m := _EPOCH_END.match(line)) and current is not None:
            epochs.setdefault(current, {})["seconds"] = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        elif m := _EPOCH_LINE.match(line):
            seconds = 0
            for part in m.group(2).split(":"):
                seconds = 60 * seconds + int(part)
            epochs.setdefault(int(m.group(1)), {})["seconds"] = float(seconds)
        elif m := _CLOCK.match(line):
            epochs.setdefault(int(m.group(1)), {})["images_per_second"] = float(m.group(2))
    return epochs


def epoch_table(history, timing=None):
    """One dict per epoch: val/train top-1 and top-5 accuracy, losses, lr, seconds, img/s."""
    timing = timing or {}
    rows = []
    for h in history:
        t = timing.get(h["epoch"], {})
        rows.append(
            {
                "epoch": h["epoch"],
                "val_top1": h.get("val_acc"),
                "val_top5": h.get("val_top5_acc"),
                "train_top1": h.get("acc"),
                "train_top5": h.get("top5_acc"),
                "loss": h.get("loss"),
                "val_loss": h.get("val_loss"),
                "lr": h.get("lr"),
                "seconds": t.get("seconds"),
                "images_per_second": t.get("images_per_second"),
            }
        )
    return rows


def target_verdict(table, top1=TARGET_TOP1, within=TARGET_EPOCHS):
    """Whether some epoch <= `within` reached `top1` validation accuracy, the first such epoch, and the best."""
    scored = [r for r in table if r["val_top1"] is not None]
    first = next((r["epoch"] for r in scored if r["epoch"] <= within and r["val_top1"] >= top1), None)
    best = max(scored, key=lambda r: r["val_top1"], default=None)
    return {
        "top1": top1,
        "within_epochs": within,
        "met": first is not None,
        "first_epoch": first,
        "best_val_top1": best["val_top1"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "epochs_run": max((r["epoch"] for r in table), default=0),
    }


def _pct(x):
    return "" if x is None else f"{100 * x:.1f}"


def _num(x, fmt):
    return "" if x is None else format(x, fmt)


def format_table(table, markdown=False):
    """The per-epoch table, plain or as Markdown."""
    head = ["epoch", "val top-1 %", "val top-5 %", "train top-1 %", "loss", "lr", "seconds", "img/s"]
    body = [
        [
            str(r["epoch"]),
            _pct(r["val_top1"]),
            _pct(r["val_top5"]),
            _pct(r["train_top1"]),
            _num(r["loss"], ".3f"),
            _num(r["lr"], "g"),
            _num(r["seconds"], ".0f"),
            _num(r["images_per_second"], ".1f"),
        ]
        for r in table
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in [head, *body])


def verdict_line(target):
    t = target
    goal = f"target: >= {t['top1']:.0%} val top-1 within {t['within_epochs']} epochs"
    if t["met"]:
        return f"{goal}: met at epoch {t['first_epoch']} (best {_pct(t['best_val_top1'])}% at epoch {t['best_epoch']})"
    best = f"best {_pct(t['best_val_top1'])}% at epoch {t['best_epoch']}" if t["best_epoch"] else "no epoch scored"
    return f"{goal}: not met in {t['epochs_run']} epochs ({best})"


def machine_line(machine):
    load = machine.get("load_average_start")
    return f"machine: {machine['cpu']}, {machine['cores']} cores, load average {load} (1/5/15 min) when collected"


def collect(run_dir, out=RESULTS, log=None):
    """Copies the run's small files into `out`, writes `learning.json` and returns it as a dict.

    `log`: the training log (default `RUN_DIR.log` beside the run directory, if present).
    """
    run_dir = pathlib.Path(run_dir)
    missing = [name for name in COPIED if name != SUMMARY and not (run_dir / name).is_file()]
    if missing:
        raise BenchmarkError(
            f"{run_dir} lacks {', '.join(missing)}: give the directory of a run that finished at least one epoch"
        )
    log = pathlib.Path(log) if log else log_path(run_dir)
    if not log.is_file():
        log = None
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
        else:  # summary.json comes at the end: a run still going has none (drop a stale copy)
            (out / name).unlink(missing_ok=True)
    if log is not None:
        shutil.copyfile(log, out / LOG_NAME)
    history = read_history(out / "history.csv")
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / SUMMARY).read_text()) if (out / SUMMARY).is_file() else None
    table = epoch_table(history, parse_log(log.read_text(errors="replace")) if log else None)
    cfg = config.get("config", config)  # config.json nests the resolved config under "config"
    seconds = [r["seconds"] for r in table]
    report = {
        "command": command_text(
            train_argv(
                cfg.get("run_dir", run_dir),
                cfg.get("epochs"),
                cfg.get("data"),
                lr_schedule=cfg.get("lr_schedule"),
                seed=cfg.get("seed"),
                precision=cfg.get("precision"),
                batch_size=cfg.get("batch_size"),
            )
        ),
        "run_dir": str(run_dir),
        "finished": summary is not None,
        "lr_schedule": cfg.get("lr_schedule"),
        "precision": cfg.get("precision"),
        "epochs": table,
        "target": target_verdict(table),
        # summary.json's time when the run ended, else the epochs' (None if the log lacks one)
        # The epochs' own seconds when the log has them all: summary.json's `seconds_here` counts only
        # the last invocation of a resumed run (and startup).
        "seconds_total": sum(seconds) if seconds and None not in seconds else _seconds_here(summary),
        "resumes": len(config.get("resumes") or []),
        "images_per_second": summary.get("images_per_second") if summary else None,
        "stopped": summary.get("stopped") if summary else None,
        "log": LOG_NAME if log else None,
        "machine": machine_info(),
    }
    (out / "learning.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _seconds_here(summary):
    """summary.json's time for the whole run, if it ran in one go; else None."""
    if summary and not summary.get("resumed_from_epoch"):
        return summary.get("seconds_here")
    return None


def format_report(report, markdown=False):
    t = report["target"]
    total = report.get("seconds_total")
    lines = [
        f"run: {report['run_dir']} ({t['epochs_run']} epochs"
        + ("" if report.get("finished") else ", still running or stopped: no summary.json")
        + (f", {total / 3600:.2f} h" if total else "")
        + f", lr schedule {report.get('lr_schedule')}, precision {report.get('precision') or PACKAGE_PRECISION})",
        machine_line(report["machine"]),
        "",
        format_table(report["epochs"], markdown=markdown),
        "",
        verdict_line(t),
    ]
    return "\n".join(lines)


def _cli_json(argv, what):
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"{what} failed (exit {proc.returncode}): {tail}")
    return json.loads(proc.stdout)


def evaluate_best(run_dir, data=DEFAULT_DATA, out=RESULTS, echo=print):
    """Scores `RUN_DIR/checkpoints/best.keras` on `data`'s val/ (centre crop, then ten crops); writes eval.json."""
    model = pathlib.Path(run_dir) / BEST_CHECKPOINT
    if not model.is_file():
        raise BenchmarkError(f"{model} does not exist: the run finished no epoch, or give the right --collect-only")
    val = pathlib.Path(data) / "val"
    result = {"model": BEST_CHECKPOINT, "data": str(val), "load_average_start": load_average()}
    summary = pathlib.Path(out) / "summary.json"
    if summary.is_file():
        result["best_epoch"] = json.loads(summary.read_text()).get("best_epoch")
    for key, extra in (("centre_crop", []), ("ten_crop", ["--ten-crop"])):
        argv = [sys.executable, "-m", "alexnet_keras_cli", "evaluate", "--model", str(model), "--data", str(val)]
        echo(f"scoring {model} ({key.replace('_', ' ')}) on {val} ...")
        start = time.perf_counter()
        score = _cli_json([*argv, *extra, "--json"], f"alexnet-keras evaluate {' '.join(extra)}".strip())
        result[key] = {
            "top1": round(1 - score["top1_error"], 6),  # 1 - 0.9 would print 0.09999999999999998
            "top5": round(1 - score["top5_error"], 6),
            "top1_error": score["top1_error"],
            "top5_error": score["top5_error"],
            "ci95": score.get("ci95"),
            "images": score["images"],
            "seconds": round(time.perf_counter() - start, 1),
            "comparable": score.get("comparable"),
            "reason": score.get("reason"),
        }
        echo(f"  top-1 {result[key]['top1']:.2%}, top-5 {result[key]['top5']:.2%} on {score['images']:,} images")
    (pathlib.Path(out) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_training(run_dir, epochs, data, resume=False, echo=print):
    """Runs the training command from the repository root, its output to the terminal and to `RUN_DIR.log`."""
    argv = train_argv(run_dir, epochs, data, resume)
    log = log_path(run_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    echo("$ " + command_text(argv))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (
        open(log, "a" if resume else "w") as f,
        subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        for line in proc.stdout:
            f.write(line)
            f.flush()
            sys.stdout.write(line)
    if proc.returncode != 0:
        raise BenchmarkError(f"training exited with status {proc.returncode}; see {log} (resume with --resume)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run-dir", default=str(DEFAULT_RUN_DIR), help="where the run goes (default runs/imagenette-2012)"
    )
    parser.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs to train (default {DEFAULT_EPOCHS})"
    )
    parser.add_argument("--data", default=None, help=f"imagenette folder (default {DEFAULT_DATA} from the repo root)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run in --run-dir")
    parser.add_argument("--collect-only", metavar="RUN_DIR", help="only copy and report a finished run")
    parser.add_argument("--log", help="the run's training log (default RUN_DIR.log)")
    parser.add_argument("--out", default=str(RESULTS), help="where the small files go (default benchmarks/results/...)")
    parser.add_argument("--no-eval", action="store_true", help="skip scoring best.keras (centre and ten crops)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    # The default stays relative, so config.json records the command as the README gives it.
    data_arg = str(pathlib.Path(args.data).resolve()) if args.data else DEFAULT_DATA
    data = (REPO / data_arg).resolve()
    try:
        if args.collect_only:
            run_dir = pathlib.Path(args.collect_only).resolve()
        else:
            if args.epochs < 1:
                raise BenchmarkError(f"--epochs {args.epochs}: give 1 or more")
            if not data.is_dir():
                raise BenchmarkError(f"--data {data} is not a folder: give the imagenette folder (train/ and val/)")
            run_dir = pathlib.Path(args.run_dir).resolve()
            run_training(run_dir, args.epochs, data_arg, args.resume)
        if not args.no_eval and not (data / "val").is_dir():
            raise BenchmarkError(f"{data / 'val'} is not a folder: give --data (the imagenette folder) or --no-eval")
        report = collect(run_dir, args.out, args.log)
        print(format_report(report, markdown=args.markdown), flush=True)
        if not args.no_eval:
            evaluate_best(run_dir, data, args.out)
        print(f"wrote {args.out}")
    except BenchmarkError as e:
        print(f"benchmarks.learning: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
