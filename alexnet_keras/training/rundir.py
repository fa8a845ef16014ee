"""The run directory: everything needed to inspect or resume a run, and the one way to write it.

A run directory holds:

* `config.json`: the resolved config, marked `"schema": "alexnet-keras/run/1"`,
  and a record of every resume and what it changed;
* `history.csv`: one row per finished epoch (epochs count from 1);
* `checkpoints/last.keras` (every epoch, with the optimizer state) and
  `checkpoints/best.keras` (best validation top-1 error), with
  `checkpoints/last.json` describing `last.keras`. An epoch that is the best so
  far makes best.keras a hard link to last.keras (one file, two names); once a
  later epoch replaces last.keras, best.keras is rewritten without the optimizer
  state, which only resuming needs (`model_without_optimizer`);
* `backup/epoch-NNNN.weights.h5` and `backup/epoch-NNNN.json`: the weights,
  optimizer and dropout-seed state after epoch N, and the schedule and best-score
  state; the two newest epochs are kept. `epoch-NNNN.json` is written last, so
  it marks epoch N as finished;
* `state.json`: a copy of the newest epoch's record, for people and tools;
* `tensorboard/` and `summary.json` (how the run ended, and why it stopped).

Guarantees: every file is written to a temporary name, flushed to disk and then
renamed, so a kill leaves either the old or the new file; nothing outside the run
directory is written, and a folder that is not a run of this package is never
written into. Only the chief process writes (`RunDir.chief`).

Plain Python: what goes into the files (weights, records) comes from
`training.callbacks`.
"""

import csv
import dataclasses
import errno
import io
import json
import os
import pathlib
import shutil
import tempfile
import time
import zipfile

from ..errors import UserError
from .config import resumed_config

RUN_SCHEMA = "alexnet-keras/run/1"  # marks config.json and the backup records as ours
BACKUP_KEEP = 2  # epochs kept in backup/: the newest and, if it is unreadable, the one before
TMP_TAG = ".tmp"  # inserted into the names of files being written; leftovers are removed on start


def _tmp_name(name):
    # "last.keras" -> "last.tmp.keras": Keras picks the format from the ending.
    stem, dot, rest = name.partition(".")
    return f"{stem}{TMP_TAG}{dot}{rest}" if dot else name + TMP_TAG


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fingerprint(path):
    """Size and modification time: a record notices weights replaced or cut short after it."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class RunDir:
    """The one way into a run directory.

    Every write goes to a temporary name, is flushed to disk and renamed over the
    real name. A write that fails removes its temporary file, keeps the old file,
    and raises a one-line `UserError`. When `chief` is False (a process other than
    the first in a multi-process run) every write is skipped and nothing is checked.
    """

    def __init__(self, path, chief=True):
        self.path = pathlib.Path(path)
        self.chief = chief

    def __truediv__(self, relative):
        return self.path / relative

    def config_record(self):
        """config.json if this is a run of ours, else None."""
        try:
            record = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError):
            return None
        if isinstance(record, dict) and record.get("schema") == RUN_SCHEMA and isinstance(record.get("config"), dict):
            return record
        return None

    def write_with(self, relative, write, everywhere=False):
        """Calls `write(tmp_path)`, then makes the result `relative` atomically.

        `everywhere`: `write` runs JAX steps that every process must take together (saving
        a model sharded over several processes); a process other than the chief then
        writes into a scratch folder of its own, removed at once, and not into the run.
        """
        if not self.chief:
            if everywhere:
                scratch = tempfile.mkdtemp(prefix="alexnet-keras-worker-")
                try:
                    write(pathlib.Path(scratch) / pathlib.PurePath(relative).name)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            return
        path = self.path / relative
        tmp = path.with_name(_tmp_name(path.name))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
        except BaseException as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            if isinstance(e, OSError) or _is_disk_error(e):
                raise UserError(
                    f"cannot write {path}: {error_text(e)}; its previous version is kept and no partial file is left"
                ) from None
            raise
        try:
            _fsync(path.parent)  # makes the rename itself durable; not every filesystem allows it
        except OSError:
            pass

    def write_text(self, relative, text):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(text)

        self.write_with(relative, write)

    def write_json(self, relative, obj):
        self.write_text(relative, json.dumps(obj, indent=2) + "\n")

    def remove(self, relative):
        if self.chief:
            try:
                (self.path / relative).unlink()
            except FileNotFoundError:
                pass

    def partial_files(self):
        """Temporary files a killed run left behind (only in the folders a run writes)."""
        found = []
        for folder in (self.path, self.path / "checkpoints", self.path / "backup"):
            if folder.is_dir():
                found += [
                    p for p in folder.iterdir() if p.is_file() and (TMP_TAG + "." in p.name or p.name.endswith(TMP_TAG))
                ]
        return sorted(found)


# --- checkpoints without duplicates ------------------------------------------------
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)  # filesystems without hard links
_KERAS_WEIGHTS = "model.weights.h5"  # the weights inside a .keras zip (keras.saving)
_OPTIMIZER_GROUP = "optimizer"  # its group for the optimizer state


def link_or_copy(src, dst):
    """Makes `dst` the same file as `src` (a hard link: no second copy), or a copy where links are not allowed."""
    try:
        os.unlink(dst)
    except FileNotFoundError:
        pass
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        shutil.copyfile(src, dst)


def has_optimizer_state(path):
    """True when the `.keras` file at `path` holds an optimizer state (False if unreadable)."""
    import h5py  # with Keras; imported here so that this module stays plain Python

    try:
        with zipfile.ZipFile(path) as archive, archive.open(_KERAS_WEIGHTS) as f, h5py.File(f, "r") as h5:
            return _OPTIMIZER_GROUP in h5
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def model_without_optimizer(src, dst):
    """Writes the `.keras` file `src` to `dst` without its optimizer state and compile config.

    The result loads (safe mode) as the same model and weights, not compiled:
    what predicting, scoring and fine-tuning need, at about half the size of
    a file with SGD's momentum. Everything else in the archive is copied as is.
    """
    import h5py

    dst = pathlib.Path(dst)
    weights = dst.with_name(_tmp_name(dst.stem + ".h5"))  # a temporary name a resume cleans up
    try:
        with zipfile.ZipFile(src) as archive:
            with archive.open(_KERAS_WEIGHTS) as f, h5py.File(f, "r") as old, h5py.File(weights, "w") as new:
                for key, value in old.attrs.items():
                    new.attrs[key] = value
                for name in old:
                    if name != _OPTIMIZER_GROUP:
                        old.copy(old[name], new, name=name)
            with zipfile.ZipFile(dst, "w") as out:
                for item in archive.infolist():
                    if item.filename == _KERAS_WEIGHTS:
                        out.write(weights, _KERAS_WEIGHTS)
                    elif item.filename == "config.json":
                        config = json.loads(archive.read(item))
                        config.pop("compile_config", None)  # nothing to compile without the optimizer's state
                        out.writestr(item, json.dumps(config))
                    else:
                        out.writestr(item, archive.read(item))
    finally:
        weights.unlink(missing_ok=True)


def _is_disk_error(e):
    # h5py reports write failures as its own error types; they carry the errno text.
    text = str(e)
    return any(s in text for s in ("No space left", "Read-only file system", "Permission denied", "Disk quota"))


def error_text(e):
    """An exception in a few words, for one-line messages."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _check_fresh(run):
    """A new run needs a missing or empty folder; a run of ours needs --resume."""
    path = run.path
    if path.exists() and not path.is_dir():
        raise UserError(f"--run-dir {path} is a file; give a folder (new or empty)")
    # A kill between creating the folder and writing config.json leaves at most its temporary file.
    if not path.exists() or all(p.name == _tmp_name("config.json") for p in path.iterdir()):
        return
    if run.config_record() is not None:
        raise UserError(
            f"{path} already holds an alexnet-keras run; add --resume to continue or extend it "
            "(--resume --epochs N), or give another --run-dir"
        )
    raise UserError(
        f"{path} is not empty and is not an alexnet-keras run (no config.json marked {RUN_SCHEMA}); "
        "give a new or empty --run-dir"
    )


