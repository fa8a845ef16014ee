"""The paper's own architecture numbers (Fig. 2), for side-by-side checks."""

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
