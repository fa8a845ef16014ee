"""The ILSVRC replay as text and JSON: the ranked table, the winners by year, and
what `alexnet-keras compete` prints for a scored model.

Errors are fractions in the data and percentage points (3 decimals) in the text.

Example:
>>> print(format_progression().splitlines()[0])
Winning top-5 error by year (each year on its own test set):
>>> compete_report(2012)["winner"], compete_report(2012)["you"]
('SuperVision', None)
"""

from .leaderboard import load, place, progression, rank_of, runner_up, winners, winning_margin

# What `compete --json` adds to the placement from the model's score (`evaluation.Score.as_dict()`).
SCORE_FIELDS = (
    "top1_error", "top5_error", "ci95", "images", "classes", "model_classes", "label", "ten_crop", "nonfinite",
    "warnings",
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


def place_score(year, score, name="your entry"):
    """Places a scored model (`evaluation.Score.as_dict()`) on the `year` table: a `Placement`."""
    return place(year, score["top5_error"], name=name, comparable=score["comparable"], reason=score["reason"],
                 ci95=score["top5_ci95"], top1_error=score["top1_error"])


def compete_report(year, placement=None, score=None, clock=None):
    """What `compete --json` prints: `report(year, placement)`, with the score's fields and the clock in `you`.

    Args:
        year: 2010, 2011 or 2012.
        placement: the `Placement` of a scored model, or None for the table alone.
        score: the model's `evaluation.Score.as_dict()` (with a placement).
        clock: the "would have taken on 2x GTX 580" sentence (with a placement).
    """
    result = report(year, placement)
    if score is not None:
        result["you"].update({key: score[key] for key in SCORE_FIELDS}, clock=clock)
    return result


def compete_text(year, placement=None, summary=None, clock=None):
    """What `compete` prints: the score's summary and clock (when given), the table and the winners by year."""
    parts = []
    if summary is not None:
        parts += [summary, *([clock] if clock else []), ""]
    parts += [format_table(year, placement), "", format_progression()]
    return "\n".join(parts)
