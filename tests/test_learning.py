"""benchmarks.learning's collect and report logic, on a hand-written run directory (no training)."""

import json

from benchmarks import learning

# Three epochs; val_acc crosses 0.80 at epoch 3 (0.79999 at epoch 2 must not count).
HISTORY = """epoch,acc,loss,lr,top5_acc,val_acc,val_loss,val_top5_acc
1,0.14,2.38,0.01,0.57,0.241,2.03,0.725
2,0.60,1.20,0.01,0.90,0.79999,0.90,0.95
3,0.85,0.50,0.001,0.99,0.8125,0.70,0.9875
"""
# What `alexnet-keras train` prints when piped: Keras' epoch line and the package's Clock line.
LOG = """config: {"variant": "2012"}
Epoch 1/3
epoch 1: 44.9 img/s here; 2012 clock: this epoch would take 40.9 s on 2x GTX 580
73/73 - 296s - 4s/step - acc: 0.1464 - loss: 2.3805 - val_acc: 0.2410 - lr: 0.0100
Epoch 2/3
epoch 2: 61.5 img/s here; 2012 clock: this epoch would take 40.9 s on 2x GTX 580
73/73 - 2min - 2s/step - acc: 0.6 - loss: 1.2
Epoch 3/3
epoch 3: 70.0 img/s here; 2012 clock: this epoch would take 40.9 s on 2x GTX 580
73/73 - 150s - 2s/step - acc: 0.85 - loss: 0.5
"""
CONFIG = {
    "schema": "alexnet-keras/run/1",
    "config": {"data": "../shared/data/imagenette", "epochs": 3, "lr_schedule": "step:2", "seed": 7, "run_dir": "r"},
}
SUMMARY = {"seconds_here": 566.0, "images_per_second": 55.0, "best_epoch": 3, "stopped": None}


def _run_dir(tmp_path, summary=True, log=True):
    run = tmp_path / "imagenette-2012"
    (run / "checkpoints").mkdir(parents=True)
    (run / "history.csv").write_text(HISTORY)
    (run / "config.json").write_text(json.dumps(CONFIG))
    (run / "checkpoints" / "best.keras").write_bytes(b"not small")
    if summary:
        (run / "summary.json").write_text(json.dumps(SUMMARY))
    if log:
        (tmp_path / "imagenette-2012.log").write_text(LOG)
    return run


def test_parse_log_reads_seconds_and_rate_per_epoch():
    assert learning.parse_log(LOG) == {
        1: {"seconds": 296.0, "images_per_second": 44.9},
        2: {"seconds": 120.0, "images_per_second": 61.5},  # "2min"
        3: {"seconds": 150.0, "images_per_second": 70.0},
    }


def test_parse_log_reads_the_packages_own_epoch_line():
    text = (
        "epoch 1/22: 73 steps in 4:56 - acc: 0.1464 - loss: 2.3805 - val_acc: 0.2410\n"
        "epoch 1: 44.9 img/s here; 2012 clock: this epoch would take 40.9 s on 2x GTX 580\n"
        "epoch 2/22: 73 steps in 1:02:03 - acc: 0.2\n"
        "epoch 3/22: 1 step in 0:07\n"
    )
    assert learning.parse_log(text) == {
        1: {"seconds": 296.0, "images_per_second": 44.9},
        2: {"seconds": 3723.0},
        3: {"seconds": 7.0},
    }


def test_parse_log_of_a_resumed_run_keeps_the_last_attempt():
    text = LOG + "Epoch 3/3\nepoch 3: 80.0 img/s here\n73/73 - 140s - 2s/step\n"
    assert learning.parse_log(text)[3] == {"seconds": 140.0, "images_per_second": 80.0}


def test_target_verdict_by_hand():
    table = learning.epoch_table(learning.read_history_text(HISTORY))
    assert learning.target_verdict(table) == {
        "top1": 0.80,
        "within_epochs": 30,
        "met": True,
        "first_epoch": 3,
        "best_val_top1": 0.8125,
        "best_epoch": 3,
        "epochs_run": 3,
    }
    # Reached only after the allowed epochs: not met, though the best is above 80%.
    late = learning.target_verdict(table, within=2)
    assert (late["met"], late["first_epoch"], late["best_epoch"]) == (False, None, 3)
    assert learning.target_verdict(table, top1=0.9)["met"] is False


