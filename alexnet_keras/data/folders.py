"""Image folders: `PATH/train/<class>/` and `PATH/val/<class>/` of JPEG or PNG files.

Class names are the sorted folder names. Files that cannot be used are skipped
and counted, never crash a run: undecodable files and files beyond the image
limits (found once by `decode_cache`), dangling symlinks, symlink loops and file
names that are not UTF-8. Validation files come in one fixed shuffled order.

A folder of class folders without `train/` and `val/` is split per class by
`auto_split` (seeded, stable across runs and processes); the split is a
`FolderSplit` that a run records as `split.json` (`read_split` reads it back, and
`eval_dataset` takes that file as its source to score the same validation files).
"""

import dataclasses
import decimal
import errno
import hashlib
import json
import os
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from ..constants import IMAGE_EXTENSIONS, IMAGENET_VAL_PREFIX
from ..errors import UserError
from ..preprocessing import get_spec
from .decode_cache import unusable_cached
from .info import SKIP_DANGLING, SKIP_LIMITS, SKIP_LOOP, SKIP_NON_UTF8, SKIP_UNREADABLE, make_info
from .limits import LIMITS_TEXT, decode_checked
from .transforms import AUTOTUNE, pipeline

# Validation files are put in one fixed pseudo-random order (the same in every run,
# whatever --seed), so that the first --validation-steps batches mix the classes.
VAL_ORDER_SEED = 2012


# --- listing -------------------------------------------------------------------
def _display(path):
    """A path that prints whatever its bytes: non-UTF-8 bytes show as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name):
    try:
        name.encode("utf-8")  # os.scandir keeps undecodable bytes as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _entry_kind(entry):
    """ "dir", "file", None (something else: ignored) or a SKIP_* reason; never raises."""
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
    except OSError as e:  # is_dir()/is_file() follow symlinks: a loop raises ELOOP
        return SKIP_LOOP if e.errno == errno.ELOOP else SKIP_UNREADABLE
    return SKIP_DANGLING if entry.is_symlink() else None


def _scandir(path):
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError as e:
        raise UserError(f"cannot read folder {_display(path)}: {e.strerror}") from None


def _class_dirs(root, skipped=None):
    """Sorted class folder names in `root`; broken entries go to `skipped` (path -> (reason, detail))."""
    classes = []
    for entry in _scandir(root):
        if entry.name.startswith("."):
            continue
        kind = _entry_kind(entry)
        if kind == "dir":
            if not _is_utf8(entry.name):
                raise UserError(
                    f"class folder name is not valid UTF-8: {_display(entry.path)}; rename it (class names are text)"
                )
            classes.append(entry.name)
        elif kind not in (None, "file") and skipped is not None:
            skipped[entry.path] = (kind, "")
    return sorted(classes)


def _list_images(root, classes, name_filter=None, skipped=None):
    """(paths, labels) of the images in `root/<class>/`, labels by `classes` order.

    Image-named entries that cannot be used (dangling symlinks, symlink loops,
    non-UTF-8 names) go to `skipped` as path -> (reason, detail).
    """
    skipped = {} if skipped is None else skipped
    paths, labels = [], []
    for label, cls in enumerate(classes):
        names = []
        for entry in _scandir(os.path.join(root, cls)):
            if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            if name_filter is not None and not name_filter(entry.name):
                continue
            kind = _entry_kind(entry)
            if kind == "file":
                if _is_utf8(entry.name):
                    names.append(entry.name)
                else:
                    skipped[entry.path] = (SKIP_NON_UTF8, "")
            elif kind not in (None, "dir"):
                skipped[entry.path] = (kind, "")
        names.sort()
        paths += [os.path.join(root, cls, n) for n in names]
        labels += [label] * len(names)
    return paths, labels


def _check_folder(path):
    if not os.path.isdir(path):
        raise UserError(f"data folder not found: {path}")


def _folder_classes(root, skipped=None):
    classes = _class_dirs(root, skipped)
    if not classes:
        raise UserError(f"no class folders in {root} (expected {root}/<class>/*.jpg)")
    return classes


# --- what was skipped or is missing ----------------------------------------------
def _warn_skipped(skipped, where):
    """One warning line: how many files were skipped under `where`, by reason, with examples."""
    by_reason = {}
    for path, (reason, detail) in sorted(skipped.items()):
        by_reason.setdefault(reason, []).append(_display(path) + (f" {detail}" if detail else ""))
    parts = []
    for reason, items in by_reason.items():
        limits = f", {LIMITS_TEXT}" if reason == SKIP_LIMITS else ""
        shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
        parts.append(f"{len(items)} {reason}{limits} ({shown})")
    warnings.warn(f"skipped {len(skipped)} image file(s) under {_display(where)}: " + "; ".join(parts), stacklevel=3)


def _drop_unusable(splits, where, skipped):
    """Removes unusable files from each (paths, labels), adding them to `skipped`; warns once."""
    skipped.update(unusable_cached([p for paths, _ in splits for p in paths]))
    if skipped:
        _warn_skipped(skipped, where)
    kept = []
    for paths, labels in splits:
        pairs = [(p, y) for p, y in zip(paths, labels, strict=True) if p not in skipped]
        kept.append(([p for p, _ in pairs], [y for _, y in pairs]))
    return kept


def _empty_classes(classes, labels, split, where):
    """The classes with no images in a split, with a warning if there are any."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        shown = ", ".join(_display(c) for c in empty[:5]) + (", ..." if len(empty) > 5 else "")
        consequence = "their accuracy cannot be measured" if split == "val" else "the model cannot learn them"
        warnings.warn(
            f"{len(empty)} of {len(classes)} classes have no {split} images under {_display(where)} "
            f"({shown}): {consequence}",
            stacklevel=3,
        )
    return empty


