"""torchvision -> Keras conversion: parity on TF and JAX, formats, safety, the "imagenet" download."""

import hashlib
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

from alexnet_keras import AlexNet, UserError, cli
from alexnet_keras.models import presets
from alexnet_keras.weights import io as weights_io
from alexnet_keras.weights import npz
from alexnet_keras.weights import torchvision as tv
from conftest import require_torch

# The parity bound of the issue, fp32; logits are O(10) (see seeded_alexnet), so it is ~1e-5 relative.
PARITY_ATOL = 1e-4


def seeded_alexnet(seed=0, classes=1000):
    """torchvision's alexnet with seeded He-normal weights, in eval mode.

    torchvision's own init gives logits of ~0.01, where a 1e-4 bound would prove
    little; He init keeps activations O(1) through the ReLUs, so logits are O(10).
    """
    torch = require_torch()
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.alexnet(num_classes=classes).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.uniform_(module.bias, -0.1, 0.1)
    return model


@pytest.fixture(scope="module")
def torch_case(tmp_path_factory):
    """A seeded .pth, 8 random 224x224 images (NCHW) and torchvision's logits for them."""
    torch = require_torch()
    model = seeded_alexnet()
    path = tmp_path_factory.mktemp("torch") / "owt_seeded.pth"
    torch.save(model.state_dict(), path)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 3, 224, 224)).astype(np.float32))
    with torch.no_grad():
        logits = model(x).numpy()
    return path, x.numpy(), logits


@pytest.fixture(scope="module")
def converted(torch_case, tmp_path_factory):
    """The seeded .pth converted to every format by the CLI."""
    folder = tmp_path_factory.mktemp("converted")
    for name in ("owt.keras", "owt.weights.h5", "owt.npz"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["convert", str(torch_case[0]), str(folder / name)])
        assert exit_info.value.code == 0
    return folder


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def check_parity(ours, ref):
    assert np.abs(ref).max() > 5.0 and ref.std() > 1.0  # not a comparison of near-zeros
    diff = np.abs(ours - ref)
    print(f"parity: max abs diff {diff.max():.3g}, logit scale {np.abs(ref).max():.3g}")
    assert diff.max() <= PARITY_ATOL
    assert (ours.argmax(1) == ref.argmax(1)).all()


# --- pure numpy: the layout rules ------------------------------------------------------------------
def fake_state_dict(classes=10, side=6):
    """A torchvision-shaped state dict of random numbers (no torch needed)."""
    rng = np.random.default_rng(0)
    shapes = {
        "features.0": (64, 3, 11, 11),
        "features.3": (192, 64, 5, 5),
        "features.6": (384, 192, 3, 3),
        "features.8": (256, 384, 3, 3),
        "features.10": (256, 256, 3, 3),
        "classifier.1": (4096, 256 * side * side),
        "classifier.4": (4096, 4096),
        "classifier.6": (classes, 4096),
    }
    state = {}
    for prefix, shape in shapes.items():
        state[f"{prefix}.weight"] = rng.normal(size=shape).astype(np.float32)
        state[f"{prefix}.bias"] = rng.normal(size=shape[0]).astype(np.float32)
    return state


def test_layouts_and_fc6_permutation():
    state = fake_state_dict()
    weights = tv.torchvision_to_keras(state)
    w = state["features.3.weight"]  # OIHW -> HWIO
    assert weights["conv2"][0].shape == (5, 5, 64, 192)
    assert weights["conv2"][0][1, 2, 3, 4] == w[4, 3, 1, 2]
    assert weights["fc7"][0][5, 7] == state["classifier.4.weight"][7, 5]  # (out, in) -> (in, out)
    # fc6: torch's input index c*36 + h*6 + w must become Keras' h*6*256 + w*256 + c.
    fc6 = state["classifier.1.weight"]
    for c, h, x in [(0, 0, 1), (5, 2, 3), (255, 5, 5), (100, 0, 4)]:
        np.testing.assert_array_equal(weights["fc6"][0][h * 6 * 256 + x * 256 + c], fc6[:, c * 36 + h * 6 + x])


def test_rejects_state_dicts_of_other_models():
    state = fake_state_dict()
    with pytest.raises(UserError, match="missing classifier.6.bias"):
        tv.torchvision_to_keras({k: v for k, v in state.items() if k != "classifier.6.bias"})
    with pytest.raises(UserError, match="unexpected layer4.0.conv1.weight"):
        tv.torchvision_to_keras({**state, "layer4.0.conv1.weight": np.zeros(1)})
    state["features.3.weight"] = state["features.3.weight"][..., 0]
    with pytest.raises(UserError, match=r"conv2 \(features.3\)"):
        tv.torchvision_to_keras(state)


