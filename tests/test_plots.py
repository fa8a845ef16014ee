"""alexnet_keras.plots: Figure 3 (conv1's kernels, two GPU groups of 48 for 2012 and 64 for owt) and the
ILSVRC leaderboard bar chart; no global matplotlib backend switch."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from alexnet_keras import AlexNet, UserError, cli, export_npz
from alexnet_keras.plots import conv1_kernels, leaderboard_figure, plot_filters, plot_leaderboard
from alexnet_keras.simulations import leaderboard

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def titles(fig):
    return [sub._suptitle.get_text() for sub in fig.subfigs]


def check_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()


def test_2012_shows_two_gpu_groups_of_48(tmp_path):
    model = AlexNet("2012")
    fig = plot_filters(model, tmp_path / "fig3.png")
    assert len(fig.axes) == 96
    assert titles(fig) == ["GPU 1: kernels 1-48", "GPU 2: kernels 49-96"]
    assert [len(sub.axes) for sub in fig.subfigs] == [48, 48]
    # GPU 2's panel starts with kernel 49, the first one feeding tower 1.
    np.testing.assert_allclose(fig.subfigs[1].axes[0].images[0].get_array(), conv1_kernels(model)[48])
    check_png(tmp_path / "fig3.png")


def test_owt_shows_64(tmp_path):
    model = AlexNet("owt")
    fig = plot_filters(model, tmp_path / "owt.png")
    assert len(fig.axes) == 64 and titles(fig) == ["conv1 kernels 1-64"]
    np.testing.assert_allclose(fig.axes[5].images[0].get_array(), conv1_kernels(model)[5])
    check_png(tmp_path / "owt.png")


def test_each_kernel_is_normalised_on_its_own():
    model = AlexNet("owt")
    kernel = np.asarray(model.get_layer("conv1").kernel).copy()
    kernel[..., 0] *= 100.0  # one loud kernel must not wash out the rest
    kernel[..., 1] = 0.5  # a flat kernel must not divide by zero
    model.get_layer("conv1").kernel.assign(kernel)
    shown = conv1_kernels(model)
    assert shown.shape == (64, 11, 11, 3)
    some = shown[[0, 2, 63]]
    assert np.allclose(some.min(axis=(1, 2, 3)), 0) and np.allclose(some.max(axis=(1, 2, 3)), 1)
    assert np.all(shown[1] == 0)
    loud = kernel[..., 0].astype(np.float64)
    np.testing.assert_allclose(shown[0], (loud - loud.min()) / np.ptp(loud), atol=1e-6)


def test_cli_show_filters(tmp_path, capsys):
    export_npz(AlexNet("2012"), tmp_path / "paper.npz")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["show", "filters", "--model", str(tmp_path / "paper.npz"), "--out", str(tmp_path / "fig3.png")])
    assert exit_info.value.code == 0
    assert "96 kernels" in capsys.readouterr().out
    check_png(tmp_path / "fig3.png")
    for args, message in [
        (["--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "x.png")], "file not found"),
        (["--model", str(tmp_path / "paper.npz"), "--out", str(tmp_path / "no" / "x.png")], "directory not found"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["show", "filters", *args])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err


def test_weights_h5_has_no_architecture(tmp_path):
    AlexNet("owt").save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(UserError, match="no architecture"):
        plot_filters(tmp_path / "w.weights.h5")


def test_out_is_written_under_the_name_given(tmp_path, capsys):
    export_npz(AlexNet("owt", include_top=False), tmp_path / "features.npz")
    out = tmp_path / "out"  # no extension: a PNG at exactly this path, and that path reported
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["show", "filters", "--model", str(tmp_path / "features.npz"), "--out", str(out)])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"wrote {out} (64 kernels)\n"
    check_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npz", "out"]
    plot_filters(AlexNet("owt", include_top=False), tmp_path / "fig.svg")
    assert (tmp_path / "fig.svg").read_text().lstrip().startswith("<?xml")


def test_a_bad_out_is_refused_before_the_model_is_read(tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")  # were the model read first, the error would name it
    for out, message in [
        (tmp_path / "fig3.xyz", ".xyz is not an image format"),
        (tmp_path, "is a directory"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["show", "filters", "--model", missing, "--out", str(out)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_conv1_must_be_a_finite_rgb_convolution():
    import keras

    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="conv1")])
    with pytest.raises(UserError, match="not a convolution of RGB images"):
        conv1_kernels(dense)
    model = AlexNet("owt", include_top=False)
    kernel = np.asarray(model.get_layer("conv1").kernel).copy()
    kernel[0, 0, 0, 0] = np.nan
    model.get_layer("conv1").kernel.assign(kernel)
    with pytest.raises(UserError, match="not finite"):
        conv1_kernels(model)


# --- the leaderboard -----------------------------------------------------------
def test_leaderboard_plot_writes_png(tmp_path):
    path = plot_leaderboard(leaderboard.place(2012, 0.2), tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    check_png(path)


def test_leaderboard_figure_bars():
    fig = leaderboard_figure(leaderboard.place(2012, 0.30, comparable=False, reason="10 classes"))
    [ax] = fig.axes
    bars = ax.patches[:17]  # the legend's patches are not in ax.patches
    widths = [round(b.get_width(), 3) for b in bars]
    assert len(ax.patches) == 17 and widths == sorted(widths)
    assert widths[0] == 15.315 and widths[-1] == 41.048 and 30.0 in widths  # [R12]'s best and worst, and ours
    ours = bars[widths.index(30.0)]
    assert ours.get_hatch() == "//"  # hatched: not comparable
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[widths.index(30.0)] == "your entry (not comparable; would rank 12)"
    assert ax.get_title() == "ILSVRC2012 classification (top-5 error, lower is better)"
    assert [round(x, 3) for x in ax.lines[0].get_xdata()] == [26.172, 26.172]  # the runner-up ISI's line
    unverified = leaderboard_figure(2011).axes[0].patches[0]
    assert unverified.get_hatch() == ".." and round(unverified.get_width(), 2) == 25.77


def test_leaderboard_checks_year_and_path_first(tmp_path):
    with pytest.raises(ValueError, match="no leaderboard for 2013"):
        leaderboard_figure(2013)
    with pytest.raises(UserError, match=r"\.xyz is not an image format"):
        plot_leaderboard(2012, tmp_path / "t.xyz")
    assert list(tmp_path.iterdir()) == []


NO_GLOBAL_BACKEND = """
import sys, matplotlib
from alexnet_keras import plots
from alexnet_keras.simulations import leaderboard
plots.plot_leaderboard(leaderboard.place(2012, 0.2), sys.argv[1])
plots.plot_filters(sys.argv[2], sys.argv[3])
print(matplotlib.get_backend())
"""


def test_no_global_backend_switch(tmp_path):
    """Before: leaderboard.plot called matplotlib.use("Agg"), switching the caller's backend."""
    export_npz(AlexNet("owt", include_top=False), tmp_path / "owt.npz")
    env = dict(os.environ, MPLBACKEND="svg")
    args = [str(tmp_path / "t.png"), str(tmp_path / "owt.npz"), str(tmp_path / "f.png")]
    result = subprocess.run(
        [sys.executable, "-c", NO_GLOBAL_BACKEND, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["svg"]  # still the caller's backend
    check_png(tmp_path / "t.png")
    check_png(tmp_path / "f.png")
