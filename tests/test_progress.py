"""Progress: a bar with ETA on a terminal (a real pseudo-terminal), a plain line at most every 30 s on a pipe,
epoch lines that never land on the end of a bar, `train --quiet` and `train --json`."""

import io
import json
import os
import pty
import re
import select
import subprocess
import sys

import keras
import numpy as np
import pytest

from alexnet_keras.training import progress
from alexnet_keras.training.callbacks import Clock

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
TINY = [
    "--epochs",
    "1",
    "--steps-per-epoch",
    "2",
    "--batch-size",
    "8",
    "--variant",
    "owt",
    "--set",
    "synthetic_classes=10",
    "--set",
    "synthetic_train_examples=16",
    "--set",
    "synthetic_val_examples=8",
]
BAR_METRIC = "top5_acc: "  # in the bar's suffix and the epoch line, never in the clock's line
CLOCK_LINE = "img/s here"  # the Clock callback's epoch line


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_terminal_bar_redraws_in_place_with_eta():
    out, clock = io.StringIO(), FakeClock()
    bar = progress.Bar("evaluate", total=4, unit="batches", stream=out, terminal=True, clock=clock)
    clock.now = 2.0
    bar.update(1)  # 1 of 4 in 2 s: 3 left at 2 s each
    assert out.getvalue() == "\revaluate [======>                 ] 1/4 batches ETA 0:06\033[K"
    clock.now = 8.0
    bar.update(4)
    bar.close()
    assert out.getvalue().endswith("\revaluate [========================] 4/4 batches 0:08 elapsed\033[K\n")


def test_plain_lines_come_at_most_every_30_seconds():
    out, clock = io.StringIO(), FakeClock()
    bar = progress.Bar("evaluate", total=100, unit="images", stream=out, terminal=False, clock=clock)
    for second in range(1, 101):  # one image a second for 100 s
        clock.now = float(second)
        bar.update(second)
    bar.close()
    lines = out.getvalue().splitlines()
    # t = 30, 60, 90: three lines, none with a carriage return or escape code
    assert lines == [
        "evaluate: 30/100 images (30%), 0:30 elapsed, ETA 1:10",
        "evaluate: 60/100 images (60%), 1:00 elapsed, ETA 0:40",
        "evaluate: 90/100 images (90%), 1:30 elapsed, ETA 0:10",
    ]


def test_echo_after_an_open_bar_starts_on_its_own_line(capsys):
    bar = progress.Bar("epoch 1/1", total=3, terminal=True)
    bar.update(1, "loss: 1.0")
    progress.line_safe(print)("lr -> 0.001")
    out = capsys.readouterr().out
    assert out.endswith("loss: 1.0\033[K\nlr -> 0.001\n")


def test_aligned_config_block():
    text = progress.aligned_block("config", {"variant": "2012", "batch_size": 128, "run_dir": None})
    assert text.splitlines() == ["config:", "  variant:    2012", "  batch_size: 128", "  run_dir:    None"]


def _lines(text):
    return text.replace("\r\n", "\n").split("\n")


def test_fit_progress_ends_the_bar_before_the_clock_line():
    """model.fit with the train loop's order (progress first, Clock last): the epoch lines stay apart."""
    out = io.StringIO()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(
        "sgd",
        "sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseTopKCategoricalAccuracy(2, name="top5_acc")],
    )
    x, y = np.zeros((16, 4), "float32"), np.arange(16) % 3
    echo = progress.line_safe(lambda message: print(message, file=out))
    callbacks = [progress.FitProgress(stream=out, terminal=True), Clock(16, 1000, echo)]
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=callbacks)
    text = out.getvalue()
    assert "\r" in text and "ETA" in text  # the bar was drawn in place
    lines = _lines(text)
    assert not [line for line in lines if BAR_METRIC in line and CLOCK_LINE in line]
    clock_lines = [line for line in lines if CLOCK_LINE in line]
    assert [line.split(":")[0] for line in clock_lines] == ["epoch 1", "epoch 2"]
    assert all(line.startswith("epoch ") for line in clock_lines)  # no bar text in front of them


