"""The automatic split of a folder of class folders (no train/ and val/): data.folders.auto_split.

References: the per-class val counts are worked out by hand (round half up of
fraction x images, at most images - 1); disjointness and completeness against the
files written here; stability against a second process with another hash seed.
"""

import json
import os
import subprocess
import sys
import warnings

import pytest

from alexnet_keras import data
from alexnet_keras.constants import SPLIT_FILE
from alexnet_keras.data import folders
from alexnet_keras.errors import UserError
from alexnet_keras.training import finetune
from alexnet_keras.training.config import TrainConfig
from alexnet_keras.training.rundir import RunDir
from test_image_limits import encode, noise

COUNTS = {"cat": 25, "dog": 9, "eel": 4, "fox": 10}


def _folder(root, counts=COUNTS):
    for c, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / cls / f"img{i:02d}.jpg").write_bytes(encode(noise((12, 16, 3), 100 * c + i), "JPEG"))
    return root


@pytest.fixture
def pets(tmp_path):
    return _folder(tmp_path / "pets")


def _by_class(files):
    out = {}
    for f in files:
        out.setdefault(f.split("/")[0], []).append(f)
    return out


@pytest.mark.parametrize(
    "fraction, expected",
    [
        # 0.1: 2.5 -> 3 (half up), 0.9 -> 1, 0.4 -> 0, 1.0 -> 1
        (0.1, {"cat": 3, "dog": 1, "eel": 0, "fox": 1}),
        # 0.3: 7.5 -> 8, 2.7 -> 3, 1.2 -> 1, 3.0 -> 3
        (0.3, {"cat": 8, "dog": 3, "eel": 1, "fox": 3}),
        # 0.9: 22.5 -> 23, 8.1 -> 8, 3.6 -> 4 capped at 3 (one image keeps training), 9
        (0.9, {"cat": 23, "dog": 8, "eel": 3, "fox": 9}),
    ],
)
def test_split_is_stratified_disjoint_and_complete(pets, fraction, expected):
    split = folders.auto_split(str(pets), fraction, seed=0)
    val = {cls: len(files) for cls, files in _by_class(split.val).items()}
    assert {cls: val.get(cls, 0) for cls in COUNTS} == expected
    written = {f"{cls}/img{i:02d}.jpg" for cls, n in COUNTS.items() for i in range(n)}
    assert set(split.train).isdisjoint(split.val)
    assert set(split.train) | set(split.val) == written
    assert len(split.train) + len(split.val) == sum(COUNTS.values())