# --- datasets ------------------------------------------------------------------
def _read_and_decode(path):
    return decode_checked(tf.io.read_file(path))


def _files_dataset(paths, labels, spec, **kwargs):
    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32)))
    return pipeline(ds, _read_and_decode, spec, shuffle_buffer=len(paths), **kwargs)


def _fixed_shuffle(paths, labels):
    """`paths` and `labels` in the one pseudo-random order of `VAL_ORDER_SEED` (the same every run)."""
    order = np.random.default_rng(VAL_ORDER_SEED).permutation(len(paths))
    return [paths[i] for i in order], [labels[i] for i in order]


def _folder_info(path, classes, train_examples, val_examples, spec, batch_size, skipped, empty):
    reasons = {p: reason for p, (reason, _) in skipped.items()}
    return make_info(str(path), "folder", classes, train_examples, val_examples, spec, batch_size, reasons, empty)


def load_folder(path, spec, *, batch_size, seed, validation):
    """`data.load` for a folder `PATH` with `train/<class>/` (and `val/<class>/`)."""
    _check_folder(path)
    layout = "expected PATH/train/<class>/ and PATH/val/<class>/"
    train_root, val_root = os.path.join(path, "train"), os.path.join(path, "val")
    if not os.path.isdir(train_root):
        raise UserError(f"{path} has no train/ folder ({layout})")
    if validation and not os.path.isdir(val_root):
        raise UserError(f"{path} has no val/ folder ({layout}; or pass validation=False)")
    skipped = {}
    classes = _folder_classes(train_root, skipped)
    if len(classes) < 2:
        raise UserError(f"{train_root} has only one class folder ({classes[0]}); need at least 2")
    if validation and _class_dirs(val_root, skipped) != classes:
        val_classes = set(_class_dirs(val_root))
        only_train = sorted(set(classes) - val_classes)[:3]
        only_val = sorted(val_classes - set(classes))[:3]
        raise UserError(
            f"train/ and val/ class folders differ in {path}: only in train {only_train}, only in val {only_val}"
        )
    roots = [train_root, val_root] if validation else [train_root]
    splits = [_list_images(root, classes, skipped=skipped) for root in roots]
    for (paths, _), root in zip(splits, roots, strict=True):
        if not paths:
            raise UserError(f"no JPEG or PNG images in {root}/<class>/")
    splits = _drop_unusable(splits, path, skipped)
    return _train_and_val(path, classes, splits, spec, batch_size, seed, skipped)


def _train_and_val(path, classes, splits, spec, batch_size, seed, skipped):
    """`load_folder`'s datasets and info from `[(train paths, labels)]` or `[train, val]`."""
    validation = len(splits) == 2
    empty = {
        split: _empty_classes(classes, labels, split, path)
        for split, (_, labels) in zip(("train", "val"), splits, strict=False)  # no val split without validation
    }
    train_paths, train_labels = splits[0]
    if len(train_paths) < batch_size:
        raise UserError(f"{len(train_paths)} training images in {path}, fewer than one batch of {batch_size}")
    train_ds = _files_dataset(train_paths, train_labels, spec, train=True, batch_size=batch_size, seed=seed)
    val_ds, val_n = None, None
    if validation:
        val_paths, val_labels = _fixed_shuffle(*splits[1])
        val_ds = _files_dataset(val_paths, val_labels, spec, train=False, batch_size=batch_size)
        val_n = len(val_paths)
    info = _folder_info(path, classes, len(train_paths), val_n, spec, batch_size, skipped, empty)
    return train_ds, val_ds, info