def test_shape_mismatch_names_layer_and_shapes(tmp_path):
    model = AlexNet("owt", classes=10)
    export = tmp_path / "w.npz"
    npz.export_npz(model, export)
    before = model.get_layer("fc8").get_weights()[0].copy()
    fc8 = r"layer fc8 needs shapes \(4096, 1000\) and \(1000,\), the file has \(4096, 10\)"
    with pytest.raises(UserError, match=fc8):
        AlexNet("owt", weights=export)
    with pytest.raises(UserError, match=r"layer conv1 needs shapes \(11, 11, 3, 96\)"):
        AlexNet("2012", classes=10, weights=export)
    np.testing.assert_array_equal(model.get_layer("fc8").get_weights()[0], before)


def test_missing_and_unknown_paths(tmp_path):
    model = AlexNet("owt", classes=10)
    with pytest.raises(UserError, match="file not found"):
        weights_io.load_weights(model, tmp_path / "nope.pth")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="unknown weights format"):
        weights_io.load_weights(model, tmp_path / "w.bin")
    with pytest.raises(UserError, match="file not found"):
        presets.convert(tmp_path / "nope.pth", tmp_path / "out.keras")
    with pytest.raises(UserError, match="variant='owt'"):
        AlexNet("2012", weights="imagenet")


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "out.keras")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file not found" in err


# --- torch: parity and the file formats ------------------------------------------------------------
def test_parity_tensorflow(torch_case):
    path, x, ref = torch_case
    model = AlexNet("owt", weights=path, classifier_activation=None)
    check_parity(model.predict(nhwc(x), verbose=0), ref)
    # A model built from the file labels torchvision's 1000 outputs in ImageNet order.
    assert presets.load_model(path).class_wnids[:2] == ["n01440764", "n01443537"]


JAX_SCRIPT = """
import sys


class NoTorch:  # the converted files must load without torch: importing it fails, as if not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"No module named {name!r}")


sys.meta_path.insert(0, NoTorch())
import keras, numpy as np
from alexnet_keras import AlexNet, load_model
assert keras.backend.backend() == "jax"
npz, kfile, x, out = sys.argv[1:]
x = np.load(x)
logits = AlexNet("owt", weights=npz, classifier_activation=None).predict(x, verbose=0)
probs = load_model(kfile).predict(x, verbose=0)
np.savez(out, logits=logits, probs=probs)
"""


def test_parity_jax_without_torch(torch_case, converted, tmp_path):
    pytest.importorskip("jax")
    _, x, ref = torch_case
    np.save(tmp_path / "x.npy", nhwc(x))
    env = dict(os.environ, KERAS_BACKEND="jax")
    args = [
        str(converted / "owt.npz"),
        str(converted / "owt.keras"),
        str(tmp_path / "x.npy"),
        str(tmp_path / "out.npz"),
    ]
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    check_parity(out["logits"], ref)
    softmax = np.exp(ref - ref.max(1, keepdims=True))
    np.testing.assert_allclose(out["probs"], softmax / softmax.sum(1, keepdims=True), atol=1e-5)


def test_formats_round_trip(torch_case, converted, capsys):
    path, x, _ = torch_case
    x = nhwc(x[:2])
    direct = AlexNet("owt", weights=path, classifier_activation=None).predict(x, verbose=0)
    for name in ("owt.keras", "owt.weights.h5", "owt.npz"):
        again = AlexNet("owt", weights=converted / name, classifier_activation=None)
        np.testing.assert_array_equal(again.predict(x, verbose=0), direct, err_msg=name)
    loaded = presets.load_model(converted / "owt.keras")
    assert loaded.preprocessing["name"] == "torchvision" and loaded.class_wnids[0] == "n01440764"


def test_paper_dropout_is_rescaled(torch_case, tmp_path):
    """torchvision trained with inverted dropout; a paper-dropout model gets fc6/fc7 kernels x 1/keep."""
    path, x, ref = torch_case
    inverted = AlexNet("owt", weights=path, classifier_activation=None)
    paper = AlexNet("owt", dropout="paper", weights=path, classifier_activation=None)
    kernel = {
        (m.dropout, name): np.asarray(m.get_layer(name).kernel)
        for m in (inverted, paper)
        for name in ("fc6", "fc7", "fc8")
    }
    assert np.array_equal(kernel["paper", "fc6"], 2 * kernel["inverted", "fc6"])  # exact: x2 is exact in fp32
    assert np.array_equal(kernel["paper", "fc7"], 2 * kernel["inverted", "fc7"])
    assert np.array_equal(kernel["paper", "fc8"], kernel["inverted", "fc8"])
    check_parity(paper.predict(nhwc(x), verbose=0), ref)
    # Our .npz records the convention, so a paper-trained export loads back into an inverted model.
    npz.export_npz(paper, tmp_path / "paper.npz")
    back = AlexNet("owt", weights=tmp_path / "paper.npz", classifier_activation=None)
    assert np.array_equal(back.get_layer("fc6").kernel, kernel["inverted", "fc6"])


