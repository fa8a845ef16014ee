"""plot_curves and `show curves`: the figure's artists against a history.csv written by hand."""

import json
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from alexnet_keras import UserError
from alexnet_keras.plots import plot_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Five epochs; the lr drops /10 before epoch 4 and again before epoch 5.
HISTORY = {
    "acc": [0.10, 0.20, 0.30, 0.45, 0.50],
    "loss": [6.9, 6.0, 5.1, 4.0, 3.8],
    "lr": [0.01, 0.01, 0.01, 0.001, 0.0001],
    "top5_acc": [0.30, 0.45, 0.60, 0.70, 0.74],
    "val_acc": [0.12, 0.22, 0.28, 0.40, 0.42],
    "val_loss": [6.8, 6.1, 5.3, 4.4, 4.3],
    "val_top5_acc": [0.33, 0.47, 0.58, 0.66, 0.69],
}
PER_EPOCH_SECONDS = 600.0  # 2012 clock: 10 min an epoch, so 5 epochs span 50 min -> the axis reads in minutes


def write_run(path, history=HISTORY, per_epoch=PER_EPOCH_SECONDS):
    path.mkdir()
    keys = sorted(history)
    lines = ["epoch," + ",".join(keys)]
    for i in range(len(history["loss"])):
        lines.append(f"{i + 1}," + ",".join(repr(history[k][i]) for k in keys))
    (path / "history.csv").write_text("\n".join(lines) + "\n")
    if per_epoch is not None:
        epochs = len(history["loss"])
        summary = {"epochs_completed": epochs, "gtx580_equivalent_seconds": per_epoch * epochs}
        (path / "summary.json").write_text(json.dumps(summary))
    return path


def line(ax, label):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def test_curves_plot_loss_and_errors_with_lr_drops_and_2012_clock(tmp_path):
    run = write_run(tmp_path / "run-a")
    fig = plot_curves(run, tmp_path / "curves.png")
    loss, top1, top5 = fig.axes[:3]
    assert [ax.get_ylabel() for ax in (loss, top1, top5)] == ["loss", "top-1 error", "top-5 error"]
    assert top5.get_xlabel() == "epoch"
    epochs = [1, 2, 3, 4, 5]
    for ax, key, error in ((loss, "loss", False), (top1, "acc", True), (top5, "top5_acc", True)):
        for prefix, split in (("", "train"), ("val_", "val")):
            ln = line(ax, f"run-a {split}")
            expected = np.asarray(HISTORY[prefix + key])
            np.testing.assert_array_equal(ln.get_xdata(), epochs)
            np.testing.assert_allclose(ln.get_ydata(), 1 - expected if error else expected)
        # The drops before epochs 4 and 5 sit at the ends of epochs 3 and 4, on every panel.
        drops = [ln for ln in ax.get_lines() if ln.get_gid() == "lr_drop"]
        assert sorted(ln.get_xdata()[0] for ln in drops) == [3, 4]
    assert sorted(t.get_text() for t in loss.texts) == ["lr 0.0001", "lr 0.001"]

    (clock,) = [a for a in loss.child_axes if a.get_gid() == "gtx580_clock"]
    assert clock.get_xlabel() == "2012 clock (min on 2x GTX 580)"
    FigureCanvasAgg(fig).draw()
    # epoch e ends at e x 10 min on the 2012 clock
    np.testing.assert_allclose(clock.get_xlim(), np.asarray(loss.get_xlim()) * PER_EPOCH_SECONDS / 60)
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_several_runs_overlay_in_their_own_colours(tmp_path):
    a = write_run(tmp_path / "a")
    flat = dict(HISTORY, lr=[0.01] * 5, acc=[0.5] * 5)
    b = write_run(tmp_path / "b", history=flat, per_epoch=None)
    fig = plot_curves([a, b], labels=["paper", "flat"])
    top1 = fig.axes[1]
    np.testing.assert_allclose(line(top1, "flat train").get_ydata(), [0.5] * 5)
    np.testing.assert_allclose(line(top1, "paper train").get_ydata(), 1 - np.asarray(HISTORY["acc"]))
    assert line(top1, "flat train").get_color() != line(top1, "paper train").get_color()
    assert len([ln for ln in top1.get_lines() if ln.get_gid() == "lr_drop"]) == 2  # run b never dropped
    (clock,) = fig.axes[0].child_axes
    assert clock.get_xlabel() == "2012 clock (min on 2x GTX 580, paper)"  # only run a has a summary.json


def test_bad_run_dirs_raise_one_line(tmp_path):
    with pytest.raises(UserError, match="not found"):
        plot_curves(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no history.csv"):
        plot_curves(tmp_path / "empty")
    (tmp_path / "empty" / "history.csv").write_text("epoch,loss\n")
    with pytest.raises(UserError, match="no finished epoch"):
        plot_curves(tmp_path / "empty")
    (tmp_path / "empty" / "history.csv").write_text("epoch,loss\n1,abc\n")
    with pytest.raises(UserError, match="not a history this package wrote"):
        plot_curves(tmp_path / "empty")
    run = write_run(tmp_path / "ok")
    with pytest.raises(UserError, match="one label per run"):
        plot_curves([run], labels=["a", "b"])


def test_show_curves_cli_writes_the_png_into_the_run_dir(tmp_path):
    run = write_run(tmp_path / "run")
    done = subprocess.run(
        [sys.executable, "-m", "alexnet_keras_cli", "show", "curves", "--run-dir", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {run / 'curves.png'} (1 run)"
    assert (run / "curves.png").read_bytes()[:8] == PNG_SIGNATURE