def test_collect_copies_small_files_only_and_reports(tmp_path):
    run = _run_dir(tmp_path)
    out = tmp_path / "results"
    report = learning.collect(run, out)
    for name in ("history.csv", "config.json", "summary.json"):
        assert (out / name).read_bytes() == (run / name).read_bytes()
    assert (out / "train.log").read_text() == LOG
    assert not list(out.rglob("*.keras")) and not (out / "checkpoints").exists()
    assert json.loads((out / "learning.json").read_text()) == report

    rows = report["epochs"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["val_top1"] for r in rows] == [0.241, 0.79999, 0.8125]
    assert [r["val_top5"] for r in rows] == [0.725, 0.95, 0.9875]
    assert [r["seconds"] for r in rows] == [296.0, 120.0, 150.0]
    assert [r["lr"] for r in rows] == [0.01, 0.01, 0.001]
    assert report["target"]["met"] and report["target"]["first_epoch"] == 3
    assert report["finished"] and report["seconds_total"] == 296.0 + 120.0 + 150.0  # the log's epochs
    assert report["resumes"] == 0
    # The command is rebuilt from the run's own config, not from the benchmark's defaults.
    assert report["command"] == (
        "python -m alexnet_keras_cli train --simulate-gtx580 --data ../shared/data/imagenette --epochs 3 "
        "--lr-schedule step:2 --seed 7 --run-dir r"
    )
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]

    text = learning.format_report(report)
    lines = text.splitlines()
    assert "target: >= 80% val top-1 within 30 epochs: met at epoch 3 (best 81.2% at epoch 3)" in lines
    epoch2 = next(line.split() for line in lines if line.split()[:1] == ["2"])
    assert epoch2 == ["2", "80.0", "95.0", "60.0", "1.200", "0.01", "120", "61.5"]
    assert "cores" in text and "load average" in text
    md = learning.format_table(rows, markdown=True).splitlines()
    assert (
        md[0].startswith("| epoch | val top-1 %") and md[3] == "| 2 | 80.0 | 95.0 | 60.0 | 1.200 | 0.01 | 120 | 61.5 |"
    )


def test_collect_of_a_run_still_going(tmp_path):
    run = _run_dir(tmp_path, summary=False, log=False)
    out = tmp_path / "results"
    out.mkdir()
    (out / "summary.json").write_text("{}")  # stale, from an earlier collect
    report = learning.collect(run, out)
    assert not report["finished"] and not (out / "summary.json").exists()
    assert report["seconds_total"] is None and report["log"] is None  # no log: no seconds
    assert [r["seconds"] for r in report["epochs"]] == [None, None, None]
    assert "still running" in learning.format_report(report)


def test_total_time_of_a_resumed_run_without_a_log_is_unknown(tmp_path):
    run = _run_dir(tmp_path, log=False)
    (run / "summary.json").write_text(json.dumps({**SUMMARY, "resumed_from_epoch": 1}))
    assert learning.collect(run, tmp_path / "o")["seconds_total"] is None  # seconds_here misses epoch 1
    (run / "summary.json").write_text(json.dumps(SUMMARY))
    assert learning.collect(run, tmp_path / "o")["seconds_total"] == 566.0  # one go: summary.json's time


def test_collect_only_without_history_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = learning.main(["--collect-only", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--no-eval"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("benchmarks.learning: error: ") and "history.csv" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_collect_only_cli_prints_table_and_verdict(tmp_path, capsys):
    run = _run_dir(tmp_path)
    assert learning.main(["--collect-only", str(run), "--out", str(tmp_path / "o"), "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "met at epoch 3" in out and (tmp_path / "o" / "learning.json").is_file()


def test_train_command_is_the_documented_one():
    argv = learning.train_argv("/w/runs/imagenette-2012")
    assert learning.command_text(argv) == (
        "python -m alexnet_keras_cli train --simulate-gtx580 --data ../shared/data/imagenette --epochs 30 "
        "--batch-size 64 --lr-schedule step:20,27 --precision mixed_bfloat16 --seed 0 --run-dir /w/runs/imagenette-2012"
    )
    # a float32 run (the package's default) is recorded without the flag
    plain = learning.train_argv("/w/r", 22, lr_schedule="step:13,19", precision="float32")
    assert "--precision" not in plain and plain[plain.index("--epochs") + 1] == "22"
    assert learning.log_path("/w/runs/imagenette-2012").as_posix() == "/w/runs/imagenette-2012.log"


def test_committed_results_agree_with_each_other():
    """Each committed result folder parses, and its report matches its history (none yet: nothing to check)."""
    for report_path in learning.RESULTS.parent.glob("*/learning.json"):
        folder = report_path.parent
        report = json.loads(report_path.read_text())
        history = learning.read_history(folder / "history.csv")
        assert [r["val_top1"] for r in report["epochs"]] == [h["val_acc"] for h in history]
        assert [r["val_top5"] for r in report["epochs"]] == [h["val_top5_acc"] for h in history]
        assert report["target"] == learning.target_verdict(report["epochs"])
        config = json.loads((folder / "config.json").read_text())["config"]
        assert config["lr_schedule"] == report["lr_schedule"]
        assert config["precision"] == report.get("precision", "float32")
        assert (f"--precision {config['precision']}" in report["command"]) == (config["precision"] != "float32")
        assert f"--batch-size {config['batch_size']} " in report["command"] or "--batch-size" not in report["command"]
        if report["finished"]:
            assert json.loads((folder / "summary.json").read_text())["epochs_completed"] == len(history)
