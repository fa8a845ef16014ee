"""Scoring models on a dataset: ensembles, label mapping, non-finite outputs, comparability.

* Ensembles average the probabilities over models (and over the ten crops);
  models that output logits get a softmax first (`metrics.to_probabilities`).
* `score`/`evaluate` stream over the data, keeping only counts, never all predictions.

Labels are mapped through WordNet ids: a 1000-class model scored on imagenette
(10 ImageNet classes) still chooses among its 1000 outputs. A result is
"comparable" with the ILSVRC2012 table only on the full ImageNet-1k validation
set (1000 classes, 50,000 images).

Non-finite outputs: `score` counts the images whose scores hold a NaN or an inf
(`Score.nonfinite`), counts them as wrong, and refuses (`UserError`) a model whose
outputs are non-finite for more than `NONFINITE_LIMIT` of the images: such a model
is broken, and no error rate of it is placed on a leaderboard.
"""

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..constants import IMAGENET_CLASSES, IMAGENET_VAL_IMAGES
from ..errors import UserError
from ..imagenet import is_wnid
from .classifiers import check_classifier, model_classes, model_spec, model_wnids
from .contamination import contamination_warnings
from .crops import ten_crop as _ten_crops
from .metrics import TopKCounter, to_probabilities, wilson_interval

# More than this fraction of non-finite predictions and a model is refused, not scored.
NONFINITE_LIMIT = 0.5


def check_ensemble(models):
    """The preprocessing spec all `models` share; `UserError` if they differ in it or in classes."""
    if not models:
        raise UserError("no models given")
    for m in models:
        check_classifier(m)
    spec, first = model_spec(models[0]), models[0]
    keys = ("input_size", "resize", "scale", "mean", "std")
    for m in models[1:]:
        other = model_spec(m)
        if any(other.get(k) != spec.get(k) for k in keys):
            raise UserError(
                f"ensemble members need one preprocessing: {first.name} uses {spec.get('name')} at "
                f"{spec['input_size']}, {m.name} uses {other.get('name')} at {other['input_size']}"
            )
        if model_classes(m) != model_classes(first) or model_wnids(m) != model_wnids(first):
            raise UserError(f"ensemble members need the same classes: {first.name} and {m.name} differ")
    return spec


def label_mapping(model, info):
    """Maps data labels (indices into `info.class_wnids`) to the model's output indices.

    Through wnids when both sides have them; by index when the class counts are
    equal and a side has no wnids; otherwise `UserError`.
    """
    outputs, wnids = model_classes(model), model_wnids(model)
    data_wnids = list(info.class_wnids) if getattr(info, "class_wnids", None) else None
    if wnids is not None and data_wnids is not None and all(is_wnid(w) for w in data_wnids):
        index = {w: i for i, w in enumerate(wnids)}
        missing = [w for w in data_wnids if w not in index]
        if missing:
            raise UserError(
                f"{len(missing)} data class(es) are not among the model's {outputs} classes "
                f"(e.g. {missing[0]}); the model cannot be scored on this data"
            )
        return np.array([index[w] for w in data_wnids], dtype=np.int64)
    if outputs == info.classes:
        return np.arange(outputs, dtype=np.int64)
    raise UserError(
        f"the model has {outputs} classes and the data {info.classes}, and there are no wnids to map them "
        "(save the model with class_wnids)"
    )


def predict_probs(models, images, ten_crop_size=None):
    """Average probabilities over models (and over the ten crops when `ten_crop_size` is set).

    Args:
        models: Keras models with the same outputs.
        images: `(B, H, W, 3)` preprocessed; the 256x256 squares with ten crops.
        ten_crop_size: the patch size, or None for one forward pass per image.

    Returns:
        `(B, classes)` probabilities (float64).
    """
    images = np.asarray(images, dtype=np.float32)
    views = [images] if ten_crop_size is None else list(np.moveaxis(_ten_crops(images, ten_crop_size), 1, 0))
    total = None
    for model in models:
        for view in views:
            probs = to_probabilities(model.predict_on_batch(np.ascontiguousarray(view)), model)
            total = probs if total is None else total + probs
    return total / (len(models) * len(views))


