"""Scoring models as ILSVRC did: top-1 and top-5 error, ten crops, ensembles, intervals.

* `metrics`: top-k error (ties and non-finite scores count as wrong), Wilson
  intervals, the softmax and the one softmax-or-logits rule.
* `crops`: the paper's ten test patches.
* `classifiers`: what a scorable model is, its classes, spec and wnids.
* `scoring`: `score` a dataset, `evaluate` a data source; `Score`.
* `contamination`: warnings for ImageNet-trained models on ImageNet train images.

Example:
>>> import numpy as np
>>> topk_error(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]), np.array([1, 2]), k=1)
0.5
"""

from .classifiers import check_classifier, model_classes, model_spec, model_wnids
from .contamination import contamination_warnings
from .crops import CROP_NAMES, crop_offsets, ten_crop
from .metrics import (
    TopKCounter,
    finite_rows,
    outputs_logits,
    softmax,
    to_probabilities,
    topk_correct,
    topk_error,
    wilson_interval,
)
from .scoring import (
    NONFINITE_LIMIT,
    Score,
    check_ensemble,
    check_nonfinite,
    evaluate,
    label_mapping,
    predict_probs,
    score,
)

__all__ = [
    "CROP_NAMES",
    "NONFINITE_LIMIT",
    "Score",
    "TopKCounter",
    "check_classifier",
    "check_ensemble",
    "check_nonfinite",
    "contamination_warnings",
    "crop_offsets",
    "evaluate",
    "finite_rows",
    "label_mapping",
    "model_classes",
    "model_spec",
    "model_wnids",
    "outputs_logits",
    "predict_probs",
    "score",
    "softmax",
    "ten_crop",
    "to_probabilities",
    "topk_correct",
    "topk_error",
    "wilson_interval",
]
