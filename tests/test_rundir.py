"""The run directory: checks before writes, atomic writes, partial files, history."""

import json
import os

import pytest

from alexnet_keras.errors import UserError
from alexnet_keras.training import rundir as R
from alexnet_keras.training.config import TrainConfig


def _ours(run, **config):
    run.mkdir(parents=True)
    saved = TrainConfig(classes=10, epochs=2, init="paper", dropout="paper", run_dir=str(run)).update(**config)
    (run / "config.json").write_text(json.dumps({"schema": R.RUN_SCHEMA, "config": saved.as_dict()}))


def test_new_runs_need_a_new_or_empty_folder(tmp_path):
    fresh = TrainConfig(run_dir=str(tmp_path / "new"))
    R.open_run(fresh, resume=False, given=set())
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "empty").mkdir()
    R.open_run(TrainConfig(run_dir=str(tmp_path / "empty")), resume=False, given=set())
    user = tmp_path / "user"
    user.mkdir()
    (user / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="not an alexnet-keras run"):
        R.open_run(TrainConfig(run_dir=str(user)), resume=False, given=set())
    with pytest.raises(UserError, match="not an alexnet-keras run"):
        R.open_run(TrainConfig(run_dir=str(user)), resume=True, given=set())
    assert [p.name for p in user.iterdir()] == ["summary.json"]
    _ours(tmp_path / "ours")
    with pytest.raises(UserError, match="add --resume"):
        R.open_run(TrainConfig(run_dir=str(tmp_path / "ours")), resume=False, given=set())
    # Only the chief checks: another process of a multi-process run never refuses the folder.
    R.open_run(TrainConfig(run_dir=str(user)), resume=False, given=set(), chief=False)


def test_resume_keeps_the_saved_config_and_applies_allowed_changes(tmp_path):
    run = tmp_path / "R"
    _ours(run, batch_size=8, lr_schedule="paper")
    asked = TrainConfig(run_dir=str(run), batch_size=8, epochs=5, lr_schedule="step:3", variant="2012")
    config, _, _, changed = R.open_run(asked, resume=True, given={"batch_size", "epochs", "lr_schedule", "variant"})
    assert (config.batch_size, config.epochs, config.lr_schedule, config.classes) == (8, 5, "step:3", 10)
    assert changed == {"epochs": [2, 5], "lr_schedule": ["paper", "step:3"]}
    for field, value, flag in [
        ("batch_size", 16, "--batch-size 16"),
        ("variant", "owt", "--variant owt"),
        ("data", "/x", "--data /x"),
        ("init", "caffe", "--init caffe"),
        ("classes", 5, "--classes 5"),
        ("seed", 1, "--seed 1"),
    ]:
        with pytest.raises(UserError, match=flag):
            R.open_run(TrainConfig(run_dir=str(run)).update(**{field: value}), resume=True, given={field})
    # A field left at its default is not "given", so it does not conflict.
    config, *_ = R.open_run(TrainConfig(run_dir=str(run)), resume=True, given={"run_dir"})
    assert config.epochs == 2


def test_resume_cannot_switch_to_or_from_cc145(tmp_path):
    """cc145's optimizer holds a conv1 rate variable that a step/paper run's checkpoint lacks, and back."""
    for saved, asked in (("paper", "cc145"), ("cc145", "step:25,51,79")):
        run = tmp_path / saved
        _ours(run, batch_size=8, lr_schedule=saved)
        with pytest.raises(UserError, match=f"--lr-schedule {asked} conflicts"):
            R.open_run(TrainConfig(run_dir=str(run), lr_schedule=asked), resume=True, given={"lr_schedule"})
    config, _, _, changed = R.open_run(
        TrainConfig(run_dir=str(tmp_path / "paper"), lr_schedule="step:3"), resume=True, given={"lr_schedule"}
    )
    assert changed == {"lr_schedule": ["paper", "step:3"]}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    import errno

    run = R.RunDir(tmp_path)
    run.write_text("state.json", "old")

    def full_disk(tmp):
        tmp.write_text("half of the new")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(UserError, match="cannot write .*state.json: No space left on device"):
        run.write_with("state.json", full_disk)
    assert (tmp_path / "state.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

    def h5py_error(tmp):  # h5py reports errno failures as its own exception types
        tmp.write_bytes(b"\x89HDF")
        raise RuntimeError("Can't write data (file write failed: errno = 30, error message = 'Read-only file system')")

    with pytest.raises(UserError, match="Read-only file system"):
        run.write_with("state.json", h5py_error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    R.RunDir(tmp_path, chief=False).write_text("state.json", "not the chief")
    assert (tmp_path / "state.json").read_text() == "old"


def test_partial_files_are_found_only_where_a_run_writes(tmp_path):
    for name in ["last.tmp.keras", "last.keras"]:
        (tmp_path / "checkpoints").mkdir(exist_ok=True)
        (tmp_path / "checkpoints" / name).write_text("x")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "epoch-0002.tmp.weights.h5").write_text("x")
    (tmp_path / "state.tmp").write_text("x")  # the name 0.1.0 used
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "a.tmp.b").write_text("x")
    found = [str(p.relative_to(tmp_path)) for p in R.RunDir(tmp_path).partial_files()]
    assert found == ["backup/epoch-0002.tmp.weights.h5", "checkpoints/last.tmp.keras", "state.tmp"]


def test_history_must_be_ours(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n1,2.5\n2,2.0\n")
    assert [r["epoch"] for r in R.read_history(R.RunDir(tmp_path))] == ["1", "2"]
    for text in ["step,score\n1,0.5\n", "epoch,loss\n0,2.5\n", "epoch,loss\nlast,2\n"]:
        (tmp_path / "history.csv").write_text(text)
        with pytest.raises(UserError, match="not a history this package wrote"):
            R.read_history(R.RunDir(tmp_path))
