"""The ILSVRC replay as text and JSON: the ranked table, the winners by year, and
what `alexnet-keras compete` prints for a scored model.

Errors are fractions in the data and percentage points (3 decimals) in the text.

Example:
>>> print(format_progression().splitlines()[0])
Winning top-5 error by year (each year on its own test set):
>>> compete_report(2012)["winner"], compete_report(2012)["you"]
('SuperVision', None)
"""

from . import clock as clock_2012
from .leaderboard import (
    load,
    place,
    progression,
    rank_of,
    references,
    relative_cut,
    runner_up,
    winners,
    winning_margin,
)

# What `compete --json` adds to the placement from the model's score (`evaluation.Score.as_dict()`).
SCORE_FIELDS = (
    "top1_error",
    "top5_error",
    "ci95",
    "images",
    "classes",
    "model_classes",
    "label",
    "ten_crop",
    "nonfinite",
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
        lines.append(
            f"      {you.team}: top-5 {_pct(you.top5_error)}{ci}; would rank {placement.rank} of {len(placement.table) + 1}"
        )
        if placement.reason:
            lines.append(f"      why: {placement.reason}")
    for alt in winners(primary_only=False):
        if alt.year == year and alt not in winners():
            lines.append(
                f"      (also quoted for {alt.team}: {_pct(alt.top5_error)}, {'verified' if alt.verified else 'unverified'})"
            )
    margin = winning_margin(year)
    if margin is not None:
        w, r = load(year)[0], runner_up(year)
        lines += [
            "",
            f"{w.team} won by {margin:.3f} points over {r.team} ({_pct(r.top5_error)} - {_pct(w.top5_error)}), "
            f"a cut of {relative_cut(year):.1%} of {r.team}'s error ({margin:.3f} / {_pct(r.top5_error)}).",
        ]
    if placement is not None:
        verb = "is" if placement.comparable else "would be"
        if placement.margin_vs_runner_up is not None:
            lines.append(_margin_line(placement.you.team, verb, placement.margin_vs_runner_up, placement.runner_up))
        lines.append(_margin_line(placement.you.team, verb, placement.margin_vs_winner, placement.winner))
        verdict = "would have won" if placement.would_have_won else "would not have won"
        lines.append(
            f"{placement.you.team} {verdict} ILSVRC{year}{'' if placement.comparable else ' (if it were comparable)'}."
        )
    refs = format_references(year)
    return "\n".join(lines + (["", refs] if refs else []))


_SPLITS = {"val": "validation", "test": "test"}


def _pct1(x):
    return "-" if x is None else f"{x * 100:.1f}"


def format_references(year=2012):
    """[P]'s own models for `year` as reference rows (one decimal, as printed in [P]), never ranked.

    2012: Table 2, each row marked validation or test, test rows with the entry
    they were submitted as; 2010: Table 1 on that year's test set, each placed
    against the winner. Empty for a year without such rows.
    """
    rows = references(year)
    if not rows:
        return ""
    cited = dict.fromkeys(r["source"].split(";")[0].split(":")[0].removeprefix("[P] ") for r in rows)
    lines = [
        f"[P]'s own models (reference rows from [P] {', '.join(cited)}; not competition entries, not ranked):",
        f"      {'model':<26} {'split':<10} {'top-1':>6} {'top-5':>6}",
    ]
    for r in rows:
        entered = r["entered_as"]
        tail = f"  entered as {entered['entry']} ({_pct(entered['top5_error'])})" if entered else ""
        lines.append(
            f"      {r['model']:<26} {_SPLITS[r['split']]:<10} {_pct1(r['top1_error']):>6} "
            f"{_pct1(r['top5_error']):>6}{tail}"
        )
    if any(r["split"] == "val" for r in rows):
        lines.append(
            f"      validation = the ILSVRC-{year} validation set, test = its test set; [P] §6: the two "
            '"do not differ by more than 0.1%".'
        )
    placed = [r for r in rows if r["vs_winner"]]
    if placed:
        w = load(year)[0]
        lines.append(
            f"      measured by [P] on the ILSVRC-{year} test set after the competition; against the winner, "
            f"{w.team} ({_pct1(w.top1_error)} top-1, {_pct1(w.top5_error)} top-5):"
        )
        for r in placed:
            v = r["vs_winner"]
            side = "ahead of" if v["top5_points"] > 0 else "behind"
            top1 = "" if v["top1_points"] is None else f"; top-1 {v['top1_points']:.1f} points {side} it"
            lines.append(
                f"      {r['model']}: top-5 {abs(v['top5_points']):.1f} points {side} {v['team']}, "
                f"a cut of {v['top5_cut']:.1%} of its error{top1}."
            )
    return "\n".join(lines)


def format_paper_models_cost(cost=None):
    """[P]'s models on the 2012 clock (`clock.paper_models_cost`), each estimate and unknown said plainly."""
    clock = clock_2012
    c = clock.paper_models_cost() if cost is None else cost
    d = clock.format_duration
    s = c["cnn_star"]

    def rng(pair):
        return f"{d(pair[0])} to {d(pair[1])}"

    return "\n".join(
        [
            f"[P]'s models on the 2012 clock (2x GTX 580; {d(c['one_cnn_seconds'])} per {clock.EPOCHS} epochs of "
            f"{clock.IMAGES_PER_EPOCH:,} images, [P] §5 gives {clock.DAYS[0]:g} to {clock.DAYS[1]:g} days):",
            f"  1 CNN:   {clock.EPOCHS} epochs: {d(c['one_cnn_seconds'])} ({rng(c['one_cnn_range'])})",
            f"  {c['ensemble_nets']} CNNs:  {c['ensemble_nets']} x {clock.EPOCHS} epochs: {d(c['five_cnns_seconds'])} of the "
            f"pair's time ({rng(c['five_cnns_range'])}); an estimate: {c['five_cnns_is_estimate']}",
            f"  1 CNN*:  no total: [P] gives neither the epochs of pre-training nor of fine-tuning, "
            f"nor the size of the extra conv layer ({s['extra_conv_layers']} more, six in all)",
            f"           one epoch of ImageNet Fall 2011 (about {s['pretrain_images'] / 1e6:g}M images, "
            f"{s['pretrain_classes'] / 1000:g}K classes): at least {d(s['pretrain_epoch_seconds_at_least'])} "
            f"({rng(s['pretrain_epoch_range_at_least'])}), at {s['macs_per_image_at_least'] / 1e6:.1f}M MACs per image "
            f"(the {s['pretrain_classes'] / 1000:g}K-way output counted, not {s['not_counted']})",
            f"           one fine-tuning epoch on ILSVRC-2012 ({clock.IMAGES_PER_EPOCH:,} images): "
            f"at least {d(s['finetune_epoch_seconds_at_least'])} ({rng(s['finetune_epoch_range_at_least'])})",
            f"  7 CNNs*: the {c['ensemble_nets']} CNNs ({d(c['five_cnns_seconds'])}) plus {c['star_nets']} CNN* nets, "
            "whose cost [P] does not let us total",
        ]
    )


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
        "winning_margin_relative": None if second is None else round(relative_cut(year), 6),
        "references": references(year),
        # The ensembles and the CNN* models are Table 2's, entered in 2012.
        "paper_models_cost": clock_2012.paper_models_cost() if int(year) == 2012 else None,
        "progression": progression(),
        "you": None if placement is None else placement.as_dict(),
    }


def place_score(year, score, name="your entry"):
    """Places a scored model (`evaluation.Score.as_dict()`) on the `year` table: a `Placement`."""
    return place(
        year,
        score["top5_error"],
        name=name,
        comparable=score["comparable"],
        reason=score["reason"],
        ci95=score["top5_ci95"],
        top1_error=score["top1_error"],
    )


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
    parts += [format_table(year, placement)]
    if int(year) == 2012:
        parts += ["", format_paper_models_cost()]
    parts += ["", format_progression()]
    return "\n".join(parts)
