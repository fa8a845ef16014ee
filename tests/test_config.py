"""TrainConfig: setting fields, config files, validation of every field, schedules."""

import dataclasses
import json

import pytest

from alexnet_keras.errors import UserError
from alexnet_keras.training import config as C
from alexnet_keras.training.config import TrainConfig, parse_schedule


def test_config_set_and_file(tmp_path):
    config = TrainConfig().update(epochs="3", lr="0.02", simulate_gtx580="true", classes="none")
    assert (config.epochs, config.lr, config.simulate_gtx580, config.classes) == (3, 0.02, True, None)
    with pytest.raises(UserError, match="unknown config field"):
        TrainConfig().update(learning_rate="1")
    with pytest.raises(UserError, match="bad value for epochs: 'many' .expected an integer"):
        TrainConfig().update(epochs="many")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"config": {"batch_size": 64, "variant": "owt"}}))
    assert TrainConfig.from_file(path).batch_size == 64


def test_schedules():
    assert parse_schedule("paper") is None
    assert parse_schedule("step:51,25,79").drops == (25, 51, 79)
    with pytest.raises(UserError):
        parse_schedule("cosine")


# --- validation: one place, every field ------------------------------------------
@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("seed", -1, "seed"),
        ("seed", 2**32, "seed"),
        ("batch_size", 0, "batch_size"),
        ("batch_size", True, "batch_size"),
        ("batch_size", 8.0, "expected an integer"),
        ("epochs", 0, "epochs"),
        ("epochs", -3, "epochs"),
        ("steps_per_execution", 0, "steps_per_execution"),
        ("classes", 1, "classes"),
        ("variant", "bogus", "choose from 2012, owt"),
        ("init", "bogus", "init"),
        ("dropout", "bogus", "dropout"),
        ("tower_impl", "bogus", "tower_impl"),
        ("strategy", "tpu", "strategy"),
        ("dropout_rate", 1.5, "dropout_rate"),
        ("dropout_rate", 1.0, "dropout_rate"),
        ("momentum", float("nan"), "momentum"),
        ("lr", 0.0, "lr"),
        ("lr", float("inf"), "lr"),
        ("weight_decay", -1e-4, "weight_decay"),
        ("simulate_gtx580", "yes", "true or false"),
        ("data", "", "data"),
        ("run_dir", 5, "run_dir"),
        ("lr_schedule", "step:0", "lr-schedule"),
        ("lr_schedule", "cc146", "cc145"),
        ("fidelity", "cuda", "choose from paper, cuda-convnet"),
        ("lrn_convention", "torch", "lrn_convention"),
        ("conv1_order", "relu", "conv1_order"),
        ("spatial_norm2", "yes", "spatial_norm2"),
        ("mean", "images", "choose from pixel, image"),
    ],
)
def test_validate_names_the_bad_field(field, value, fragment):
    config = dataclasses.replace(TrainConfig(), **{field: value})  # as a notebook or a JSON file may set it
    with pytest.raises(UserError, match=fragment):
        config.validate()


def test_the_owt_net_takes_no_cuda_convnet_network_options():
    for fields in ({"fidelity": "cuda-convnet"}, {"conv1_order": "cuda-convnet"}, {"spatial_norm2": True}):
        with pytest.raises(UserError, match="--variant 2012 only"):
            TrainConfig(variant="owt", **fields).validate()
    TrainConfig(variant="owt", lrn_convention="cuda-convnet", mean="image", spatial_norm2=False).validate()
    TrainConfig(fidelity="cuda-convnet", lr_schedule="cc145", mean="image").validate()


def test_validate_accepts_the_defaults_and_the_edges():
    assert TrainConfig().validate() == TrainConfig()
    TrainConfig(
        seed=2**32 - 1,
        dropout_rate=0.0,
        momentum=0.0,
        weight_decay=0.0,
        lr=1,
        init="caffe",
        dropout="inverted",
        variant="owt",
        tower_impl="grouped",
        lr_schedule="step:2,1",
    ).validate()


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"[1, 2]", "holds an array"),
        (b"null", "holds null"),
        (b'{"config": [1]}', "holds an array"),
        (b'"x"', "holds a string"),
        (b'{"lr": "\xff"}', "not UTF-8"),
        (b"{", "not valid JSON"),
    ],
)
def test_config_files_that_are_not_objects(tmp_path, content, fragment):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=fragment):
        TrainConfig.from_file(path)


def test_cli_choices_are_the_validated_ones():
    """The CLI offers exactly what validate accepts (both read constants.py)."""
    from alexnet_keras.cli import _TRAIN_FLAGS
    from alexnet_keras.cli import train as train_command

    params = {p.name: p for p in train_command.params}
    flagged = [name for name in C.CHOICES if name in _TRAIN_FLAGS]
    # tower_impl, lrn_convention and conv1_order are --set only
    assert flagged == ["variant", "init", "dropout", "strategy", "fidelity", "mean", "precision", "parallel"]
    for name in flagged:
        assert tuple(params[name].type.choices) == tuple(C.CHOICES[name]), name
