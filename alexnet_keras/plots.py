"""Every figure the package draws, each a `matplotlib.figure.Figure` built directly.

No pyplot and no global backend switch (`matplotlib.use`): a figure is saved
through `save_figure`, so a notebook's or a program's own backend is left alone.

* `plot_filters`: the paper's Figure 3, conv1's kernels drawn as small colour
  images. In the paper the 96 kernels of 11x11x3 come in two groups of 48, one
  per GPU: GPU 1 learned largely colour-agnostic edge detectors, GPU 2 colour
  blobs. Our 2012 model keeps that split (kernels 0-47 feed tower 0, 48-95
  tower 1), so the figure shows one labelled panel per tower; an owt model has
  one group of 64.
* `plot_leaderboard`: an ILSVRC table as a bar chart, with a placed entry, and
  [P]'s own models below it as unranked reference bars (outlined, no fill).
* `plot_trials`, `plot_ablations`: `tune`'s objective against each hyperparameter, and
  `ablate`'s changes in error with their intervals beside [P]'s claims.
* `plot_curves`: a run's loss, top-1 and top-5 error against epoch from its
  `history.csv`, lr drops marked, with a top axis in 2012-clock time; several
  runs overlay.
"""

import csv
import itertools
import json
import math
import os

import numpy as np

from .errors import UserError
from .simulations.leaderboard import Placement, load, references, runner_up

COLUMNS = 16  # Figure 3 has 16 kernels a row
# A figure path without an extension is written in this format, under exactly that name.
DEFAULT_FIGURE_FORMAT = "png"


