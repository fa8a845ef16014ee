"""Reads the CSV files under `simulations/data` with `importlib.resources`."""

import csv
import io
from importlib import resources

_PACKAGE = "alexnet_keras.simulations"


def read_csv(name):
    """Returns the rows of `data/<name>` as dicts; every row must name a source.

    Example:
    >>> len(read_csv("ilsvrc2012_task1.csv"))
    16
    """
    text = (resources.files(_PACKAGE) / "data" / name).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    for i, row in enumerate(rows, start=2):
        if not row.get("source"):
            raise ValueError(f"{name}, line {i}: every row needs a source")
    return rows


def as_bool(text):
    """`"true"`/`"false"` (any case) to bool."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return value == "true"
