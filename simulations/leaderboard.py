"""ILSVRC classification leaderboards (2010 to 2012) and placing a new entry on them.

2012 is the full Task 1 table from the results page [R12] (16 entries, top-5
error on the test set). For 2010 and 2011 only the winners are stored, each with
a `verified` flag: [P] Table 1 gives the best 2010 entry as 28.2%, while the often
quoted 0.28191 (2010) and 0.2577 (2011) were not checked against a source.

Errors are fractions (0.15315); the text table shows percentage points.

Example:
>>> p = place(2012, 0.20)
>>> p.rank, p.would_have_won
(3, False)
>>> round(winning_margin(2012), 3)
10.857
"""

from dataclasses import asdict, dataclass, field

from ._data import as_bool, read_csv

YEARS = (2010, 2011, 2012)


@dataclass(frozen=True)
class Entry:
    """One row of a leaderboard. `top5_error` is a fraction."""

    year: int
    team: str
    entry: str
    top5_error: float
    description: str = ""
    extra_data: bool = False
    verified: bool = True
    source: str = ""
    top1_error: float = None

    def as_dict(self):
        return asdict(self)


def _check_year(year):
    year = int(year)
    if year not in YEARS:
        raise ValueError(f"no leaderboard for {year}; choose from {YEARS}")
    return year


def winners(primary_only=True):
    """The ILSVRC classification winners, one row per figure.

    Args:
        primary_only: drop the alternative figures (the unverified 0.28191 for
            2010, kept in the data beside [P]'s 28.2%).
    """
    rows = []
    for r in read_csv("ilsvrc_winners.csv"):
        if primary_only and not as_bool(r["primary"]):
            continue
        rows.append(
            Entry(
                year=int(r["year"]),
                team=r["team"],
                entry=f"{r['test_set']} winner",
                top5_error=float(r["top5_error"]),
                description=r["note"],
                verified=as_bool(r["verified"]),
                source=r["source"],
                top1_error=float(r["top1_error"]) if r["top1_error"] else None,
            )
        )
    return rows


def load(year=2012):
    """The leaderboard of `year`, best first.

    2012 is the full Task 1 table; 2010 and 2011 hold only the winner.

    Example:
    >>> [e.team for e in load(2012)[:3]]
    ['SuperVision', 'SuperVision', 'ISI']
    """
    year = _check_year(year)
    if year != 2012:
        return [e for e in winners() if e.year == year]
    rows = [
        Entry(
            year=2012,
            team=r["team"],
            entry=r["entry"],
            top5_error=float(r["top5_error"]),
            description=r["description"],
            extra_data=as_bool(r["extra_data"]),
            verified=True,
            source=r["source"],
        )
        for r in read_csv("ilsvrc2012_task1.csv")
    ]
    return sorted(rows, key=lambda e: e.top5_error)


def runner_up(year=2012):
    """The best entry of the second-best team (ISI in 2012), or None if only a winner is stored."""
    table = load(year)
    winner = table[0]
    others = [e for e in table if e.team != winner.team]
    return others[0] if others else None


def winning_margin(year=2012):
    """The winner's lead over the runner-up team, in percentage points (10.857 in 2012)."""
    second = runner_up(year)
    if second is None:
        return None
    return (second.top5_error - load(year)[0].top5_error) * 100


def progression():
    """The winning top-5 error per year, 2010 to 2012, with verification flags.

    Each year was scored on its own test set, so the steps compare winners, not
    one fixed benchmark.
    """
    return [
        {
            "year": e.year,
            "team": e.team,
            "top5_error": e.top5_error,
            "verified": e.verified,
            "source": e.source,
        }
        for e in winners()
    ]


def rank_of(table, top5_error):
    """1 + the number of entries strictly better; ties share the rank."""
    return 1 + sum(e.top5_error < top5_error for e in table)


@dataclass
class Placement:
    """A new entry placed on a year's table.

    Margins are in percentage points, positive when the new entry is better.
    A non-comparable entry (not the full ImageNet-1k validation set) gets the
    rank it *would* have, but is never put into `ranked()`.
    """

    year: int
    table: list
    you: Entry
    rank: int
    comparable: bool
    reason: str = ""
    ci95: tuple = None
    top1_error: float = None
    winner: Entry = None
    runner_up: Entry = None
    margin_vs_winner: float = None
    margin_vs_runner_up: float = None
    would_have_won: bool = False
    notes: list = field(default_factory=list)

    def ranked(self):
        """(rank, entry, is_you) rows, the new entry included only when comparable."""
        entries = [(e, False) for e in self.table] + ([(self.you, True)] if self.comparable else [])
        everyone = [e for e, _ in entries]
        rows = [(rank_of(everyone, e.top5_error), e, is_you) for e, is_you in entries]
        return sorted(rows, key=lambda r: (r[1].top5_error, r[2]))

    def as_dict(self):
        return {
            "name": self.you.team,
            "top1_error": self.top1_error,
            "top5_error": self.you.top5_error,
            "top5_ci95": list(self.ci95) if self.ci95 else None,
            "rank": self.rank,
            "comparable": self.comparable,
            "reason": self.reason,
            "margin_vs_winner": self.margin_vs_winner,
            "margin_vs_runner_up": self.margin_vs_runner_up,
            "would_have_won": self.would_have_won,
        }


