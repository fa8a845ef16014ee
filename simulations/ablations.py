"""The ablations [P] reports, as data: what each design choice did to the error.

[P] is Krizhevsky, Sutskever and Hinton, NIPS 2012 (`paper.SOURCE`).

Sign convention (one for the data file and every function here): a *change* is

    change = error(the paper's design) - error(the ablated variant)

as a fraction, so a negative change means the paper's choice lowered the error.
[P]'s "response normalization reduces our top-1 and top-5 error rates by 1.4%
and 1.2%" is stored as top1_change = -0.014 and top5_change = -0.012. A measured
interval must be in the same convention; `change` computes it from two errors.

`bound` says how to read a number: "about" (a point value, as printed) or
"more_than" (the error fell by more than it, so the change is below it: PCA
colour noise "reduces the top-1 error rate by over 1%"). Rows with
`comparable` false (relu, dropout) are not ImageNet top-1/top-5 differences;
their numbers, where [P] gives one, sit in other_value and other_metric.
"""

from ._data import as_bool, read_csv

IDS = ("lrn", "pool", "relu", "dropout", "pca", "towers", "depth")
BOUNDS = ("about", "more_than")
METRICS = ("top1", "top5")


def claims():
    """Rows of `data/paper_ablations.csv`, numbers as floats or None, flags as bools.

    >>> [(c["id"], c["top1_change"], c["top5_change"]) for c in claims()][:2]
    [('lrn', -0.014, -0.012), ('pool', -0.004, -0.003)]
    """
    rows = read_csv("paper_ablations.csv")
    for row in rows:
        for key in ("top1_change", "top5_change", "other_value"):
            row[key] = float(row[key]) if row[key] else None
        for key in ("comparable", "verified"):
            row[key] = as_bool(row[key])
        if row["bound"] not in BOUNDS:
            raise ValueError(f"paper_ablations.csv, {row['id']}: bound must be one of {BOUNDS}, got {row['bound']!r}")
    return rows


def claim(ablation_id):
    """The row for one ablation id (one of `IDS`).

    >>> c = claim("pca")
    >>> c["top1_change"], c["top5_change"], c["bound"], c["comparable"]
    (-0.01, None, 'more_than', True)
    """
    for row in claims():
        if row["id"] == ablation_id:
            return row
    raise ValueError(f"unknown ablation {ablation_id!r}; expected one of {', '.join(IDS)}")


def change(design_error, ablated_error):
    """The change in error in this module's convention: design minus ablated.

    >>> round(change(0.407, 0.421), 3)  # the paper's net beats the ablated one
    -0.014
    """
    return design_error - ablated_error


def contains(claimed, low, high):
    """Whether the measured interval [low, high] holds the claimed change.

    >>> contains(-0.004, -0.010, 0.001), contains(-0.004, -0.003, 0.002)
    (True, False)
    """
    if low > high:
        raise ValueError(f"interval [{low}, {high}] has low above high")
    return low <= claimed <= high


def agrees(ablation_id, metric, low, high):
    """Whether a measured interval [low, high] of the change fits [P]'s claim.

    "about" claims must lie inside the interval; a "more_than" claim (change
    below the number) agrees when part of the interval lies below it. Raises
    ValueError where [P] gives no ImageNet number to check against.

    >>> agrees("towers", "top1", -0.03, -0.01)
    True
    >>> agrees("pca", "top1", -0.02, 0.0), agrees("pca", "top1", -0.005, 0.0)
    (True, False)
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    row = claim(ablation_id)
    claimed = row[f"{metric}_change"]
    if not row["comparable"] or claimed is None:
        raise ValueError(f"[P] gives no {metric} change on ImageNet for {ablation_id!r}")
    if row["bound"] == "more_than":
        if low > high:
            raise ValueError(f"interval [{low}, {high}] has low above high")
        return low < claimed
    return contains(claimed, low, high)
