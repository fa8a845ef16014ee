"""ILSVRC classification leaderboards (2010 to 2012) and placing a new entry on them.

2012 is the full Task 1 table from the results page [R12] (16 entries, top-5
error on the test set). For 2010 and 2011 only the winners are stored, each with
a `verified` flag: [P] Table 1 gives the best 2010 entry as 28.2%, while the often
quoted 0.28191 (2010) and 0.2577 (2011) were not checked against a source.

Errors are fractions (0.15315). The replay's text and JSON are in `report.py`,
the bar chart in `alexnet_keras.plots`.

Example:
>>> p = place(2012, 0.20)
>>> p.rank, p.would_have_won
(3, False)
>>> round(winning_margin(2012), 3), round(relative_cut(2012), 3)
(10.857, 0.415)

[P]'s own models (Tables 1 and 2, `paper.references`) are reference rows:
`references(year)` adds what they can be compared with, and never ranks them.
"""

from dataclasses import asdict, dataclass, field

from ..constants import YEARS
from ._data import as_bool, read_csv
from .paper import references as paper_references


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


def relative_cut(year=2012):
    """The winning margin as a fraction of the runner-up's error (10.857 / 26.172 = 0.415 in 2012)."""
    second = runner_up(year)
    if second is None:
        return None
    return (second.top5_error - load(year)[0].top5_error) / second.top5_error


def lead_over(top5_error, other, top1_error=None):
    """How far `top5_error` is ahead of the entry `other`: points, and the fraction of its error cut.

    Positive when ahead. Top-1 points only when both errors are known.
    """
    return {
        "team": other.team,
        "top5_points": (other.top5_error - top5_error) * 100,
        "top5_cut": (other.top5_error - top5_error) / other.top5_error,
        "top1_points": None
        if top1_error is None or other.top1_error is None
        else (other.top1_error - top1_error) * 100,
    }


def references(year=2012):
    """[P]'s own models for `year`, as reference rows with what they compare to; never ranked.

    Each row is `paper.references(year)`'s, plus:
      entered_as: the table's entry that is this model's test submission (the
        SuperVision entry whose error rounds to the paper's figure), or None;
      vs_winner: `lead_over` the year's winner, for test rows of a year whose
        table does not already hold the model (2010: [P] measured on that test
        set after the competition); None otherwise.

    Example:
    >>> r = references(2010)[0]
    >>> r["model"], round(r["vs_winner"]["top5_points"], 3), round(r["vs_winner"]["top5_cut"], 3)
    ('CNN', 11.2, 0.397)
    """
    year = _check_year(year)
    table, winner = load(year), load(year)[0]
    rows = []
    for r in paper_references(year):
        entered = None
        if r["split"] == "test":
            same = [
                e
                for e in table
                if e.team == "SuperVision" and round(e.top5_error * 100, 1) == round(r["top5_error"] * 100, 1)
            ]
            entered = same[0] if same else None
        vs = None
        if r["split"] == "test" and entered is None:
            vs = lead_over(r["top5_error"], winner, r["top1_error"])
        rows.append(
            {
                **r,
                "entered_as": None if entered is None else {"entry": entered.entry, "top5_error": entered.top5_error},
                "vs_winner": vs,
            }
        )
    return rows


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
    you = Entry(
        year=year,
        team=name,
        entry="",
        top5_error=top5_error,
        description=reason,
        verified=comparable,
        source="measured here",
        top1_error=top1_error,
    )
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