def place(year, top5_error, name="your entry", *, comparable=True, reason="", ci95=None, top1_error=None):
    """Puts an entry with `top5_error` (a fraction) on the `year` table.

    Args:
        year: 2010, 2011 or 2012.
        top5_error: the entry's top-5 error as a fraction.
        name: the label shown in the table.
        comparable: False when the error was not measured on the full ImageNet-1k
            validation set; the entry then only gets a "would rank" position.
        reason: why it is (not) comparable, shown beside it.
        ci95: optional (low, high) interval for `top5_error`.
        top1_error: optional, for display.

    Returns:
        a `Placement`.

    Example:
    >>> p = place(2012, 0.15)
    >>> p.rank, p.would_have_won, round(p.margin_vs_winner, 3)
    (1, True, 0.315)
    """
    year = _check_year(year)
    top5_error = float(top5_error)
    if not 0.0 <= top5_error <= 1.0:
        raise ValueError(f"top5_error is a fraction in [0, 1], got {top5_error}")
    table = load(year)
    winner, second = table[0], runner_up(year)
    you = Entry(year=year, team=name, entry="", top5_error=top5_error, description=reason, verified=comparable,
                source="measured here", top1_error=top1_error)
    notes = [f"{e.year} {e.team}: {e.top5_error:.2%} is unverified" for e in table if not e.verified]
    return Placement(
        year=year,
        table=table,
        you=you,
        rank=rank_of(table, top5_error),
        comparable=comparable,
        reason=reason,
        ci95=tuple(ci95) if ci95 else None,
        top1_error=top1_error,
        winner=winner,
        runner_up=second,
        margin_vs_winner=(winner.top5_error - top5_error) * 100,
        margin_vs_runner_up=None if second is None else (second.top5_error - top5_error) * 100,
        would_have_won=top5_error < winner.top5_error,
        notes=notes,
    )


def _pct(x):
    return f"{x * 100:.3f}"


def format_table(year=2012, placement=None):
    """The ranked table as fixed-width text (errors in percent, 3 decimals).

    A comparable placement is ranked among the entries and marked `<-`; a
    non-comparable one goes into its own "not comparable" section below.
    """
    if placement is not None:
        year = placement.year
        rows = placement.ranked()
    else:
        rows = [(rank_of(load(year), e.top5_error), e, False) for e in load(year)]
    lines = [f"ILSVRC{year} classification, top-5 error (%)"]
    header = f"{'rank':>4}  {'team':<28} {'top-5':>7}  entry"
    lines += [header, "-" * 78]
    for rank, e, is_you in rows:
        mark = "  <- you" if is_you else ""
        flag = " (unverified)" if not e.verified and not is_you else ""
        extra = " [extra data]" if e.extra_data else ""
        lines.append(f"{rank:>4}  {e.team[:28]:<28} {_pct(e.top5_error):>7}  {e.entry}{extra}{flag}{mark}")
    if placement is not None and placement.comparable and placement.ci95:
        lo, hi = placement.ci95
        lines.append(f"      {placement.you.team}: 95% CI {_pct(lo)} to {_pct(hi)}")
    if placement is not None and not placement.comparable:
        you = placement.you
        lines += ["", "not comparable (not ranked with the entries above):"]
        ci = f", 95% CI {_pct(placement.ci95[0])}-{_pct(placement.ci95[1])}" if placement.ci95 else ""
        lines.append(f"      {you.team}: top-5 {_pct(you.top5_error)}{ci}; would rank {placement.rank} of {len(placement.table) + 1}")
        if placement.reason:
            lines.append(f"      why: {placement.reason}")
    for alt in winners(primary_only=False):
        if alt.year == year and alt not in winners():
            lines.append(f"      (also quoted for {alt.team}: {_pct(alt.top5_error)}, {'verified' if alt.verified else 'unverified'})")
    margin = winning_margin(year)
    if margin is not None:
        w, r = load(year)[0], runner_up(year)
        lines += ["", f"{w.team} won by {margin:.3f} points over {r.team} ({_pct(r.top5_error)} - {_pct(w.top5_error)})."]
    if placement is not None:
        verb = "is" if placement.comparable else "would be"
        if placement.margin_vs_runner_up is not None:
            lines.append(_margin_line(placement.you.team, verb, placement.margin_vs_runner_up, placement.runner_up))
        lines.append(_margin_line(placement.you.team, verb, placement.margin_vs_winner, placement.winner))
        verdict = "would have won" if placement.would_have_won else "would not have won"
        lines.append(f"{placement.you.team} {verdict} ILSVRC{year}{'' if placement.comparable else ' (if it were comparable)'}.")
    return "\n".join(lines)