def read_history(run):
    """The rows of history.csv as dicts (epochs from 1); refuses a file that is not ours."""
    path = run / "history.csv"
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
        header = next(csv.reader(io.StringIO(text)), [])
        rows = list(csv.DictReader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path}: {e}; move it away and --resume again") from None
    ok = header[:1] == ["epoch"] and all(r.get("epoch", "").isdigit() and int(r["epoch"]) >= 1 for r in rows)
    if not ok:
        raise UserError(
            f"{path} is not a history this package wrote (its first column must be 'epoch', "
            "counting from 1); move it away and --resume again"
        )
    return rows


def history_text(rows):
    """history.csv for `rows`: the epoch first, then every metric any row has, sorted."""
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys and k != "epoch"]
    out = io.StringIO()
    writer = csv.DictWriter(out, ["epoch", *sorted(keys)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def backup_epochs(run):
    """Epochs with a backup record, newest first."""
    found = []
    for p in (run / "backup").glob("epoch-*.json"):
        stem = p.name[len("epoch-") : -len(".json")]
        if stem.isdigit():
            found.append(int(stem))
    return sorted(found, reverse=True)


# --- records: what a resume reads -----------------------------------------------
class UnusableState(Exception):
    """A saved state that cannot be loaded; the message says why, in a few words."""


def read_record(run, record_path):
    """A backup record (`backup/epoch-NNNN.json`, `state.json`, `checkpoints/last.json`), checked."""
    try:
        record = json.loads((run / record_path).read_text())
    except (OSError, ValueError) as e:
        raise UnusableState(f"{record_path} is unreadable ({error_text(e)})") from None
    ok = (
        isinstance(record, dict)
        and record.get("schema") == RUN_SCHEMA
        and type(record.get("epoch")) is int
        and record["epoch"] >= 1
        and isinstance(record.get("weights"), str)
    )
    if not ok:
        raise UnusableState(f"{record_path} is unreadable (not a record of this package)")
    return record


# --- opening and cleaning up -------------------------------------------------------
def default_run_dir():
    """runs/<timestamp> under the working directory."""
    return str(pathlib.Path("runs") / time.strftime("%Y%m%d-%H%M%S"))


def open_run(config, resume, given, chief=True):
    """Checks the run directory, writing nothing. Returns `(config, run, saved record, changes)`."""
    run = RunDir(config.run_dir or default_run_dir(), chief)
    config = dataclasses.replace(config, run_dir=str(run.path))
    if not resume:
        if chief:
            _check_fresh(run)
        return config, run, None, {}
    record = run.config_record()
    if record is None:
        raise UserError(
            f"{run.path} is not an alexnet-keras run (no config.json marked {RUN_SCHEMA}); nothing to resume"
        )
    config, changed = resumed_config(record, config, given)
    return config.validate(), run, record, changed


def remove_if_empty(path):
    """Removes a run directory this call created, if it holds nothing but empty folders."""
    for folder in sorted([path, *[p for p in path.rglob("*") if p.is_dir()]], key=lambda p: -len(p.parts)):
        try:
            folder.rmdir()
        except OSError:
            return
