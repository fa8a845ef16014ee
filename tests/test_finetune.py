"""Fine-tuning (`train --init-from`): training.finetune with seeded torchvision weights.

References: a torchvision AlexNet built with a fixed seed and saved as a state dict;
its own forward pass (torch) gives fc7's activations, which the fine-tuned Keras
model must reproduce; frozen layers are compared bit for bit before and after a
real optimizer step.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from alexnet_keras.constants import FINETUNE_LAYERS, FINETUNE_LR, SPLIT_FILE
from alexnet_keras.data.info import make_info
from alexnet_keras.errors import UserError
from alexnet_keras.predict import predict
from alexnet_keras.preprocessing import get_spec
from alexnet_keras.training import finetune
from alexnet_keras.training.config import TrainConfig, frozen_layers, resolve
from alexnet_keras.training.loop import build_model
from alexnet_keras.weights import torchvision as tv
from alexnet_keras.weights.io import load_keras
from conftest import require_torch
from test_image_limits import encode, noise

CLASSES = ["cat", "dog", "fox"]
CLI = [sys.executable, "-m", "alexnet_keras_cli"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """(path of a seeded torchvision AlexNet's state dict, the torch model, the Source read from it)."""
    torch = require_torch()
    import torchvision

    torch.manual_seed(2012)
    net = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp("source") / "seeded.pth"
    torch.save(net.state_dict(), path)
    return path, net, finetune.read_source(str(path))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    for c, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.jpg").write_bytes(encode(noise((40, 48, 3), 10 * c + i), "JPEG"))
    return root


def _model(seeded, folder, **fields):
    """The model `train` starts from, built as train's `new_model` builds it (optimizer built after freezing)."""
    path, _, source = seeded
    given = {"data", "init_from", "batch_size", *fields}
    config = TrainConfig(data=str(folder), init_from=str(path), batch_size=4, **fields)
    config = finetune.resolve(config, source, given)
    spec = get_spec("torchvision")
    info = make_info(str(folder), "folder", CLASSES, 9, 3, spec, 4)
    config = resolve(config, info)
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, class_wnids=list(info.class_names), spec=spec)
    finetune.start_from(model, source, config.freeze)
    model.optimizer.build(model.trainable_variables)
    return config, model


def test_conv1_to_fc7_come_from_the_source_and_fc8_is_new_for_the_datas_classes(seeded, folder):
    torch = require_torch()
    _, net, _ = seeded
    config, model = _model(seeded, folder)
    assert (config.variant, config.lr, config.freeze) == ("owt", FINETUNE_LR, "none")
    # The new head: one output per folder class, labelled with the folder's names.
    assert model.output_shape == (None, 3)
    assert model.get_layer("fc8").kernel.shape == (4096, 3)
    assert model.class_wnids == CLASSES
    # conv1's kernel is torch's OIHW weight as HWIO (the layouts' definition, not our converter).
    conv1 = net.state_dict()["features.0.weight"].numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel), conv1)
    # fc7's activations equal torchvision's own forward pass (eval mode: dropout is the identity).
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
    with torch.no_grad():
        t = net.avgpool(net.features(torch.from_numpy(x.transpose(0, 3, 1, 2))))
        expected = net.classifier[:6](torch.flatten(t, 1)).numpy()
    fc7 = keras.Model(model.input, model.get_layer("fc7").output)(x, training=False)
    got = keras.ops.convert_to_numpy(fc7)
    assert expected.std() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("spec", ["features", "up-to:fc6"])
def test_frozen_layers_do_not_change_after_a_step(seeded, folder, spec):
    config, model = _model(seeded, folder, freeze=spec)
    frozen = frozen_layers(spec)
    before = {n: [np.array(w) for w in model.get_layer(n).get_weights()] for n in (*FINETUNE_LAYERS, "fc8")}
    x = np.random.default_rng(1).normal(size=(4, 224, 224, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0], np.int32)
    model.train_on_batch(x, y)
    for name, old in before.items():
        new = model.get_layer(name).get_weights()
        same = all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
        assert same == (name in frozen), f"{name}: frozen={name in frozen} but same={same}"
    # The optimizer holds no momentum for frozen layers: 2 variables (kernel, bias) per trained layer.
    trained = [n for n in (*FINETUNE_LAYERS, "fc8") if n not in frozen]
    assert len(model.trainable_weights) == 2 * len(trained)


def test_predictions_are_named_with_the_folders_classes(seeded, folder):
    """`predict` labels the new head's outputs with the folder's names (the CLI's output: the slow test)."""
    _, model = _model(seeded, folder, freeze="up-to:conv3")
    [top] = predict([str(folder / "fox" / "0.jpg")], model=model, top=3)
    assert sorted(wnid for wnid, _, _ in top) == CLASSES
    assert all(wnid == name for wnid, name, _ in top)  # no ImageNet name stands in for a folder's class
    assert abs(sum(p for _, _, p in top) - 1.0) < 1e-5  # all three classes, softmax probabilities