def _margin_line(name, verb, points, other):
    side = "ahead of" if points > 0 else "behind" if points < 0 else "level with"
    return f"{name} {verb} {abs(points):.3f} points {side} {other.team} ({_pct(other.top5_error)})."


def format_progression():
    """Winning top-5 error per year as text, with verification flags."""
    lines = ["Winning top-5 error by year (each year on its own test set):"]
    for p in progression():
        flag = "" if p["verified"] else "  (unverified)"
        lines.append(f"  {p['year']}  {p['team']:<30} {_pct(p['top5_error']):>7}{flag}")
    return "\n".join(lines)


def plot(placement_or_year, path, title=None):
    """Saves a horizontal bar chart of a table (matplotlib's Agg backend).

    The runner-up team's best error is drawn as a dashed line; a placed entry is
    highlighted (hatched when not comparable).

    Args:
        placement_or_year: a `Placement` or a year.
        path: where to write the image; its extension picks the format (PNG
            without one), checked before any drawing
            (`alexnet_keras.visualize.figure_format`, `UserError` if unsupported).
        title: optional title.

    Returns:
        `path`.
    """
    import matplotlib

    from alexnet_keras.visualize import figure_format, save_figure  # no Keras behind it

    figure_format(path)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = figure(placement_or_year, title=title)
    try:
        save_figure(fig, path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def figure(placement_or_year, title=None):
    """The bar chart of `plot` as a matplotlib Figure (for notebooks)."""
    import matplotlib.pyplot as plt

    placement = placement_or_year if isinstance(placement_or_year, Placement) else None
    year = placement.year if placement else _check_year(placement_or_year)
    table = load(year)
    rows = [(e, False) for e in table]
    if placement is not None:
        rows.append((placement.you, True))
    rows.sort(key=lambda r: r[0].top5_error)

    colours = {"SuperVision": "#1f77b4"}
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 2.0))
    labels, values, bar_colours, hatches = [], [], [], []
    for e, is_you in rows:
        if is_you:
            tag = f" (#{placement.rank})" if placement.comparable else f" (not comparable; would rank {placement.rank})"
            labels.append(f"{e.team}{tag}")
            bar_colours.append("#d62728")
            hatches.append("" if placement.comparable else "//")
        else:
            short = e.entry if len(e.entry) <= 34 else e.entry[:31] + "..."
            labels.append(f"{e.team} - {short}" if len(table) > 1 else f"{e.team}")
            bar_colours.append(colours.get(e.team, "#9e9e9e"))
            hatches.append("" if e.verified else "..")
        values.append(e.top5_error * 100)
    y = range(len(rows))
    bars = ax.barh(y, values, color=bar_colours, edgecolor="black", linewidth=0.4)
    for bar, hatch in zip(bars, hatches):
        bar.set_hatch(hatch)
    for yi, v in zip(y, values):
        ax.text(v + 0.3, yi, f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    second = runner_up(year)
    if second is not None:
        ax.axvline(second.top5_error * 100, color="black", linestyle="--", linewidth=1)
        ax.text(second.top5_error * 100 + 0.3, -0.75, f"runner-up {second.team}: {second.top5_error * 100:.1f}%",
                fontsize=8, va="center")
    ax.set_ylim(len(rows) - 0.5, -1.2)  # room above the first bar for the line's label
    from matplotlib.patches import Patch

    legend = [Patch(facecolor="#9e9e9e", label="other teams")]
    if any(e.team == "SuperVision" for e in table):
        legend.insert(0, Patch(facecolor="#1f77b4", label="SuperVision (AlexNet)"))
    if placement is not None:
        legend.append(Patch(facecolor="#d62728", hatch="" if placement.comparable else "//",
                            label="your entry" + ("" if placement.comparable else " (not comparable)")))
    if any(not e.verified for e in table):
        legend.append(Patch(facecolor="#9e9e9e", hatch="..", label="unverified figure"))
    # below the x label, so it never hides a bar or the runner-up line's label
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=4, ncol=len(legend),
              fontsize=8, frameon=False)
    ax.set_xlabel("top-5 error (%)")
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_title(title or f"ILSVRC{year} classification (top-5 error, lower is better)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def report(year=2012, placement=None):
    """The table as a JSON-ready dict: year, entries (with rank), margin, progression, you.

    `you` is None without a placement; otherwise the placement's fields, `rank`
    being where the entry falls (a "would rank" when not comparable).
    """
    table = load(year)
    second = runner_up(year)
    return {
        "year": int(year),
        "entries": [
            {
                "rank": rank_of(table, e.top5_error),
                "team": e.team,
                "entry": e.entry,
                "top5_error": e.top5_error,
                "extra_data": e.extra_data,
                "verified": e.verified,
                "source": e.source,
            }
            for e in table
        ],
        "winner": table[0].team,
        "runner_up": second.team if second else None,
        "winning_margin_points": None if second is None else round(winning_margin(year), 6),
        "progression": progression(),
        "you": None if placement is None else placement.as_dict(),
    }
