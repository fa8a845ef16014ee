"""The paper's own numbers: Fig. 2, Tables 1 and 2, and the training recipe, as data."""

from ._data import as_bool, read_csv

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
        row["paper_model"] = as_bool(row["paper_model"])
        for key in ("top1_error", "top5_error"):
            row[key] = float(row[key]) if row[key] else None
    return rows


def references(year):
    """[P]'s own models measured on `year`'s data: reference rows, never competition entries.

    2012: Table 2 (validation and test rows); 2010: Table 1 (the ILSVRC-2010 test
    set, after that competition); none for 2011. The "best ILSVRC-2010 entry" of
    Table 1 is a competition entry and is left out (it is the 2010 winner's row).

    >>> [(r["model"], r["split"]) for r in references(2010)]
    [('CNN', 'test'), ('CNN (centre patch only)', 'test')]
    """
    return [r for r in tables() if r["year"] == int(year) and r["paper_model"]]


def cnn_star():
    """`data/paper_cnn_star.csv` as {key: number, or None where [P] does not give it}.

    >>> c = cnn_star()
    >>> c["pretrain_images"], c["pretrain_classes"], c["pretrain_epochs"]
    (15000000, 22000, None)
    """
    return {row["key"]: _parse(row["value"]) if row["value"] else None for row in read_csv("paper_cnn_star.csv")}


def _parse(text):
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return tuple(text.split())