@dataclass
class Score:
    """Top-1/top-5 error with Wilson 95% intervals and what they may be compared with."""

    top1_error: float
    top5_error: float
    top1_ci95: tuple
    top5_ci95: tuple
    images: int
    classes: int
    model_classes: int
    comparable: bool
    reason: str
    label: str
    ten_crop: bool = False
    models: int = 1
    nonfinite: int = 0
    warnings: list = field(default_factory=list)

    @property
    def ci95(self):
        return {"top1": list(self.top1_ci95), "top5": list(self.top5_ci95)}

    def as_dict(self):
        d = asdict(self)
        d["top1_ci95"], d["top5_ci95"] = list(self.top1_ci95), list(self.top5_ci95)
        d["ci95"] = self.ci95
        return d

    def summary(self):
        """Two or three lines of text."""
        crops = "ten crops" if self.ten_crop else "centre crop"
        models = f"{self.models} models, " if self.models > 1 else ""
        lines = [
            f"{self.label}, {models}{crops}:",
            f"  top-1 error {self.top1_error:.2%} (95% CI {self.top1_ci95[0]:.2%}-{self.top1_ci95[1]:.2%})",
            f"  top-5 error {self.top5_error:.2%} (95% CI {self.top5_ci95[0]:.2%}-{self.top5_ci95[1]:.2%})",
            f"  non-finite outputs: {self.nonfinite:,} of {self.images:,} images"
            + (" (counted as wrong)" if self.nonfinite else ""),
            f"  {'comparable' if self.comparable else 'not comparable'} with ILSVRC2012: {self.reason}",
        ]
        return "\n".join(lines + [f"  warning: {w}" for w in self.warnings])


def _comparability(info, images, outputs):
    kind = getattr(info, "kind", "")
    reasons = []
    if kind == "synthetic":
        reasons.append("synthetic data, not ImageNet")
    if info.classes != IMAGENET_CLASSES:
        reasons.append(f"{info.classes} classes, not ImageNet-1k's {IMAGENET_CLASSES}")
    if images != IMAGENET_VAL_IMAGES:
        reasons.append(f"{images:,} images, not the {IMAGENET_VAL_IMAGES:,} of the ILSVRC2012 validation set")
    if outputs != IMAGENET_CLASSES:
        reasons.append(f"a {outputs}-way classifier, not {IMAGENET_CLASSES}-way")
    if kind == "tfds" and "imagenet2012" not in str(getattr(info, "name", "")):
        reasons.append(f"TFDS {info.name} is not imagenet2012")
    if reasons:
        return False, "; ".join(reasons)
    return True, (
        "the full ImageNet-1k validation set (the table is on the test set; [P] found the two within 0.1 points)"
    )


def _label(info, images, comparable):
    if comparable:
        return f"ImageNet-1k validation ({images:,} images, {info.classes} classes)"
    wnids = getattr(info, "class_wnids", None) or []
    if getattr(info, "kind", "") == "synthetic":
        what = "synthetic data"
    elif wnids and all(is_wnid(w) for w in wnids):
        what = "ImageNet subset"
    else:
        what = str(getattr(info, "name", "data"))
    return f"{what} ({images:,} images, {info.classes} classes)"


def check_nonfinite(nonfinite, images, what="the model"):
    """`UserError` when more than `NONFINITE_LIMIT` of `images` had non-finite outputs."""
    if images and nonfinite > NONFINITE_LIMIT * images:
        raise UserError(
            f"{what} gave non-finite outputs (NaN or inf) for {nonfinite:,} of {images:,} images, so it is not "
            "scored or placed; its weights are probably NaN or inf (a diverged run): use an earlier checkpoint"
        )


