"""Bad-input cases: data. See badinput.py for the fields.

Folder cases train one step of the owt net on a tiny folder (slow); the hazards must
be skipped and counted (exit 0) or refused in one line. TFDS cases run offline: a
dataset that needs a download is refused in seconds, never downloaded.
"""

import os

from badinput import case
from test_image_limits import encode, jpeg_bomb, noise, png_bomb, strip

TRAIN_ONE_STEP = (
    "--run-dir",
    "{tmp}/run",
    "--variant",
    "owt",
    "--batch-size",
    "2",
    "--epochs",
    "1",
    "--steps-per-epoch",
    "1",
    "--validation-steps",
    "1",
)


def _folder(tmp, classes=("a", "b")):
    """tmp/data/{train,val}/<class>/ with 2 and 1 small JPEGs; returns the placeholders."""
    root = tmp / "data"
    for c, cls in enumerate(classes):
        for split, n in (("train", 2), ("val", 1)):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (root / split / cls / f"{i}.jpg").write_bytes(encode(noise((24, 32, 3), 10 * c + i), "JPEG"))
    return {"data": root, "tmp": tmp}


def _with(files):
    """A setup: the tiny folder plus `files` (path -> bytes, a function making them, or ("link", target))."""

    def setup(tmp):
        values = _folder(tmp)
        for rel, contents in files.items():
            path = values["data"] / rel
            if isinstance(contents, tuple):
                path.symlink_to(contents[1])
            else:
                path.write_bytes(contents() if callable(contents) else contents)
        return values

    return setup


def _non_utf8_file(tmp):
    values = _folder(tmp)
    with open(os.fsencode(str(values["data"] / "train" / "a")) + b"/caf\xe9.jpg", "wb") as f:
        f.write(encode(noise((20, 20, 3)), "JPEG"))
    return values


def _non_utf8_class(tmp):
    values = _folder(tmp, ("a", "b"))
    for split in ("train", "val"):
        os.rename(values["data"] / split / "b", os.fsencode(str(values["data"] / split)) + b"/caf\xe9")
    return values


def _no_val_for_one_class(tmp):
    values = _folder(tmp, ("a", "b", "c"))
    (values["data"] / "val" / "c" / "0.jpg").unlink()
    return values


def _tmp(tmp):
    return {"tmp": tmp}


def _manual_dir(tmp):
    (tmp / "manual").mkdir()
    return {"tmp": tmp}


def _train(fragment, setup, id, **kwargs):
    return case(id, ["train", "--data", "{data}", *TRAIN_ONE_STEP], fragment, setup=setup, **kwargs)


def _tfds(id, name, fragment, setup=_tmp, extra=()):
    argv = ["train", "--data", f"tfds:{name}", "--tfds-data-dir", "{tmp}/tfds", *extra, "--run-dir", "{tmp}/run"]
    return case(id, argv, fragment, setup=setup)


CASES = [
    # TFDS, offline: each answers in seconds (before: "Dl Completed 0/1" for 3.5 minutes, or a traceback).
    # (the old code also ended in a line naming 'mnist', after 3.5 minutes: this fragment is the new one)
    _tfds("data-tfds-needs-download", "mnist", "and must be downloaded: download it first (`tfds build mnist"),
    _tfds(
        "data-tfds-manual-dir-lacks-files",
        "mnist",
        "lacks t10k-images-idx3-ubyte.gz",
        _manual_dir,
        ("--tfds-manual-dir", "{tmp}/manual"),
    ),
    _tfds("data-tfds-unknown-config", "imagenet2012_subset/bogus", "valid configs: 1pct, 10pct"),
    _tfds("data-tfds-config-on-configless", "mnist/bogus", "'mnist' has no configs: use tfds:mnist"),
    _tfds("data-tfds-unknown-version", "mnist:9.9.9", "only: 3.0.1"),
    # Folder hygiene: skipped and counted.
    _train(
        "2 symlink loop",
        _with({"train/a/loop.jpg": ("link", "loop.jpg"), "train/c": ("link", "c")}),
        "data-symlink-loops",
        expect="skip",
        slow=True,
    ),
    _train(
        "2 dangling symlink",
        _with({"train/a/gone.jpg": ("link", "missing.jpg"), "train/d": ("link", "nowhere")}),
        "data-dangling-symlinks",
        expect="skip",
        slow=True,
    ),
    _train("1 non-UTF-8 name", _non_utf8_file, "data-non-utf8-file-name", expect="skip", slow=True),
    _train("class folder name is not valid UTF-8", _non_utf8_class, "data-non-utf8-class-name"),
    _train("have no val images", _no_val_for_one_class, "data-class-without-val-images", expect="skip", slow=True),
    # Absurd images: skipped from their header, never decoded or resized (before: +1.5 GB, +1.7 GB).
    _train(
        "2 beyond the image limits",
        _with({"train/a/strip.png": strip(2000, 1), "val/b/strip.png": strip(1, 2000)}),
        "data-2000x1-strips",
        expect="skip",
        slow=True,
    ),
    _train(
        "2 beyond the image limits",
        _with({"train/a/bomb.png": lambda: png_bomb(20000, 20000), "train/b/bomb.jpg": jpeg_bomb(13000, 13000)}),
        "data-decompression-bombs",
        expect="skip",
        slow=True,
    ),
]