def test_include_top_false_drops_the_classifier(torch_case):
    path, x, _ = torch_case
    full = AlexNet("owt", weights=path)
    features = AlexNet("owt", include_top=False, weights=path)
    np.testing.assert_array_equal(features.get_layer("conv5").kernel, full.get_layer("conv5").kernel)


class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickled_code_is_refused(tmp_path, writer, capsys):
    torch = require_torch()
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"features.0.weight": torch.zeros(1), "x": Payload(str(marker))}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match="refusing to load"):
        tv.load_torchvision_state_dict(path)
    assert not marker.exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert", str(path), str(tmp_path / "out.keras")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to load" in err
    assert not marker.exists()
    # The payload is live: plain pickle would have run it.
    pickle.loads(path.read_bytes()) if writer == "pickle" else torch.load(path, weights_only=False)
    assert marker.exists()


def test_torchvision_url_and_hash():
    assert tv.TORCHVISION_URL.endswith("/alexnet-owt-7be5be79.pth")
    # torchvision names files after the first 8 hex digits of their sha256.
    assert tv.TORCHVISION_SHA256.startswith("7be5be79") and len(tv.TORCHVISION_SHA256) == 64


def test_imagenet_weights_via_get_file(torch_case, tmp_path, monkeypatch):
    path, x, ref = torch_case
    url = path.resolve().as_uri()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = AlexNet("owt", classifier_activation=None)
    weights_io.load_weights(model, "imagenet", url=url, file_hash=digest, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "models" / path.name).is_file()
    check_parity(model.predict(nhwc(x), verbose=0), ref)
    # A mirror ($ALEXNET_OWT_URL) must serve the published file: ours has another sha256.
    monkeypatch.setenv(tv.URL_ENV, url)
    monkeypatch.setattr(tv, "CACHE_DIR", str(tmp_path / "cache2"))
    with pytest.raises(UserError, match=f"does not have the expected sha256 {tv.TORCHVISION_SHA256}"):
        AlexNet("owt", weights="imagenet")
    monkeypatch.setenv(tv.URL_ENV, (tmp_path / "absent.pth").as_uri())
    with pytest.raises(UserError, match="cannot download"):
        AlexNet("owt", weights="imagenet")


REAL_PTH = os.environ.get("ALEXNET_OWT_PTH")


