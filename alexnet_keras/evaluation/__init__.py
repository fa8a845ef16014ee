"""Scoring models as ILSVRC did: top-1 and top-5 error, ten crops, ensembles, intervals."""

from .metrics import TopKCounter, finite_rows, outputs_logits, softmax, to_probabilities, topk_correct, topk_error, wilson_interval

__all__ = [
    "TopKCounter",
    "finite_rows",
    "outputs_logits",
    "softmax",
    "to_probabilities",
    "topk_correct",
    "topk_error",
    "wilson_interval",
]