def folder_train_images(path):
    """The decoded images of `path/train/<class>/` in listing order, skipping what `load_folder` skips."""
    _check_folder(path)
    train_root = os.path.join(path, "train")
    if not os.path.isdir(train_root):
        raise UserError(f"{path} has no train/ folder (expected PATH/train/<class>/)")
    skipped = {}
    classes = _folder_classes(train_root, skipped)
    paths, labels = _list_images(train_root, classes, skipped=skipped)
    if not paths:
        raise UserError(f"no JPEG or PNG images in {train_root}/<class>/")
    [(paths, _)] = _drop_unusable([(paths, labels)], path, skipped)
    return tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).map(_read_and_decode, AUTOTUNE)


def eval_folder(where, spec, *, batch_size, split, crop, only_imagenet_val):
    """`data.eval_dataset` for a folder: `where/<split>/<class>/`, or `where/<class>/` itself.

    `where` may also be a run's `split.json`: its recorded `split` ("val" or "train") files are scored.
    """
    if os.path.isfile(where) and str(where).endswith(".json"):
        return _eval_recorded(where, spec, batch_size=batch_size, split=split, crop=crop, only=only_imagenet_val)
    _check_folder(where)
    root = os.path.join(where, split)
    if not os.path.isdir(root):
        if any(os.path.isdir(os.path.join(where, s)) for s in ("train", "val")):
            raise UserError(f"{where} has no {split}/ folder")
        root = where  # a class-per-folder directory itself
    skipped = {}
    classes = _folder_classes(root, skipped)
    name_filter = (lambda n: n.startswith(IMAGENET_VAL_PREFIX)) if only_imagenet_val else None
    paths, labels = _list_images(root, classes, name_filter, skipped)
    if not paths:
        which = f"{IMAGENET_VAL_PREFIX}* images" if only_imagenet_val else "JPEG or PNG images"
        raise UserError(f"no {which} in {root}/<class>/")
    [(paths, labels)] = _drop_unusable([(paths, labels)], root, skipped)
    empty = {split: _empty_classes(classes, labels, split, root)}
    ds = _files_dataset(paths, labels, spec, train=False, batch_size=batch_size, crop=crop)
    return ds, _folder_info(root, classes, None, len(paths), spec, batch_size, skipped, empty)


# --- a folder of class folders only: the recorded, deterministic split --------------------
SPLIT_SCHEMA = "alexnet-keras split 1"
SPLIT_RULE = (
    "per class, sorted file names permuted by numpy default_rng([seed, first 8 bytes of sha256(class name)]); "
    "the first round_half_up(fraction x images), at most images - 1, are val"
)


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    """Which files of `folder/<class>/` train and which validate; paths are `<class>/<file>`."""

    folder: str
    fraction: float
    seed: int
    classes: tuple
    train: tuple
    val: tuple
    skipped: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # path -> (reason, detail)

    def record(self):
        """The JSON object a run saves as `split.json`."""
        return {
            "schema": SPLIT_SCHEMA,
            "folder": self.folder,
            "fraction": self.fraction,
            "seed": self.seed,
            "rule": SPLIT_RULE,
            "classes": list(self.classes),
            "val_count": len(self.val),
            "train_count": len(self.train),
            "files_sha256": hashlib.sha256("\n".join([*self.train, "", *self.val]).encode()).hexdigest(),
            "val": list(self.val),
            "train": list(self.train),
        }

    def labelled(self, which):
        """(absolute paths, labels) of the `which` ("train" or "val") files."""
        index = {c: i for i, c in enumerate(self.classes)}
        files = self.train if which == "train" else self.val
        return [os.path.join(self.folder, f) for f in files], [index[f.split("/", 1)[0]] for f in files]


def val_count(images, fraction):
    """Validation images for a class of `images`: round half up of `fraction x images`, keeping one to train.

    Exact decimal arithmetic, so 0.1 x 25 = 2.5 rounds to 3 (binary floats give 2.5000000000000004 but
    0.3 x 5 = 1.4999999999999998).

    >>> [val_count(n, 0.1) for n in (1, 4, 5, 9, 10, 25)], val_count(2, 0.9)
    ([0, 0, 1, 1, 1, 3], 1)
    """
    exact = decimal.Decimal(repr(float(fraction))) * images
    return max(0, min(int(exact + decimal.Decimal("0.5")), images - 1))