def test_split_is_stable_across_runs_and_processes(pets):
    first = folders.auto_split(str(pets), 0.3, seed=7).record()
    assert folders.auto_split(str(pets), 0.3, seed=7).record() == first
    code = (
        "import json, sys; from alexnet_keras.data import folders; "
        "print(json.dumps(folders.auto_split(sys.argv[1], 0.3, seed=7).record()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(pets)], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == first
    # Another seed draws other val files (same counts): the seed is used.
    other = folders.auto_split(str(pets), 0.3, seed=8)
    assert sorted(other.val) != sorted(first["val"])
    assert len(other.val) == first["val_count"]


def test_a_class_split_depends_only_on_its_own_files(pets, tmp_path):
    before = _by_class(folders.auto_split(str(pets), 0.3, seed=0).val)
    _folder(pets, {"ant": 6})  # a new class
    after = _by_class(folders.auto_split(str(pets), 0.3, seed=0).val)
    assert {k: v for k, v in after.items() if k != "ant"} == before
    assert len(after["ant"]) == 2  # 1.8 -> 2


def test_classes_without_val_images_are_warned_in_one_line(pets):
    split = folders.auto_split(str(pets), 0.1, seed=0)
    with pytest.warns(UserWarning) as caught:
        train_ds, val_ds, info = folders.load_split(split, "torchvision", batch_size=4, seed=0)
    messages = [str(w.message) for w in caught if "no val images" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert "1 of 4 classes have no val images" in messages[0] and "eel" in messages[0]
    assert (info.train_examples, info.val_examples, info.class_names) == (43, 5, sorted(COUNTS))


def test_resume_and_evaluate_use_the_recorded_split(pets, tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = TrainConfig(data=str(pets), run_dir=str(run.path))
    _, _, split = finetune.prepare(config, run, resume=False, given={"data"})
    assert split.fraction == 0.1  # the default
    finetune.record_split(run, split)
    recorded = json.loads((run / SPLIT_FILE).read_text())
    assert recorded["val"] == list(split.val) and recorded["seed"] == 0

    # New files after the split: a resume keeps the recorded lists, not a new split.
    _folder(pets, {"cat": 40, "ant": 6})
    resumed_config, _, resumed = finetune.prepare(config, run, resume=True, given=set())
    assert (resumed.train, resumed.val) == (split.train, split.val)
    assert resumed_config.val_split == 0.1
    assert folders.auto_split(str(pets), 0.1, seed=0).val != split.val  # what a fresh split would have given

    # evaluate --data RUN/split.json scores exactly the recorded val files, labelled by class.
    ds, info = data.eval_dataset(str(run / SPLIT_FILE), batch_size=2, spec="torchvision")
    labels = [int(y) for _, batch in ds for y in batch]
    expected = sorted(split.classes.index(f.split("/")[0]) for f in split.val)
    assert info.val_examples == len(split.val) and sorted(labels) == expected
    with pytest.raises(UserError, match=r"has no ILSVRC2012_val_\* val images"):  # --only-imagenet-val filters it too
        data.eval_dataset(str(run / SPLIT_FILE), batch_size=2, spec="torchvision", only_imagenet_val=True)


def test_a_lost_file_of_the_recorded_split_is_dropped_with_a_warning(pets, tmp_path):
    split = folders.auto_split(str(pets), 0.3, seed=0)
    (tmp_path / "split.json").write_text(json.dumps(split.record()))
    os.unlink(pets / split.val[0])
    with pytest.warns(UserWarning, match="1 file"):
        again = folders.read_split(tmp_path / "split.json")
    assert again.val == split.val[1:] and again.train == split.train


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_val_split_outside_0_1_is_refused(value):
    with pytest.raises(UserError, match="val_split"):
        TrainConfig(val_split=value).validate()


def test_val_split_is_refused_for_a_folder_that_is_split_already(tmp_path):
    _folder(tmp_path / "data" / "train", {"a": 2, "b": 2})
    _folder(tmp_path / "data" / "val", {"a": 1, "b": 1})
    run = RunDir(tmp_path / "run")
    config = TrainConfig(data=str(tmp_path / "data"), val_split=0.2)
    with pytest.raises(UserError, match="has train/ and val/ already"):
        finetune.prepare(config, run, resume=False, given={"data", "val_split"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, split = finetune.prepare(TrainConfig(data=str(tmp_path / "data")), run, resume=False, given={"data"})
    assert split is None  # train/ and val/ are used as they are


def test_split_seed_fixes_the_split_whatever_the_training_seed(pets):
    def split(**fields):
        return finetune.folder_split(TrainConfig(data=str(pets), val_split=0.3, **fields).validate(), None)

    assert split(seed=1, split_seed=0).val == split(seed=0).val == folders.auto_split(str(pets), 0.3, seed=0).val
    assert split(seed=1).val != split(seed=0).val  # without it the training seed picks the val set
    for bad in (-1, 2**32, 0.5, True):
        with pytest.raises(UserError, match="bad value for split_seed"):
            TrainConfig(split_seed=bad).validate()


def test_tune_and_ablate_pin_one_val_set_and_read_it_as_train_does(pets, tmp_path):
    """`tune` and `ablate` split a plain folder once, pin the split for their trials and read its sizes."""
    from alexnet_keras.training.loop import pinned_data_info

    (pets / "cat" / "broken.jpg").write_bytes(b"not a JPEG")  # skipped, so not in the counts below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pinned, info = pinned_data_info(TrainConfig(data=str(pets), seed=5, batch_size=4).validate())
    assert (pinned.val_split, pinned.split_seed) == (0.1, 5)
    # The folder is split and checked once: each warning comes once (splitting twice warned twice).
    messages = [str(w.message) for w in caught]
    assert sum(m.startswith("skipped 1 image file(s)") for m in messages) == 1, messages
    assert sum("classes have no val images" in m for m in messages) == 1, messages
    trial = pinned.update(seed=6)  # an ablation's second seed
    assert finetune.folder_split(trial, None).val == folders.auto_split(str(pets), 0.1, seed=5).val
    # Hand count at 0.1 (see the first test): cat 3, dog 1, eel 0, fox 1 held out of 48.
    assert (info.classes, info.train_examples, info.val_examples) == (4, 43, 5)
    # Other data is left as it is; a split seed for it is refused like --val-split.
    assert pinned_data_info(TrainConfig())[0] == TrainConfig()
    _folder(tmp_path / "data" / "train", {"a": 2, "b": 2})
    _folder(tmp_path / "data" / "val", {"a": 1, "b": 1})
    split_already = TrainConfig(data=str(tmp_path / "data"), batch_size=2)
    assert pinned_data_info(split_already)[0] == split_already
    for config in (TrainConfig(split_seed=1), split_already.update(split_seed=1)):
        with pytest.raises(UserError, match="split_seed splits a folder of class folders"):
            pinned_data_info(config)