def test_fit_progress_on_a_pipe_writes_plain_lines():
    out = io.StringIO()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.zeros((16, 4), "float32"), np.arange(16) % 3
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[progress.FitProgress(stream=out, terminal=False)])
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\033" not in out.getvalue()
    # 4 quick steps an epoch: no progress line (the first comes after 30 s), a header and a summary per epoch
    heads = [re.sub(r"in \d+:\d\d$", "in m:ss", line.split(" - ")[0]) for line in lines]
    assert heads == ["Epoch 1/2", "epoch 1/2: 4 steps in m:ss", "Epoch 2/2", "epoch 2/2: 4 steps in m:ss"]
    assert lines[1].split(" - ")[1].startswith("loss: ")


def _run_on_pty(argv, timeout=300):
    """Runs argv with stdout and stderr on a new pseudo-terminal; returns (exit code, everything printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout} s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_train_on_a_terminal_draws_a_bar_that_never_collides(tmp_path):
    code, text = _run_on_pty([*CLI, "train", *TINY, "--run-dir", str(tmp_path / "run")])
    assert code == 0, text
    assert "\r" in text and "ETA" in text and "[" in text  # the bar, redrawn in place
    lines = _lines(text)
    assert not [line for line in lines if BAR_METRIC in line and CLOCK_LINE in line]
    assert [line for line in lines if line.startswith("epoch 1: ") and CLOCK_LINE in line]
    assert f"tensorboard: tensorboard --logdir {tmp_path / 'run' / 'tensorboard'}" in lines
    # the config as an aligned block: one "  key: value" line per field, the values in one column
    block = lines[lines.index("config:") + 1 :]
    block = block[: next(i for i, line in enumerate(block) if not line.startswith("  "))]
    assert len(block) > 20 and ["variant:", "owt"] in [line.split() for line in block]
    columns = {len(line) - len(line.split(": ", 1)[1].lstrip()) for line in block}
    assert len(columns) == 1


@pytest.mark.slow
def test_train_piped_json_and_quiet(tmp_path):
    piped = subprocess.run(
        [*CLI, "train", *TINY, "--json", "--run-dir", str(tmp_path / "a")], capture_output=True, text=True, timeout=600
    )
    assert piped.returncode == 0, piped.stderr
    summary = json.loads(piped.stdout)  # stdout: exactly one JSON object, the summary
    assert summary == json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["strategy"] == "default"  # the public name, not _DefaultDistributionStrategy
    assert "\r" not in piped.stdout + piped.stderr  # a pipe gets plain lines, no bar
    assert "epoch 1/1: 2 steps in" in piped.stderr and "config:" in piped.stderr
    assert "Epoch 1/1" in piped.stderr.splitlines()  # Keras' header opens the epoch in a log

    quiet = subprocess.run(
        [*CLI, "train", *TINY, "--quiet", "--run-dir", str(tmp_path / "b")], capture_output=True, text=True, timeout=600
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.splitlines() == [f"run directory: {tmp_path / 'b'}"]


def test_score_reports_the_images_scored_after_each_batch():
    from types import SimpleNamespace

    from alexnet_keras import evaluation as ev

    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(8, activation="softmax")]
    )
    model.preprocessing = {"name": "paper", "input_size": 4, "resize": 6, "scale": 1.0, "mean": [0] * 3, "std": [1] * 3}
    model.class_wnids = None
    info = SimpleNamespace(name="toy", kind="folder", classes=8, class_wnids=None, val_examples=30)
    batches = [(np.zeros((n, 4, 4, 3), "float32"), np.arange(n) % 8) for n in (7, 7, 7, 7, 2)]
    out = io.StringIO()
    bar = progress.Bar("scoring", unit="images", stream=out, terminal=False, interval=0)  # a line every batch
    ev.score(model, batches, info, progress=bar)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "scoring: 7/30 images (23%)",
        "scoring: 14/30 images (46%)",
        "scoring: 21/30 images (70%)",
        "scoring: 28/30 images (93%)",
        "scoring: 30/30 images (100%)",
    ]