@pytest.mark.skipif(not REAL_PTH, reason="set ALEXNET_OWT_PTH to torchvision's alexnet-owt-7be5be79.pth")
def test_real_pretrained_weights(imagenet_samples):
    torch = require_torch()
    import torchvision

    path = pathlib.Path(REAL_PTH)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == tv.TORCHVISION_SHA256
    reference = torchvision.models.alexnet()
    reference.load_state_dict(torch.load(path, weights_only=True))
    reference.eval()
    x = np.random.default_rng(1).normal(size=(8, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = reference(torch.from_numpy(x)).numpy()
    model = AlexNet("owt", weights=path, classifier_activation=None)
    check_parity(model.predict(nhwc(x), verbose=0), ref)


# --- damaged, foreign and non-finite files (issue 13) ------------------------------------------------
def test_both_torch_save_formats_still_load(tmp_path):
    """The check that a .pth is a zip or a binary pickle lets torch's zip and legacy formats through."""
    torch = require_torch()
    from badinputs_eval import tiny_state_dict

    state = tiny_state_dict(classes=3, fill=0.5)
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    for name in ("zip.pth", "legacy.pth"):
        loaded = tv.load_torchvision_state_dict(tmp_path / name)
        assert set(loaded) == set(state)
        np.testing.assert_array_equal(loaded["classifier.6.weight"], state["classifier.6.weight"].numpy())


@pytest.mark.parametrize("content", [b"hello world\n", b"# my notes\nlearning rate 0.01\n", b"", b'{"a": 1}'])
def test_a_text_pth_is_not_a_checkpoint_not_code(tmp_path, content):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match="is not a PyTorch checkpoint") as info:
        tv.load_torchvision_state_dict(path)
    assert "code" not in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pth_is_refused_and_nothing_written(tmp_path, bad):
    torch = require_torch()
    from badinputs_eval import tiny_state_dict

    state = tiny_state_dict()
    state["features.3.bias"] = torch.tensor([bad])
    torch.save(state, tmp_path / "diverged.pth")
    with pytest.raises(UserError, match=r"non-finite weights \(NaN or inf\) in features\.3\.bias"):
        presets.convert(tmp_path / "diverged.pth", tmp_path / "out.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diverged.pth"]


def test_zero_class_pth_is_refused(tmp_path):
    torch = require_torch()
    from badinputs_eval import tiny_state_dict

    torch.save(tiny_state_dict(classes=0), tmp_path / "empty_head.pth")
    with pytest.raises(UserError, match="empty_head.pth has 0 classes"):
        presets.load_model(tmp_path / "empty_head.pth")


CONV1 = {"conv1/kernel": np.zeros((1, 1, 1, 1), np.float32), "conv1/bias": np.zeros(1, np.float32)}


@pytest.mark.parametrize(
    "entries, message",
    [
        ({**CONV1}, "does not say which AlexNet variant"),
        ({"meta/variant": "bogus", **CONV1}, "meta/variant must be one of 2012, owt, got 'bogus'"),
        ({"meta/variant": [["owt"]], **CONV1}, r"meta/variant must be one of 2012, owt, got \[\['owt'\]\]"),
        ({"meta/variant": 2012, **CONV1}, "meta/variant must be one of"),
        ({"meta/variant": "owt", "meta/dropout": "paper", **CONV1}, "no meta/dropout_rate"),
        (
            {"meta/variant": "owt", "meta/dropout": "paper", "meta/dropout_rate": "x", **CONV1},
            "meta/dropout_rate must be one number in",
        ),
        (
            {"meta/variant": "owt", "meta/dropout": "paper", "meta/dropout_rate": 1.5, **CONV1},
            "meta/dropout_rate must be one number in",
        ),
        ({"meta/variant": "owt", "meta/dropout_rate": 0.5, **CONV1}, "meta/dropout_rate without meta/dropout"),
        (
            {"meta/variant": "owt", "meta/dropout": "bogus", "meta/dropout_rate": 0.5, **CONV1},
            "meta/dropout must be one of paper, inverted",
        ),
        ({"meta/variant": "owt", "meta/class_wnids": [1, 2], **CONV1}, "meta/class_wnids must be a list of strings"),
        (
            {
                "meta/variant": "owt",
                "meta/class_wnids": ["n01440764"],
                "fc8/kernel": np.zeros((4096, 3)),
                "fc8/bias": np.zeros(3),
            },
            "does not describe an AlexNet this package builds: 1 class_wnids given for 3",
        ),
        ({"meta/variant": "owt", "fc8/kernel": np.zeros((4096, 0)), "fc8/bias": np.zeros(0)}, "0 classes"),
        ({"meta/variant": "owt", "meta/colour": "red", **CONV1}, "unknown metadata meta/colour"),
        (
            {"meta/variant": "owt", "conv1/kernel": np.full(1, np.nan), "conv1/bias": np.zeros(1)},
            r"non-finite weights \(NaN or inf\) in conv1/kernel",
        ),
    ],
)
def test_npz_metadata_is_checked(tmp_path, entries, message):
    path = tmp_path / "w.npz"
    with open(path, "wb") as f:
        np.savez(f, **{key: np.asarray(value) for key, value in entries.items()})
    with pytest.raises(UserError, match=message):
        presets.load_model(path)


def test_not_an_npz(tmp_path):
    for content in (b"", b"hello world\n"):
        (tmp_path / "w.npz").write_bytes(content)
        with pytest.raises(UserError, match=r"w\.npz is not an \.npz file"):
            presets.load_model(tmp_path / "w.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))  # an .npy under an .npz name
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(UserError, match="is not an .npz file"):
        presets.load_model(tmp_path / "plain.npz")


def test_convert_refuses_foreign_and_nan_keras_and_folders(tmp_path):
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "vector.keras")
    with pytest.raises(UserError, match="holds a Sequential, not an AlexNet"):
        presets.convert(tmp_path / "vector.keras", tmp_path / "vector.npz")
    features = AlexNet("owt", include_top=False)  # conv layers only: a small .keras file
    conv3 = features.get_layer("conv3")
    conv3.set_weights([conv3.get_weights()[0], np.full(384, np.nan, np.float32)])
    features.save(tmp_path / "diverged.keras")
    with pytest.raises(UserError, match="refusing to convert .*diverged.keras: its weights are not finite"):
        presets.convert(tmp_path / "diverged.keras", tmp_path / "diverged.npz")
    (tmp_path / "text.keras").write_text("hello world\n")
    with pytest.raises(UserError, match="not a valid .keras file"):
        presets.load_model(tmp_path / "text.keras")
    (tmp_path / "folder.keras").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        presets.load_model(tmp_path / "folder.keras")
    with pytest.raises(UserError, match="is a directory"):
        presets.convert(tmp_path / "vector.keras", tmp_path / "folder.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "diverged.keras",
        "folder.keras",
        "text.keras",
        "vector.keras",
    ]


def test_convert_leaves_no_temporary_files(converted):
    assert sorted(p.name for p in converted.iterdir()) == ["owt.keras", "owt.npz", "owt.weights.h5"]