def _class_key(name):
    """A number from a class name that is the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def has_split_folders(path):
    """Whether `path` has a `train/` or `val/` folder (then it is not split automatically)."""
    return any(os.path.isdir(os.path.join(path, s)) for s in ("train", "val"))


def auto_split(path, fraction, seed):
    """The split of a folder of class folders (no `train/`, `val/`): stratified, seeded, deterministic.

    Each class's usable files (sorted names) are permuted by a generator seeded with
    `seed` and the class name, and the first `val_count(n, fraction)` go to val, so a
    class's split depends on nothing but its own files, the fraction and the seed.
    Classes left without val images are warned about in one line.
    """
    _check_folder(path)
    if has_split_folders(path):
        raise UserError(f"{path} has train/ or val/ folders: it is split already (leave out --val-split)")
    skipped = {}
    classes = _folder_classes(path, skipped)
    if len(classes) < 2:
        raise UserError(f"{path} has only one class folder ({classes[0]}); need at least 2")
    paths, labels = _list_images(path, classes, skipped=skipped)
    if not paths:
        raise UserError(f"no JPEG or PNG images in {path}/<class>/")
    [(paths, labels)] = _drop_unusable([(paths, labels)], path, skipped)
    train, val = [], []
    for label, cls in enumerate(classes):
        names = [os.path.basename(p) for p, y in zip(paths, labels, strict=True) if y == label]
        order = np.random.default_rng([seed, _class_key(cls)]).permutation(len(names))
        chosen = set(order[: val_count(len(names), fraction)].tolist())
        for i, name in enumerate(names):
            (val if i in chosen else train).append(f"{cls}/{name}")
    folder = str(pathlib.Path(path).resolve())
    return FolderSplit(folder, float(fraction), int(seed), tuple(classes), tuple(train), tuple(val), skipped)


def read_split(path):
    """A `FolderSplit` from a run's `split.json`; files gone since are dropped with a warning."""
    path = pathlib.Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read the recorded split {path}: {getattr(e, 'strerror', None) or e}") from None
    keys = ("folder", "fraction", "seed", "classes", "train", "val")
    if not isinstance(record, dict) or record.get("schema") != SPLIT_SCHEMA or any(k not in record for k in keys):
        raise UserError(f"{path} is not a split recorded by alexnet-keras ({SPLIT_SCHEMA}); start a new run")
    folder = record["folder"]
    _check_folder(folder)
    classes = tuple(record["classes"])
    kept, gone = {}, []
    for which in ("train", "val"):
        files = [f for f in record[which] if f.split("/", 1)[0] in classes]
        kept[which] = tuple(f for f in files if os.path.isfile(os.path.join(folder, f)))
        gone += [f for f in files if f not in kept[which]]
    if gone:
        warnings.warn(
            f"{len(gone)} file(s) of the split recorded in {path} are gone from {folder} (e.g. {gone[0]}); "
            "the rest of the recorded split is used",
            stacklevel=2,
        )
    return FolderSplit(folder, float(record["fraction"]), int(record["seed"]), classes, kept["train"], kept["val"])


def load_split(split, spec, *, batch_size, seed, validation=True):
    """`load_folder` for a `FolderSplit`: the same datasets and info, from the split's lists."""
    spec = get_spec(spec)
    splits = [split.labelled("train"), split.labelled("val")] if validation else [split.labelled("train")]
    if not splits[0][0]:
        raise UserError(f"the split of {split.folder} leaves no training images")
    if validation and not splits[1][0]:
        raise UserError(
            f"--val-split {split.fraction:g} leaves no validation images in {split.folder} (each class gives "
            "round(fraction x its images), keeping one to train): give a larger --val-split"
        )
    return _train_and_val(split.folder, list(split.classes), splits, spec, batch_size, seed, dict(split.skipped))


def split_train_images(split):
    """The decoded training images of a `FolderSplit`, for `compute_mean_image`."""
    paths, _ = split.labelled("train")
    return tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).map(_read_and_decode, AUTOTUNE)


def _eval_recorded(where, spec, *, batch_size, split, crop, only):
    """`eval_folder` for a run's `split.json`: the files it recorded for `split` (`only`: ILSVRC2012_val_* ones)."""
    if split not in ("train", "val"):
        raise UserError(f"a recorded split has train and val files, not {split!r}")
    recorded = read_split(where)
    paths, labels = recorded.labelled(split)
    if only:
        kept = [
            (p, y) for p, y in zip(paths, labels, strict=True) if os.path.basename(p).startswith(IMAGENET_VAL_PREFIX)
        ]
        paths, labels = [p for p, _ in kept], [y for _, y in kept]
    if not paths:
        which = f"{IMAGENET_VAL_PREFIX}* " if only else ""
        raise UserError(f"the split recorded in {where} has no {which}{split} images")
    classes = list(recorded.classes)
    empty = {split: _empty_classes(classes, labels, split, recorded.folder)}
    ds = _files_dataset(paths, labels, spec, train=False, batch_size=batch_size, crop=crop)
    return ds, _folder_info(recorded.folder, classes, None, len(paths), spec, batch_size, {}, empty)