def figure_format(path):
    """The format a figure at `path` is saved in; `UserError` if it cannot be written there.

    The extension picks the format (any that matplotlib writes); a path without
    one gets `DEFAULT_FIGURE_FORMAT` and keeps its name. Call it before slow work
    so a bad path costs nothing.

    Example:
    >>> figure_format("fig3.PDF"), figure_format("fig3")
    ('pdf', 'png')
    """
    from matplotlib.backend_bases import FigureCanvasBase

    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory: give an image file name such as {os.path.join(path, 'fig.png')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {path}: directory not found: {folder}")
    ext = os.path.splitext(path)[1][1:].lower()
    if not ext:
        return DEFAULT_FIGURE_FORMAT
    supported = FigureCanvasBase.get_supported_filetypes()
    if ext not in supported:
        raise UserError(
            f"cannot write {path}: .{ext} is not an image format (use one of "
            f"{', '.join('.' + e for e in sorted(supported))})"
        )
    return ext


def save_figure(fig, path, **kwargs):
    """Saves `fig` at exactly `path` (see `figure_format`), via a temporary file so no partial image is left.

    Returns:
        `path`.
    """
    fmt = figure_format(path)
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        fig.savefig(tmp, format=fmt, **kwargs)
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def conv1_kernels(model):
    """conv1's kernels as `(n, height, width, 3)`, each scaled to [0, 1] for display.

    Each kernel is normalised on its own (min to 0, max to 1), as in Figure 3,
    so weak and strong kernels are equally visible.

    Args:
        model: a Keras model with a `conv1` layer.
    """
    import keras

    try:
        kernel = getattr(model.get_layer("conv1"), "kernel", None)
    except ValueError:
        raise UserError("the model has no conv1 layer") from None
    kernel = None if kernel is None else keras.ops.convert_to_numpy(kernel)
    if kernel is None or kernel.ndim != 4 or kernel.shape[2] != 3:
        shape = None if kernel is None else kernel.shape
        raise UserError(f"the model's conv1 is not a convolution of RGB images (kernel shape {shape})")
    if not np.isfinite(kernel).all():
        raise UserError("conv1's kernels are not finite (NaN or inf): the weights come from a diverged run")
    kernels = np.moveaxis(kernel, -1, 0).astype(np.float64)  # (n, kh, kw, 3)
    low = kernels.min(axis=(1, 2, 3), keepdims=True)
    span = kernels.max(axis=(1, 2, 3), keepdims=True) - low
    return (kernels - low) / np.where(span > 0, span, 1.0)


def plot_filters(model, path=None, columns=COLUMNS):
    """Draws conv1's kernels as in Figure 3, one labelled panel per GPU tower.

    Args:
        model: a Keras AlexNet, or a `.keras`, `.pth` or `.npz` file.
        path: where to save the figure (the extension picks the format, PNG
            without one; see `figure_format`); `None` only returns it.
        columns: kernels per row.

    Returns:
        The matplotlib `Figure`: one axes per kernel (96 for 2012, 64 for owt).

    Example:
    >>> fig = plot_filters(AlexNet(), "fig3.png")  # doctest: +SKIP
    >>> len(fig.axes)  # doctest: +SKIP
    96
    """
    from matplotlib.figure import Figure

    if path is not None:
        figure_format(path)  # a bad path fails before the model is read
    if isinstance(model, (str, os.PathLike)):
        from .models.presets import load_model

        model = load_model(model)
    kernels = conv1_kernels(model)
    # The 2012 network's conv1 maps split across the two GPUs; owt ran on one.
    groups = 2 if getattr(model, "variant", None) == "2012" else 1
    per_group = len(kernels) // groups
    rows = math.ceil(per_group / columns)

    fig = Figure(figsize=(columns * 0.55, groups * (rows * 0.55 + 0.45)), layout="constrained")
    panels = fig.subfigures(groups, 1, squeeze=False)[:, 0]
    for g, panel in enumerate(panels):
        first = g * per_group
        title = f"kernels {first + 1}-{first + per_group}"
        panel.suptitle(f"GPU {g + 1}: {title}" if groups > 1 else f"conv1 {title}", fontsize=10)
        for i, ax in enumerate(panel.subplots(rows, columns, squeeze=False).ravel()):
            if i < per_group:
                ax.imshow(kernels[first + i], interpolation="nearest")
                ax.set_axis_off()
            else:
                ax.remove()  # an incomplete last row
    if path is not None:
        save_figure(fig, path, dpi=150)
    return fig


# --- ILSVRC leaderboards -------------------------------------------------------
_SUPERVISION = "#1f77b4"  # AlexNet's team
_OTHERS = "#9e9e9e"
_YOURS = "#d62728"
_SPLITS = {"val": "validation", "test": "test"}


def leaderboard_figure(placement_or_year, title=None):
    """A year's table as a horizontal bar chart (a `Figure`, for notebooks).

    The runner-up team's best error is drawn as a dashed line; a placed entry is
    highlighted (hatched when not comparable), unverified figures are dotted.
    [P]'s own models for the year (`leaderboard.references`) follow the ranked
    bars after a gap, outlined and unfilled, labelled "[P] ... (validation|test)".

    Args:
        placement_or_year: a `simulations.leaderboard.Placement` or a year.
        title: optional title.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    placement = placement_or_year if isinstance(placement_or_year, Placement) else None
    year = placement.year if placement else int(placement_or_year)
    table = load(year)  # checks the year
    rows = [(e, False) for e in table]
    if placement is not None:
        rows.append((placement.you, True))
    rows.sort(key=lambda r: r[0].top5_error)
    refs = references(year)

    fig = Figure(figsize=(10, 0.42 * (len(rows) + len(refs) + bool(refs)) + 2.0), layout="tight")
    ax = fig.subplots()
    labels, values, bar_colours, hatches = [], [], [], []
    for e, is_you in rows:
        if is_you:
            tag = f" (#{placement.rank})" if placement.comparable else f" (not comparable; would rank {placement.rank})"
            labels.append(f"{e.team}{tag}")
            bar_colours.append(_YOURS)
            hatches.append("" if placement.comparable else "//")
        else:
            short = e.entry if len(e.entry) <= 34 else e.entry[:31] + "..."
            labels.append(f"{e.team} - {short}" if len(table) > 1 else f"{e.team}")
            bar_colours.append(_SUPERVISION if e.team == "SuperVision" else _OTHERS)
            hatches.append("" if e.verified else "..")
        values.append(e.top5_error * 100)
    y = list(range(len(rows)))
    bars = ax.barh(y, values, color=bar_colours, edgecolor="black", linewidth=0.4)
    for bar, hatch in zip(bars, hatches, strict=True):
        bar.set_hatch(hatch)
    for yi, v in zip(y, values, strict=True):
        ax.text(v + 0.3, yi, f"{v:.3f}", va="center", fontsize=8)
    # Reference rows: after a one-row gap, never mixed into the ranked order, and one collection of their
    # own (gid "paper_references"), so ax.patches stays the ranked bars.
    ref_y = [len(rows) + 1 + i for i in range(len(refs))]
    ref_values = [r["top5_error"] * 100 for r in refs]
    if refs:
        outlines = [Rectangle((0, yi - 0.4), v, 0.8) for yi, v in zip(ref_y, ref_values, strict=True)]
        ax.add_collection(
            PatchCollection(
                outlines,
                facecolor="none",
                edgecolor=_SUPERVISION,
                linewidth=1.0,
                linestyle="--",
                gid="paper_references",
            )
        )
        for yi, v in zip(ref_y, ref_values, strict=True):
            ax.text(v + 0.3, yi, f"{v:.1f}", va="center", fontsize=8)
        labels += [f"[P] {r['model']} ({_SPLITS[r['split']]})" for r in refs]
    ax.set_yticks(y + ref_y)
    ax.set_yticklabels(labels, fontsize=8)
    values += ref_values
    second = runner_up(year)
    if second is not None:
        ax.axvline(second.top5_error * 100, color="black", linestyle="--", linewidth=1)
        ax.text(
            second.top5_error * 100 + 0.3,
            -0.75,
            f"runner-up {second.team}: {second.top5_error * 100:.1f}%",
            fontsize=8,
            va="center",
        )
    ax.set_ylim(len(rows) + (len(refs) + 1 if refs else 0) - 0.5, -1.2)  # room above the first bar for the line's label
    legend = [Patch(facecolor=_OTHERS, label="other teams")]
    if any(e.team == "SuperVision" for e in table):
        legend.insert(0, Patch(facecolor=_SUPERVISION, label="SuperVision (AlexNet)"))
    if placement is not None:
        legend.append(
            Patch(
                facecolor=_YOURS,
                hatch="" if placement.comparable else "//",
                label="your entry" + ("" if placement.comparable else " (not comparable)"),
            )
        )
    if refs:
        legend.append(
            Patch(
                facecolor="none",
                edgecolor=_SUPERVISION,
                linestyle="--",
                label="[P]'s own models (reference, not ranked)",
            )
        )
    if any(not e.verified for e in table):
        legend.append(Patch(facecolor=_OTHERS, hatch="..", label="unverified figure"))
    # below the x label, so it never hides a bar or the runner-up line's label
    ax.legend(
        handles=legend,
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        borderaxespad=4,
        ncol=len(legend),
        fontsize=8,
        frameon=False,
    )
    ax.set_xlabel("top-5 error (%)")
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_title(title or f"ILSVRC{year} classification (top-5 error, lower is better)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_leaderboard(placement_or_year, path, title=None):
    """Saves `leaderboard_figure` at `path`.

    Args:
        placement_or_year: a `Placement` or a year.
        path: where to write the image; its extension picks the format (PNG
            without one), checked before any drawing (`figure_format`).
        title: optional title.

    Returns:
        `path`.
    """
    figure_format(path)
    save_figure(leaderboard_figure(placement_or_year, title=title), path, dpi=120, bbox_inches="tight")
    return path


# --- training curves -----------------------------------------------------------
# (panel title, y label, history column -> plotted value); error = 1 - accuracy.
_CURVE_PANELS = (
    ("loss", "loss", "loss", False),
    ("top-1 error", "top-1 error", "acc", True),
    ("top-5 error", "top-5 error", "top5_acc", True),
)
# The 2012-clock axis's unit, picked so the axis reads in small numbers: (name, seconds, up to this many seconds).
_CLOCK_UNITS = (("s", 1, 120), ("min", 60, 2 * 3600), ("h", 3600, 2 * 86400), ("days", 86400, math.inf))


def read_curves(run_dir):
    """A run directory's `history.csv` as columns: `{"epoch": [1, 2, ...], "loss": [...], ...}` (floats).

    Empty cells (a metric a resumed run added later) become NaN, which matplotlib leaves as a gap.
    Raises `UserError` (one line) for a missing directory, a missing, empty or foreign history.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise UserError(f"run directory {run_dir} not found: give --run-dir a directory that `train` wrote")
    path = os.path.join(run_dir, "history.csv")
    if not os.path.isfile(path):
        raise UserError(f"{run_dir} has no history.csv: it is not a run directory, or no epoch has finished there yet")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    if not rows:
        raise UserError(f"{path} has no finished epoch yet: plot it after the first epoch ends")
    columns = {}
    try:
        for key in rows[0]:
            if key is None:  # a row longer than the header
                raise ValueError("a row has more cells than the header")
            columns[key] = [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in rows]
    except ValueError as e:
        raise UserError(f"{path} is not a history this package wrote ({e})") from None
    if "epoch" not in columns or any(not (e >= 1 and e == int(e)) for e in columns["epoch"]):
        raise UserError(f"{path} is not a history this package wrote (its 'epoch' column must count from 1)")
    columns["epoch"] = [int(e) for e in columns["epoch"]]
    return columns


def lr_drops(columns):
    """`[(epoch, lr)]`: each 1-based epoch that trained at a lower rate than the one before it, and that rate.

    The history's `lr` is the rate each epoch trained at, so a drop "at epoch n"
    takes effect between epochs n-1 and n; `plot_curves` draws it at x = n - 1.
    """
    lrs = columns.get("lr")
    if not lrs:
        return []
    pairs = zip(columns["epoch"], lrs, strict=True)
    return [(e, lr) for (_, before), (e, lr) in itertools.pairwise(pairs) if lr < before]


def gtx580_epoch_seconds(run_dir):
    """One epoch of this run on the paper's two GTX 580s (the 2012 clock), from its `summary.json`; None without one.

    `summary.json` (written when `train` returns) holds the clock's seconds for
    all finished epochs, `gtx580_equivalent_seconds`, and `epochs_completed`.
    """
    try:
        with open(os.path.join(os.fspath(run_dir), "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        seconds, epochs = float(summary["gtx580_equivalent_seconds"]), int(summary["epochs_completed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return seconds / epochs if epochs > 0 and seconds > 0 else None


def clock_unit(seconds):
    """`(name, seconds per unit)` for an axis spanning `seconds` of 2012 clock time."""
    for name, size, up_to in _CLOCK_UNITS:
        if seconds <= up_to:
            return name, size
    raise AssertionError("unreachable: the last unit has no bound")


def plot_curves(run_dirs, out=None, labels=None):
    """Training curves of one or several runs: loss, top-1 and top-5 error against epoch.

    Each run is one colour: training solid, validation dashed (error = 1 -
    accuracy). Each lr drop is a dotted vertical line at the end of the last
    epoch at the old rate (gid ``"lr_drop"``). The top panel has a second x axis
    in 2012-clock time (the first run with a `summary.json`: `gtx580_epoch_seconds`).

    Args:
        run_dirs: a run directory or a list of them (each with a `history.csv`).
        out: image file to write (extension picks the format, PNG without one); `None` only returns the figure.
        labels: one legend label per run (default: the directory's name).

    Returns:
        The matplotlib `Figure`: three axes (loss, top-1 error, top-5 error), x = epoch.

    Example:
    >>> fig = plot_curves(["runs/a", "runs/b"], "curves.png", labels=["paper", "step"])  # doctest: +SKIP
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = [os.fspath(r) for r in run_dirs]
    if not run_dirs:
        raise UserError("no run directory given: give at least one --run-dir")
    if labels is None:
        labels = [os.path.basename(os.path.normpath(r)) or r for r in run_dirs]
    labels = list(labels)
    if len(labels) != len(run_dirs):
        raise UserError(f"{len(labels)} labels for {len(run_dirs)} run directories: give one label per run")
    runs = [read_curves(r) for r in run_dirs]  # first: a missing run dir is the likelier mistake than the out path
    if out is not None:
        figure_format(out)

    fig = Figure(figsize=(8, 9), layout="constrained")
    axes = fig.subplots(len(_CURVE_PANELS), 1, sharex=True)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, (title, ylabel, key, is_accuracy) in zip(axes, _CURVE_PANELS, strict=True):
        for columns, label, colour in zip(runs, labels, colours, strict=True):
            for prefix, style, split in (("", "-", "train"), ("val_", "--", "val")):
                values = columns.get(prefix + key)
                if values is None:
                    continue
                y = [1.0 - v for v in values] if is_accuracy else values
                ax.plot(columns["epoch"], y, style, color=colour, marker="o", markersize=3, label=f"{label} {split}")
            for epoch, lr in lr_drops(columns):
                ax.axvline(epoch - 1, color=colour, linestyle=":", linewidth=1, gid="lr_drop")
                if ax is axes[0]:
                    ax.annotate(
                        f"lr {lr:g}",
                        (epoch - 1, 1),
                        xycoords=("data", "axes fraction"),
                        xytext=(2, -10),
                        textcoords="offset points",
                        fontsize=7,
                        color=colour,
                    )
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    last = max(max(c["epoch"]) for c in runs)
    axes[-1].set_xlim(0, last + 0.5)

    clocks = [(label, gtx580_epoch_seconds(r)) for label, r in zip(labels, run_dirs, strict=True)]
    timed = [(label, seconds) for label, seconds in clocks if seconds]
    if timed:
        label, per_epoch = timed[0]
        unit, size = clock_unit(per_epoch * last)
        scale = per_epoch / size
        top = axes[0].secondary_xaxis("top", functions=(lambda e: e * scale, lambda t: t / scale))
        whose = f", {label}" if len(runs) > 1 else ""
        top.set_xlabel(f"2012 clock ({unit} on 2x GTX 580{whose})")
        top.set_gid("gtx580_clock")
    if out is not None:
        save_figure(fig, out, dpi=120)
    return fig


def plot_trials(report, out=None):
    """A `tune` report's objective (validation top-1 error) against each hyperparameter, one panel each.

    Finished trials are dots; rejected and failed ones are crosses on the lower edge
    (they have no score); a log axis where the values span more than a decade.

    Args:
        report: the dict `alexnet_keras.search.tune` returns (or `trials.json`).
        out: image file to write; `None` only returns the figure.
    """
    from matplotlib.figure import Figure

    if out is not None:
        figure_format(out)
    trials = report["trials"]
    names = sorted({k for t in trials for k in t["hyperparameters"] if not k.startswith("tuner/")})
    if not names:
        raise UserError("the report has no hyperparameters to plot")
    fig = Figure(figsize=(4 * min(len(names), 3), 3.2 * math.ceil(len(names) / 3)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(math.ceil(len(names) / 3), min(len(names), 3), squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        done = [t for t in trials if t["objective"] is not None and name in t["hyperparameters"]]
        others = [t for t in trials if t["objective"] is None and name in t["hyperparameters"]]
        ax.scatter([_axis_value(t["hyperparameters"][name]) for t in done], [t["objective"] for t in done], color="C0")
        if others:
            ax.scatter(
                [_axis_value(t["hyperparameters"][name]) for t in others],
                [0] * len(others),
                marker="x",
                color="C3",
                label="rejected / failed",
                clip_on=False,
            )
            ax.legend(fontsize="small")
        values = [t["hyperparameters"][name] for t in done + others]
        if all(isinstance(v, (int, float)) and v > 0 for v in values) and max(values) > 10 * min(values):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("validation top-1 error")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(f"{report['tuner']} search: {len(trials)} trials")
    if out is not None:
        save_figure(fig, out)
    return fig


def _axis_value(value):
    return str(value) if isinstance(value, str) else value


def plot_ablations(report, out=None):
    """An `ablate` report: each arm's change in top-1 and top-5 error with its 95% interval, beside [P]'s claim.

    Change = error(baseline) - error(ablated), so bars left of zero mean the
    paper's design choice helped; [P]'s claimed change is a diamond. An arm
    that did not learn (`at_chance`) is grey and labelled so: its change
    measures a failed run.

    Args:
        report: the dict `alexnet_keras.search.ablate` returns (or `ablations.json`).
        out: image file to write; `None` only returns the figure.
    """
    from matplotlib.figure import Figure

    if out is not None:
        figure_format(out)
    rows = [r for r in report["ablations"] if r.get("ci95")]
    if not rows:
        raise UserError("the report has no ablation with a result yet (only the baseline, or no finished trial)")
    fig = Figure(figsize=(10, 0.5 * len(rows) + 2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(rows))
    for ax, metric in zip(axes, ("top1", "top5"), strict=True):
        change = np.array([r["change"][metric] for r in rows])
        low = np.array([r["ci95"][metric][0] for r in rows])
        high = np.array([r["ci95"][metric][1] for r in rows])
        for learned, color in ((True, "C0"), (False, "grey")):
            keep = np.array([not r.get("at_chance") for r in rows]) == learned
            if keep.any():
                xerr = [(change - low)[keep] * 100, (high - change)[keep] * 100]
                ax.errorbar(change[keep] * 100, y[keep], xerr=xerr, fmt="o", capsize=3, color=color)
        claimed = [(i, (r["paper_claim"] or {}).get(f"{metric}_change")) for i, r in enumerate(rows)]
        claimed = [(i, c) for i, c in claimed if c is not None]
        if claimed:
            ax.scatter(
                [c * 100 for _, c in claimed], [i for i, _ in claimed], marker="D", color="C3", label="[P] claims"
            )
            ax.legend(fontsize="small")
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(f"change in {metric} error, % (baseline - ablated)")
    axes[0].set_yticks(y, [r["id"] + (" (did not learn)" if r.get("at_chance") else "") for r in rows])
    axes[0].invert_yaxis()
    fig.suptitle(f"ablations: {report['epochs_per_trial']} epochs, {len(report['seeds'])} seed(s), 95% intervals")
    if out is not None:
        save_figure(fig, out)
    return fig