def score(models, ds, info, *, ten_crop=False, max_images=None, names=None, progress=None):
    """Streams `ds` through the models and returns a `Score`.

    Args:
        models: a Keras model or a list (an ensemble: probabilities averaged).
        ds: iterable of `(images, labels)` batches; images preprocessed with the
            models' spec (centre crops, or the 256x256 squares when `ten_crop`),
            labels indices into `info.class_wnids`.
        info: the data's description (`data.DataInfo`: name, kind, classes, class_wnids).
        ten_crop: average over the paper's ten patches.
        max_images: stop after this many images (for quick looks; never comparable).
        names: how to name the models in messages (e.g. their paths); default their `.name`.
        progress: told the images scored after each batch: an object with `start(total)`,
            `update(done)` and `close()`, such as `training.progress.Bar`; None for silence.

    Images whose outputs hold a NaN or inf count as wrong and are counted in
    `Score.nonfinite`; more than `NONFINITE_LIMIT` of them raises `UserError`.

    Example:
    >>> s = score(model, ds, info)  # doctest: +SKIP
    >>> s.top5_error, s.top5_ci95  # doctest: +SKIP
    """
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    spec = check_ensemble(models)
    size = int(spec["input_size"])
    mapping = label_mapping(models[0], info)
    counter = TopKCounter(ks=(1, 5))
    if progress is not None:
        total = getattr(info, "val_examples", None)
        progress.start(min(total, max_images) if total and max_images else total or max_images)
    for images, labels in ds:
        images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
        if max_images is not None and counter.n + len(labels) > max_images:
            keep = max_images - counter.n
            images, labels = images[:keep], labels[:keep]
        if not len(labels):
            break
        expected = (size, size) if not ten_crop else None
        if expected and tuple(images.shape[1:3]) != expected:
            raise UserError(
                f"images are {images.shape[1]}x{images.shape[2]} but the model takes {size}x{size} "
                "(prepare the data with the model's preprocessing spec)"
            )
        probs = predict_probs(models, images, size if ten_crop else None)
        counter.update(probs, mapping[labels])
        if progress is not None:
            progress.update(counter.n)
    if progress is not None:
        progress.close()
    if counter.n == 0:
        raise UserError(f"no images to score in {getattr(info, 'name', 'the data')}")
    names = [str(n) for n in names] if names else [str(getattr(m, "name", "model")) for m in models]
    check_nonfinite(counter.nonfinite, counter.n, ("the ensemble of " if len(names) > 1 else "") + ", ".join(names))
    outputs = model_classes(models[0])
    comparable, reason = _comparability(info, counter.n, outputs)
    return Score(
        top1_error=counter.error(1),
        top5_error=counter.error(5),
        top1_ci95=wilson_interval(counter.errors[1], counter.n),
        top5_ci95=wilson_interval(counter.errors[5], counter.n),
        images=counter.n,
        classes=int(info.classes),
        model_classes=outputs,
        comparable=comparable,
        reason=reason,
        label=_label(info, counter.n, comparable),
        ten_crop=bool(ten_crop),
        models=len(models),
        nonfinite=counter.nonfinite,
        warnings=[
            f"{counter.nonfinite:,} of {counter.n:,} images had non-finite outputs (NaN or inf), counted as wrong"
        ]
        if counter.nonfinite
        else [],
    )


def evaluate(
    models,
    source,
    *,
    ten_crop=False,
    only_imagenet_val=False,
    batch_size=32,
    max_images=None,
    names=None,
    progress=None,
):
    """Loads the data with the models' preprocessing and scores them.

    Args:
        models: paths to `.keras` files, Keras models, or a mix.
        source: anything `alexnet_keras.data.eval_dataset` takes (a folder,
            `"synthetic"`, a TFDS name).
        ten_crop: the paper's ten-patch testing.
        only_imagenet_val: keep only `ILSVRC2012_val_*` files.
        batch_size: images per forward pass.
        max_images: stop early (quick looks).
        names: how messages name the models; default their paths (or `.name`).
        progress: see `score` (the CLI passes a `training.progress.Bar`).

    Returns:
        a `Score` (with `warnings`); `UserError` for a model whose outputs are
        mostly non-finite (see `score`).
    """
    from ..data import eval_dataset  # TensorFlow: only when data is read
    from ..models.presets import load_models

    models = [m for m in (models if isinstance(models, (list, tuple)) else [models])]
    names = names or [
        os.fspath(m) if isinstance(m, (str, os.PathLike)) else getattr(m, "name", "model") for m in models
    ]
    paths = [m for m in models if isinstance(m, (str, os.PathLike))]
    loaded = iter(load_models(paths))
    models = [next(loaded) if isinstance(m, (str, os.PathLike)) else m for m in models]
    spec = check_ensemble(models)
    extra = {"synthetic_classes": model_classes(models[0])} if os.fspath(source) == "synthetic" else {}
    ds, info = eval_dataset(
        source, batch_size=batch_size, spec=spec, crop=not ten_crop, only_imagenet_val=only_imagenet_val, **extra
    )
    warnings = contamination_warnings(models, source, only_imagenet_val)
    result = score(models, ds, info, ten_crop=ten_crop, max_images=max_images, names=names, progress=progress)
    result.warnings = warnings + result.warnings
    return result