def test_lr_and_variant_follow_the_source_unless_given(seeded, folder):
    path, _, source = seeded
    base = TrainConfig(data=str(folder), init_from=str(path))
    assert finetune.resolve(base, source, {"data", "init_from"}).lr == FINETUNE_LR
    assert finetune.resolve(base.update(lr=0.02), source, {"data", "init_from", "lr"}).lr == 0.02
    with pytest.raises(UserError, match="--variant 2012 cannot start from --init-from .*AlexNet owt"):
        finetune.resolve(base, source, {"data", "init_from", "variant"})


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("none", ()),
        ("features", ("conv1", "conv2", "conv3", "conv4", "conv5")),
        ("up-to:conv1", ("conv1",)),
        ("up-to:fc7", FINETUNE_LAYERS),
    ],
)
def test_freeze_specs(spec, expected):
    assert frozen_layers(spec) == expected


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"freeze": "classifier", "init_from": "x.keras"}, "bad --freeze 'classifier'"),
        ({"freeze": "up-to:fc8", "init_from": "x.keras"}, "unknown layer 'fc8'"),
        ({"freeze": "up-to:conv9", "init_from": "x.keras"}, "unknown layer 'conv9'"),
        ({"freeze": "features"}, "--freeze features needs --init-from"),
    ],
)
def test_bad_freeze_is_one_line(fields, fragment):
    with pytest.raises(UserError) as e:
        TrainConfig(**fields).validate()
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_bad_sources_are_one_line(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        finetune.read_source(str(tmp_path / "missing.pth"))
    weights_only = tmp_path / "w.weights.h5"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save_weights(weights_only)
    with pytest.raises(UserError, match="no architecture"):
        finetune.read_source(str(weights_only))
    # A .keras with code in it (a Lambda) is refused by safe mode, not run.
    inputs = keras.Input((2,))
    unsafe = tmp_path / "unsafe.keras"
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(unsafe)
    with pytest.raises(UserError, match="cannot load .*unsafe.keras") as e:
        finetune.read_source(str(unsafe))
    assert "\n" not in str(e.value)


def test_imagenet_offline_fails_fast_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tv, "CACHE_DIR", str(tmp_path / "cache"))  # no cached download
    monkeypatch.setenv(tv.URL_ENV, "http://127.0.0.1:9/alexnet-owt-7be5be79.pth")  # nothing listens on port 9
    start = time.perf_counter()
    with pytest.raises(UserError, match="cannot download") as e:
        finetune.read_source("imagenet")
    assert time.perf_counter() - start < 30
    assert "\n" not in str(e.value)


def _run(*args, timeout=900):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_fine_tune_real_images_predict_and_resume(seeded, imagenette, tmp_path):
    """One command on a folder of class folders of real JPEGs; predict names its classes; resume keeps the split."""
    wnids = sorted(p.name for p in (imagenette / "train").iterdir())[:3]
    data = tmp_path / "mine"
    for wnid in wnids:
        (data / wnid).mkdir(parents=True)
        for image in sorted((imagenette / "train" / wnid).iterdir())[:6]:
            (data / wnid / image.name).symlink_to(image)  # links, not copies of the shared data
    run = tmp_path / "run"
    common = ["--data", str(data), "--run-dir", str(run), "--batch-size", "4", "--steps-per-epoch", "1"]
    first = _run("train", *common, "--init-from", str(seeded[0]), "--freeze", "features", "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["lr"], saved["variant"], saved["freeze"], saved["val_split"]) == (FINETUNE_LR, "owt", "features", 0.1)
    assert "fc8 new, conv1-conv5 frozen, lr 0.001" in first.stdout
    record = json.loads((run / SPLIT_FILE).read_text())
    assert record["val_count"] == 3 and record["train_count"] == 15  # 6 per class: round(0.6) = 1 val each

    after_1 = load_keras(run / "checkpoints" / "last.keras")
    image = data / wnids[0] / sorted(os.listdir(data / wnids[0]))[0]
    predicted = _run("predict", str(image), "--model", str(run / "checkpoints" / "last.keras"), "--top", "3")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    from alexnet_keras.imagenet import imagenet_classes

    names = dict(imagenet_classes())
    assert sorted(line.split("(")[-1].split(")")[0] for line in predicted.stdout.splitlines()[1:]) == wnids
    assert all(names[w] in predicted.stdout for w in wnids)

    (data / wnids[0] / "extra.jpg").symlink_to(sorted((imagenette / "train" / wnids[0]).iterdir())[7])
    resumed = _run("train", "--run-dir", str(run), "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from the end of epoch 1" in resumed.stdout
    assert json.loads((run / SPLIT_FILE).read_text()) == record  # the recorded split, not a new one
    assert "15 train, 3 val" in resumed.stdout
    # The resumed epoch trained with the same frozen layers: conv1-conv5 are bit for bit epoch 1's, fc8 moved.
    after_2 = load_keras(run / "checkpoints" / "last.keras")
    for name in (*FINETUNE_LAYERS, "fc8"):
        same = all(
            np.array_equal(a, b)
            for a, b in zip(after_1.get_layer(name).get_weights(), after_2.get_layer(name).get_weights(), strict=True)
        )
        assert same == name.startswith("conv"), name
