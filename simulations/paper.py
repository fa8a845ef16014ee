"""The paper's own numbers: Fig. 2, Tables 1 and 2, and the training recipe, as data."""

from ._data import read_csv

# Parameters of the grouped network, computed from the layer shapes in Sec. 3.5
# (the paper itself only says "60 million"); see alexnet-facts.md.
PARAMETERS = 60_965_224
SOURCE = "Krizhevsky, Sutskever, Hinton, NIPS 2012"


def fig2_layers():
    """Rows of `data/paper_fig2.csv`: layer, kernel, neurons (int), source."""
    rows = read_csv("paper_fig2.csv")
    for row in rows:
        row["neurons"] = int(row["neurons"])
    return rows


def recipe():
    """The training recipe of `data/paper_recipe.csv` as {key: value}, numbers parsed.

    >>> r = recipe()
    >>> r["batch_size"], r["lr"], r["bias_one_layers"]
    (128, 0.01, ('conv2', 'conv4', 'conv5', 'fc6', 'fc7'))
    """
    return {row["key"]: _parse(row["value"]) for row in read_csv("paper_recipe.csv")}


def tables():
    """Rows of `data/paper_tables.csv` (Tables 1 and 2); errors as floats or None."""
    rows = read_csv("paper_tables.csv")
    for row in rows:
        row["table"] = int(row["table"])
        row["year"] = int(row["year"])
        for key in ("top1_error", "top5_error"):
            row[key] = float(row[key]) if row[key] else None
    return rows


def _parse(text):
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return tuple(text.split())
