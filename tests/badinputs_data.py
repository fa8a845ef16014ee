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


# --- fine-tuning (--init-from, --freeze) and the automatic split (--val-split) -------------
def _plain_folder(tmp):
    """tmp/plain/<class>/ with 3 small JPEGs per class: no train/ and val/."""
    root = tmp / "plain"
    for c, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.jpg").write_bytes(encode(noise((24, 32, 3), 10 * c + i), "JPEG"))
    return {"data": root, "tmp": tmp}


def _unsafe_keras(tmp):
    """A .keras model holding a Lambda layer (code): safe mode must refuse it."""
    import keras

    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(tmp / "unsafe.keras")
    return _plain_folder(tmp)


def _finetune(id, extra, fragment, setup=_plain_folder, **kwargs):
    argv = ["train", "--data", "{data}", "--run-dir", "{tmp}/run", "--batch-size", "2", *extra]
    return case(id, argv, fragment, setup=setup, **kwargs)


CASES += [
    _finetune("finetune-val-split-above-1", ["--val-split", "1.5"], "bad value for val_split: 1.5"),
    _finetune("finetune-init-from-missing", ["--init-from", "{tmp}/missing.pth"], "missing.pth: file not found"),
    # slow: each is also checked in-process (test_finetune, test_split); these check the CLI's one line.
    _finetune("finetune-val-split-zero", ["--set", "val_split=0"], "bad value for val_split: 0.0", slow=True),
    _finetune(
        "finetune-val-split-on-split-folder",
        ["--val-split", "0.2"],
        "has train/ and val/ already",
        _folder,
        slow=True,
    ),
    _finetune(
        "finetune-freeze-unknown", ["--init-from", "{tmp}/x.pth", "--freeze", "top"], "bad --freeze 'top'", slow=True
    ),
    _finetune(
        "finetune-freeze-unknown-layer",
        ["--init-from", "{tmp}/x.pth", "--freeze", "up-to:fc8"],
        "unknown layer 'fc8'",
        slow=True,
    ),
    _finetune(
        "finetune-freeze-without-init-from",
        ["--freeze", "features"],
        "--freeze features needs --init-from",
        slow=True,
    ),
    _finetune(
        "finetune-init-from-unsafe-keras",
        ["--init-from", "{tmp}/unsafe.keras"],
        "cannot load",
        _unsafe_keras,
        slow=True,
    ),
    # imagenet offline: nothing cached under KERAS_HOME (relative: the case's tmp dir), nothing on port 9.
    _finetune(
        "finetune-init-from-imagenet-offline",
        ["--init-from", "imagenet"],
        "cannot download http://127.0.0.1:9/",
        env={"KERAS_HOME": "keras-home", "ALEXNET_OWT_URL": "http://127.0.0.1:9/alexnet-owt-7be5be79.pth"},
    ),
]
