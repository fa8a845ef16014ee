"""Top-k error, Wilson intervals and the softmax, on plain NumPy arrays.

* `topk_error`: a sample is right when its label is among the k highest
  scores. Ties count against the label, and a sample whose scores are not all
  finite (NaN or inf, e.g. a diverged model) counts as wrong.
* `wilson_interval`: the 95% interval of an error rate on n images.
* `outputs_logits(model)` and `to_probabilities(outputs, model)`: the one rule
  for whether a model's outputs are logits, used by scoring and by `predict`.

Ties: the label is in the top k only if fewer than k *other* classes score at
least as high as it does (`>=`). The ILSVRC scorer took five labels per image
from each submission, so a submitter could never list more than five classes and
a tie could never help them; a model that ties the label with others is scored
as if every tied rival were listed first. A constant model (all scores equal) is
therefore wrong on every image whenever k is below the number of classes.
(`tf.math.in_top_k` breaks ties the other way, in the label's favour.)

Example:
>>> import numpy as np
>>> topk_error(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]), np.array([1, 2]), k=1)
0.5
>>> [round(x, 4) for x in wilson_interval(10, 100)]
[0.0552, 0.1744]
"""

import math

import numpy as np


def softmax(logits, axis=-1):
    """Numerically stable softmax in float64.

    Example:
    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(6).tolist()
    [[0.25, 0.75]]
    """
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN/inf rows stay non-finite and are counted by the scorer
        z = z - z.max(axis=axis, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=axis, keepdims=True)


def outputs_logits(model):
    """Whether `model` outputs logits rather than probabilities.

    True when its `classifier_activation` is None or `"linear"` (Keras' name for
    no activation); a model without the attribute is taken to end in a softmax.

    Example:
    >>> class Net: classifier_activation = "linear"
    >>> outputs_logits(Net()), outputs_logits(object())
    (True, False)
    """
    return getattr(model, "classifier_activation", "softmax") in (None, "linear")


def to_probabilities(outputs, model):
    """`model`'s `outputs` as float64 probabilities: a softmax first when they are logits.

    Example:
    >>> class Net: classifier_activation = None
    >>> to_probabilities([[0.0, 0.0]], Net()).tolist(), to_probabilities([[0.2, 0.8]], object()).tolist()
    ([[0.5, 0.5]], [[0.2, 0.8]])
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    return softmax(outputs) if outputs_logits(model) else outputs


def finite_rows(scores):
    """Booleans: are all of each sample's scores finite (no NaN, no inf)?"""
    return np.isfinite(np.asarray(scores)).all(axis=1)


def topk_correct(scores, labels, k):
    """Booleans: is each label among the k highest scores, ties counted against it?

    A label is in when fewer than k other classes score `>=` it (the pessimistic
    rule of the module docstring), and a row with any NaN or inf is always out.

    Args:
        scores: `(N, C)` probabilities or logits (any monotone scores).
        labels: `(N,)` integer class indices into the C outputs.
        k: how many guesses.

    Example:
    >>> topk_correct(np.array([[0.5, 0.5, 0.0], [np.nan, 1.0, 0.0]]), np.array([0, 1]), 1)
    array([False, False])
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (N, C) for N={labels.shape[0]} labels, got {scores.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got {labels.min()}..{labels.max()}")
    own = scores[np.arange(labels.shape[0]), labels][:, None]
    with np.errstate(invalid="ignore"):  # NaN comparisons: those rows are masked out below
        rivals = (scores >= own).sum(axis=1) - 1  # other classes at least as high as the label
    return finite_rows(scores) & (rivals < k)


def topk_error(scores, labels, k):
    """Fraction of samples whose label is not among the k highest scores.

    Example:
    >>> logits = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    >>> topk_error(logits, np.array([2, 0]), 1), topk_error(logits, np.array([2, 0]), 2)
    (1.0, 0.5)
    """
    correct = topk_correct(scores, labels, k)
    if correct.size == 0:
        raise ValueError("no samples")
    return float(1.0 - correct.mean())


class TopKCounter:
    """Streaming top-k error: add batches, keep only counts.

    Example:
    >>> c = TopKCounter(ks=(1, 2))
    >>> c.update(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 1]))
    >>> c.errors[1], c.errors[2], c.n, c.nonfinite
    (1, 0, 2, 0)
    """

    def __init__(self, ks=(1, 5)):
        self.ks = tuple(ks)
        self.errors = {k: 0 for k in self.ks}
        self.n = 0
        self.nonfinite = 0  # samples with a NaN or inf score (counted as wrong)

    def update(self, scores, labels):
        self.nonfinite += int((~finite_rows(scores)).sum())
        for k in self.ks:
            self.errors[k] += int((~topk_correct(scores, labels, min(k, np.shape(scores)[1]))).sum())
        self.n += int(np.asarray(labels).reshape(-1).shape[0])

    def error(self, k):
        if self.n == 0:
            raise ValueError("no samples counted")
        return self.errors[k] / self.n


def wilson_interval(errors, n, z=1.96):
    """Wilson score interval for an error rate of `errors` out of `n`.

    Example:
    >>> [round(x, 4) for x in wilson_interval(0, 10)]
    [0.0, 0.2775]
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= errors <= n:
        raise ValueError(f"errors must lie in [0, {n}], got {errors}")
    p = errors / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
