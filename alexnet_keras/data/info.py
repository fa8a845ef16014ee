"""`DataInfo`: what a data source holds, assembled in one place for every source."""

import dataclasses

from ..imagenet import wnids_or_none

# Why a data-folder entry was skipped (the keys of `DataInfo.skip_reasons`).
SKIP_UNDECODABLE = "undecodable"
SKIP_NOT_JPEG_PNG = "not JPEG or PNG inside"
SKIP_LIMITS = "beyond the image limits"
SKIP_NON_UTF8 = "non-UTF-8 name"
SKIP_DANGLING = "dangling symlink"
SKIP_LOOP = "symlink loop"
SKIP_UNREADABLE = "unreadable"


@dataclasses.dataclass
class DataInfo:
    """What `load` and `eval_dataset` found.

    `class_wnids` are the ImageNet synset ids when the class names are wnids
    (folders named n01440764..., tfds imagenet2012), else None.
    """

    name: str
    kind: str  # "synthetic" | "folder" | "tfds"
    classes: int
    class_names: list = dataclasses.field(repr=False)
    class_wnids: list | None = dataclasses.field(repr=False)
    train_examples: int | None
    val_examples: int | None
    input_size: int
    batch_size: int
    skipped: int = 0
    skipped_paths: list = dataclasses.field(default_factory=list, repr=False)
    skip_reasons: dict = dataclasses.field(default_factory=dict)  # reason (SKIP_*) -> files
    empty_classes: dict = dataclasses.field(default_factory=dict)  # split -> classes with no images

    @property
    def synthetic(self):
        return self.kind == "synthetic"

    @property
    def steps_per_epoch(self):
        """Full training batches in one pass (train_ds drops the remainder)."""
        return None if self.train_examples is None else self.train_examples // self.batch_size

    def describe(self):
        """One line for logs and the CLI."""
        parts = [f"{self.classes} classes"]
        if self.train_examples is not None:
            parts.append(f"{self.train_examples} train")
        if self.val_examples is not None:
            parts.append(f"{self.val_examples} val")
        parts.append(f"{self.input_size}x{self.input_size}")
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skip_reasons.items())
            parts.append(f"{self.skipped} files skipped ({reasons})" if reasons else f"{self.skipped} files skipped")
        for split, names in self.empty_classes.items():
            parts.append(f"{len(names)} classes without {split} images")
        what = {
            "synthetic": "synthetic data (generated, not real images)",
            "folder": f"image folder {self.name}",
            "tfds": f"TFDS {self.name}",
        }[self.kind]
        return f"{what}: " + ", ".join(parts)


def make_info(name, kind, class_names, train_examples, val_examples, spec, batch_size, skipped=None, empty=None):
    """The one place a `DataInfo` is assembled, whatever the source.

    `skipped` maps skipped paths to their reason; `empty` maps a split to its classes without images.

    Example:
    >>> info = make_info("toy", "folder", ["n01440764", "n01443537"], 8, 2, {"input_size": 227}, 4)
    >>> info.class_wnids, info.steps_per_epoch, info.describe()
    (['n01440764', 'n01443537'], 2, 'image folder toy: 2 classes, 8 train, 2 val, 227x227')
    """
    skipped = skipped or {}
    reasons = {}
    for reason in skipped.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    return DataInfo(
        name=name,
        kind=kind,
        classes=len(class_names),
        class_names=list(class_names),
        class_wnids=wnids_or_none(class_names),
        train_examples=train_examples,
        val_examples=val_examples,
        input_size=spec["input_size"],
        batch_size=batch_size,
        skipped=len(skipped),
        skipped_paths=sorted(skipped),
        skip_reasons=reasons,
        empty_classes={split: list(names) for split, names in (empty or {}).items() if names},
    )
