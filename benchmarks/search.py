"""The real `tune` and `ablate` runs on imagenette, recorded for the README and notebook 04.

    python -m benchmarks.search tune      # 8 random trials of 3 epochs (about 24 imagenette epochs)
    python -m benchmarks.search ablate    # every arm, 5 epochs, one seed (about 50 epochs)
    python -m benchmarks.search ablate --only lrn,pool --seeds 3 --out benchmarks/results/ablations-lrn-pool

Add `--precision mixed_bfloat16` on a CPU with AVX-512 BF16 (or a recent GPU), as the
learning benchmark does (`benchmarks/learning.py`). The ablate run is recorded
(`benchmarks/results/ablations-imagenette/`, with `--precision mixed_bfloat16`).

Each runs the package's CLI from the repository root with `--json`, in a run
directory under `runs/` (git-ignored; the same command resumes a killed run),
then writes the report (`trials.json` and `trials.csv`, or `ablations.json` and
`ablations.csv`) and `run.json` (the command, the machine, the hours it took
here) into `benchmarks/results/`. Nothing else is copied: checkpoints are 450 MB.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time

from benchmarks.harness import REPO, machine_info

DATA = "../shared/data/imagenette"  # relative to the repository root, as the README's commands
RUNS = {
    "tune": dict(
        argv=["--tuner", "random", "--max-trials", "8", "--epochs-per-trial", "3", "--budget-2012", "1 week"],
        files=("trials.json", "trials.csv", "best_config.json"),
        out="benchmarks/results/tune-imagenette",
    ),
    "ablate": dict(
        argv=["--epochs-per-trial", "5", "--seeds", "1"],
        files=("ablations.json", "ablations.csv"),
        out="benchmarks/results/ablations-imagenette",
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(RUNS))
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--only", help="ablate: the arms (default: all)")
    parser.add_argument("--seeds", type=int, help="ablate: seeds per arm (default 1)")
    parser.add_argument("--out", help="results folder (default: benchmarks/results/<command>-imagenette)")
    parser.add_argument("--precision", help="passed to the command, which checks it (default: the package's)")
    args = parser.parse_args(argv)
    spec = RUNS[args.command]
    out = REPO / (args.out or spec["out"])
    run_dir = REPO / "runs" / out.name
    cli = [args.command, "--data", args.data, "--simulate-gtx580", "--run-dir", str(run_dir), *spec["argv"]]
    if args.only:
        cli += ["--only", args.only]
    if args.seeds:
        cli[cli.index("--seeds") + 1] = str(args.seeds)
    if args.precision:
        cli += ["--precision", args.precision]
    command = "alexnet-keras " + " ".join(a if " " not in a else repr(a) for a in cli)
    print("$ " + command, flush=True)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_keras_cli", *cli, "--json"], cwd=REPO, stdout=subprocess.PIPE
    )
    hours = (time.perf_counter() - started) / 3600
    if result.returncode != 0:
        sys.exit(f"{args.command} exited with status {result.returncode}; the same command resumes it")
    out.mkdir(parents=True, exist_ok=True)
    for name in spec["files"]:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, out / name)
    record = {"command": command, "machine": machine_info(), "hours_here": hours}
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(f"wrote {out.relative_to(REPO)} ({hours:.2f} h here)")


if __name__ == "__main__":
    main()
