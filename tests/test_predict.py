"""Class table, decode_predictions, predict and its CLI, and torchvision-matching preprocessing."""

import json
import os
import re

import keras
import numpy as np
import pytest

from alexnet_keras import AlexNet, UserError, cli, data
from alexnet_keras.imagenet import decode_predictions, imagenet_classes, imagenet_wnids
from alexnet_keras.models import presets
from alexnet_keras.predict import predict
from alexnet_keras.preprocessing import get_spec
from conftest import require_torch
from test_convert import Payload, nhwc, seeded_alexnet

# shared classes.txt writes names with underscores; torchvision renamed two duplicated names.
RENAMED = {"n02012849": "crane bird", "n03710721": "maillot tank suit"}
# Our preprocessing vs torchvision's, in normalised units. One 8-bit grey level is
# 1 / (255 * 0.224) = 0.0175: PIL rounds its resized image to uint8 and we keep floats,
# and JPEG decoders may differ by a level between builds; allow two levels at most, a
# quarter level on average.
GREY_LEVEL = 1 / (255 * min(get_spec("torchvision")["std"]))
PREP_MAX, PREP_MEAN = 2 * GREY_LEVEL, 0.25 * GREY_LEVEL


def cli_run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


# --- the class table -------------------------------------------------------------------------------
def test_class_table():
    classes = imagenet_classes()
    wnids = [w for w, _ in classes]
    names = [n for _, n in classes]
    assert len(classes) == 1000 and wnids == sorted(set(wnids))  # standard order = sorted wnids
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert len(set(names)) == 1000 and all(names)
    assert classes[0] == ("n01440764", "tench") and classes[999] == ("n15075141", "toilet tissue")
    assert imagenet_wnids() == wnids


def test_class_table_matches_shared_classes(imagenet_samples):
    rows = [line.split("\t") for line in (imagenet_samples / "classes.txt").read_text().splitlines()]
    assert [(int(r[0]), r[1]) for r in rows] == list(enumerate(imagenet_wnids()))
    for (wnid, name), row in zip(imagenet_classes(), rows, strict=True):
        assert name == RENAMED.get(wnid, row[2].replace("_", " "))


# --- decode_predictions ----------------------------------------------------------------------------
def test_decode_predictions():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [1, 2, 3]] = [0.5, 0.3, 0.2]
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=3)
    assert decoded[0] == [
        ("n01443537", "goldfish", 0.5),
        ("n01484850", "great white shark", 0.30000001192092896),
        ("n01491361", "tiger shark", 0.20000000298023224),
    ]
    assert decoded[1][0] == ("n15075141", "toilet tissue", 1.0)
    # Custom heads: names come from the ImageNet table where it knows the wnid.
    custom = decode_predictions([[0.1, 0.9]], top=5, class_wnids=["n01440764", "n99999999"])
    assert custom == [[("n99999999", "n99999999", 0.9), ("n01440764", "tench", 0.1)]]
    with pytest.raises(UserError, match="10 classes but no class_wnids"):
        decode_predictions(np.zeros((1, 10)))
    with pytest.raises(UserError, match="shape"):
        decode_predictions(np.zeros(1000))
    with pytest.raises(UserError, match="2 class_wnids for 3 classes"):
        decode_predictions(np.zeros((1, 3)), class_wnids=["a", "b"])


# --- predict with converted weights ----------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A seeded torchvision .pth and its .keras conversion."""
    torch = require_torch()
    folder = tmp_path_factory.mktemp("predict")
    torch.save(seeded_alexnet().state_dict(), folder / "owt.pth")
    presets.convert(folder / "owt.pth", folder / "owt.keras")
    return folder


@pytest.fixture
def images(imagenet_samples):
    return [
        str(imagenet_samples / name)
        for name in ("n01440764_tench.JPEG", "n04357314_sunscreen.JPEG", "n04008634_projectile.JPEG")
    ]  # colour, colour, grayscale


def test_predict_returns_real_class_names(weights, images):
    table = dict(imagenet_classes())
    for source in ({"weights": weights / "owt.pth"}, {"model": weights / "owt.keras"}):
        results = predict(images, top=5, **source)
        assert len(results) == len(images)
        for preds in results:
            assert len(preds) == 5
            assert all(table[wnid] == name for wnid, name, _ in preds)
            probs = [p for _, _, p in preds]
            assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1 and sum(probs) <= 1 + 1e-6
    (single,) = predict(images[0], model=presets.load_model(weights / "owt.keras"), top=5)
    assert [w for w, _, _ in single] == [w for w, _, _ in results[0]]


def test_predict_cli(weights, images, capsys):
    code, out, _ = cli_run(["predict", *images[:2], "--model", str(weights / "owt.keras"), "--top", "3"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == images[0] and lines[4] == images[1] and len(lines) == 8
    table = dict(imagenet_classes())
    for line in lines[1:4] + lines[5:8]:
        match = re.fullmatch(r"  \d\. (.+) \((n\d{8})\)  (0\.\d{4}|1\.0000)", line)
        assert match and table[match[2]] == match[1]
    code, out, _ = cli_run(["predict", images[0], "--weights", str(weights / "owt.pth"), "--json"], capsys)
    assert code == 0
    (result,) = json.loads(out)
    assert result["image"] == images[0] and len(result["predictions"]) == 5
    assert table[result["predictions"][0]["wnid"]] == result["predictions"][0]["name"]


def test_predict_bad_input_is_one_line(weights, images, tmp_path, capsys):
    torch = require_torch()
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    wrong = seeded_alexnet().state_dict()
    wrong["features.0.weight"] = torch.zeros(96, 3, 11, 11)  # the 2012 conv1 in an owt file
    wrong["features.0.bias"] = torch.zeros(96)
    torch.save(wrong, tmp_path / "wrong.pth")
    torch.save({"x": Payload(str(tmp_path / "pwned"))}, tmp_path / "evil.pth")
    model = ["--model", str(weights / "owt.keras")]
    cases = {
        "not a decodable image": ["predict", str(not_image), *model],
        "image not found": ["predict", str(tmp_path / "missing.jpg"), *model],
        "file not found": ["predict", images[0], "--model", str(tmp_path / "missing.keras")],
        "layer conv1 needs shapes (11, 11, 3, 64) and (64,), the file has (11, 11, 3, 96)": [
            "predict",
            images[0],
            "--weights",
            str(tmp_path / "wrong.pth"),
        ],
        "refusing to load": ["predict", images[0], "--weights", str(tmp_path / "evil.pth")],
        "exactly one of model": ["predict", images[0], *model, "--weights", str(weights / "owt.pth")],
    }
    for message, args in cases.items():
        code, _, err = cli_run(args, capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, (args, err)
    assert not (tmp_path / "pwned").exists()


# --- preprocessing vs torchvision ------------------------------------------------------------------
def spread_out(model, x):
    """Removes the common direction of fc7's outputs from fc8, so random weights predict many classes.

    A randomly initialised AlexNet sends almost every image to the same few classes,
    which would make top-1 agreement trivial; after this, its top-1 spreads out.
    """
    torch = require_torch()
    with torch.no_grad():
        features = model.classifier[:6](torch.flatten(model.avgpool(model.features(x)), 1))
        mean = features.mean(0)
        fc8 = model.classifier[6]
        fc8.weight -= (fc8.weight @ mean)[:, None] * mean[None, :] / (mean @ mean)
        fc8.bias.zero_()
    return model


@pytest.mark.parametrize("count", [200, pytest.param(1000, marks=pytest.mark.slow)])
def test_preprocessing_and_top1_match_torchvision(imagenet_samples, tmp_path, count):
    torch = require_torch()
    import torchvision
    from PIL import Image
    from torchvision import transforms as T

    spec = get_spec("torchvision")
    files = sorted(imagenet_samples.glob("*.JPEG"))[:: 1000 // count]
    reference = T.Compose(
        [
            T.Resize(spec["resize"]),
            T.CenterCrop(spec["input_size"]),
            T.ToTensor(),
            T.Normalize(spec["mean"], spec["std"]),
        ]
    )
    theirs = torch.stack([reference(Image.open(f).convert("RGB")) for f in files])
    ours = np.stack([np.asarray(data.load_image(f, spec)) for f in files])
    diff = np.abs(ours - nhwc(theirs.numpy()))

    real = os.environ.get("ALEXNET_OWT_PTH")
    if real:
        model = torchvision.models.alexnet()
        model.load_state_dict(torch.load(real, weights_only=True))
        model.eval()
    else:
        model = spread_out(seeded_alexnet(), theirs)
    torch.save(model.state_dict(), tmp_path / "owt.pth")
    with torch.no_grad():
        top1_torch = model(theirs).argmax(1).numpy()
    keras_model = AlexNet("owt", weights=tmp_path / "owt.pth")
    assert keras_model.preprocessing == spec
    top1_ours = keras_model.predict(ours, batch_size=50, verbose=0).argmax(1)
    agree = float((top1_ours == top1_torch).mean())
    print(
        f"\n{len(files)} images, {'real' if real else 'seeded'} weights: max abs diff {diff.max():.4f}, "
        f"mean {diff.mean():.5f}; top-1 agreement {agree:.3f}; {len(set(top1_torch))} distinct classes"
    )
    assert len(set(top1_torch)) >= len(files) // 4  # agreement is not trivially high
    assert diff.max() <= PREP_MAX and diff.mean() <= PREP_MEAN
    assert agree >= 0.99


# --- broken models and misleading messages (issue 13) ------------------------------------------------
def test_predict_refuses_non_finite_outputs(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    model = AlexNet("owt")  # torchvision preprocessing, 1000 classes
    fc8 = model.get_layer("fc8")
    fc8.set_weights([fc8.get_weights()[0], np.full(1000, np.nan, np.float32)])
    with pytest.raises(UserError, match=r"the model gave non-finite outputs \(NaN or inf\) for 1 of 1 image\(s\)"):
        predict(str(tmp_path / "grey.png"), model=model)


def test_predict_names_what_is_wrong_with_a_model_file(tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(image)
    (tmp_path / "text.keras").write_text("hello world\n")
    (tmp_path / "folder.keras").mkdir()
    cases = {
        "not a valid .keras file": ["--model", str(tmp_path / "text.keras")],
        "folder.keras is a directory": ["--model", str(tmp_path / "folder.keras")],
    }
    for message, args in cases.items():
        code, _, err = cli_run(["predict", str(image), *args], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err and "File not found" not in err, err
    code, _, err = cli_run(["predict", str(tmp_path), "--model", str(tmp_path / "text.keras")], capsys)
    assert code == 2 and err.count("\n") == 1 and "is a directory, not an image file" in err, err


# --- one rule for logits (issue 12) ------------------------------------------------------------------
@pytest.mark.parametrize("activation", [None, "linear"])
def test_predict_turns_logits_into_probabilities(tmp_path, activation):
    """`"linear"` is Keras' name for no activation: its outputs are logits too (evaluation.metrics.outputs_logits)."""
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), np.uint8)).save(tmp_path / "noise.png")
    keras.utils.set_random_seed(0)
    wnids = ["n01440764", "n01443537", "n01484850"]
    model = AlexNet("owt", classes=3, class_wnids=wnids, classifier_activation=activation)
    logits = model.predict(np.asarray(data.load_image(tmp_path / "noise.png", model.preprocessing))[None], verbose=0)
    expected = np.exp(logits[0] - logits[0].max())
    expected /= expected.sum()
    (preds,) = predict(str(tmp_path / "noise.png"), model=model, top=3)
    got = {wnid: p for wnid, _, p in preds}
    np.testing.assert_allclose([got[w] for w in wnids], expected, rtol=1e-5)
    assert sum(got.values()) == pytest.approx(1.0)
