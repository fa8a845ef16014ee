"""Bad-input cases: eval (evaluate, compete, convert, predict, show). See badinput.py for the fields.

The fixtures are tiny and made in the test's tmp folder: torchvision-keyed state
dicts with 1x1 layers, .npz files of a few entries, 8x8 Keras models.
"""

import numpy as np

from badinput import case

# torchvision AlexNet's layers, as in its state dict (convert.TORCHVISION_LAYERS).
_TORCH_CONVS = ("features.0", "features.3", "features.6", "features.8", "features.10")
_TORCH_LINEARS = ("classifier.1", "classifier.4", "classifier.6")


def tiny_state_dict(classes=3, fill=0.0):
    """torchvision AlexNet's keys with 1-channel layers: loads and maps, then fails only on shapes."""
    import torch

    state = {}
    for prefix in _TORCH_CONVS:
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = torch.full((1, 1, 1, 1), fill), torch.full((1,), fill)
    for prefix in _TORCH_LINEARS:
        rows = classes if prefix == "classifier.6" else 1
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = torch.full((rows, 1), fill), torch.full((rows,), fill)
    return state


def save_pth(path, state):
    import torch

    torch.save(state, path)
    return path


def save_npz(path, **entries):
    """An .npz whose keys may hold '/', as export_npz writes them (`meta__variant` -> `meta/variant`)."""
    with open(path, "wb") as f:
        np.savez(f, **{key.replace("__", "/"): np.asarray(value) for key, value in entries.items()})
    return path


_CONV1 = {"conv1__kernel": np.zeros((1, 1, 1, 1), np.float32), "conv1__bias": np.zeros(1, np.float32)}


def plain_keras(path, input_shape=(8, 8, 3), units=10, fill=None):
    """A one-Dense Keras model saved at `path`; `fill` sets every weight (NaN: a diverged model)."""
    import keras

    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(units, "softmax")])
    if fill is not None:
        model.set_weights([np.full_like(w, fill) for w in model.get_weights()])
    model.save(path)
    return path


def features_npz(path):
    """The 2012 network without its classifier (conv1-conv5, ~9 MB): a real model for `show filters`."""
    from alexnet_keras import AlexNet, export_npz

    export_npz(AlexNet("2012", include_top=False), path)
    return path


def png(path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    return path


def _files(**makers):
    """A setup that makes each named file in tmp and returns {name: path}."""

    def setup(tmp):
        return {name: str(make(tmp / name.replace("_", "."))) for name, make in makers.items()}

    return setup


def _text(content):
    def make(path):
        path.write_bytes(content)
        return path

    return make


def _folder(path):
    path.mkdir()
    return path


CASES = [
    # --- evaluate / compete ---------------------------------------------------
    case(
        "evaluate-non-alexnet-keras",
        ["evaluate", "--model", "{vector_keras}", "--data", "synthetic"],
        "is not an image classifier",
        setup=_files(vector_keras=lambda p: plain_keras(p, input_shape=(4,), units=2)),
    ),
    case(
        "evaluate-nan-model",
        ["evaluate", "--model", "{best_keras}", "--data", "synthetic"],
        "non-finite outputs (NaN or inf) for 128 of 128 images",
        setup=_files(best_keras=lambda p: plain_keras(p, fill=np.nan)),
    ),
    case(
        "compete-nan-model",
        ["compete", "--model", "{best_keras}", "--data", "synthetic"],
        "non-finite outputs (NaN or inf) for 128 of 128 images",
        setup=_files(best_keras=lambda p: plain_keras(p, fill=np.nan)),
    ),
    case(
        "evaluate-text-keras",
        ["evaluate", "--model", "{m_keras}", "--data", "synthetic"],
        "not a valid .keras file",
        setup=_files(m_keras=_text(b"hello world\n")),
    ),
    case(
        "evaluate-folder-as-model",
        ["evaluate", "--model", "{m_keras}", "--data", "synthetic"],
        "is a directory",
        setup=_files(m_keras=_folder),
    ),
    case(
        "evaluate-nan-npz",
        ["evaluate", "--model", "{w_npz}", "--data", "synthetic"],
        "non-finite weights",
        setup=_files(
            w_npz=lambda p: save_npz(p, meta__variant="owt", conv1__kernel=np.full(1, np.nan), conv1__bias=np.zeros(1))
        ),
    ),
    case("compete-plot-unknown-format", ["compete", "--plot", "table.xyz"], ".xyz is not an image format"),
    case(
        "compete-plot-unknown-format-with-model",
        ["compete", "--model", "{m_keras}", "--data", "synthetic", "--plot", "table.xyz"],
        ".xyz is not an image format",
        setup=_files(m_keras=plain_keras),
    ),
    # --- convert ----------------------------------------------------------------
    case(
        "convert-npz-without-metadata",
        ["convert", "{w_npz}", "out.keras"],
        "does not say which AlexNet variant",
        setup=_files(w_npz=lambda p: save_npz(p, **_CONV1)),
    ),
    case(
        "convert-npz-bad-variant",
        ["convert", "{w_npz}", "out.keras"],
        "meta/variant must be one of 2012, owt",
        setup=_files(w_npz=lambda p: save_npz(p, meta__variant="bogus", **_CONV1)),
    ),
    case(
        "convert-npz-variant-not-a-string",
        ["convert", "{w_npz}", "out.keras"],
        "meta/variant must be one of",
        setup=_files(w_npz=lambda p: save_npz(p, meta__variant=[["owt"]], **_CONV1)),
    ),
    case(
        "convert-npz-dropout-without-rate",
        ["convert", "{w_npz}", "out.keras"],
        "no meta/dropout_rate",
        setup=_files(w_npz=lambda p: save_npz(p, meta__variant="owt", meta__dropout="paper", **_CONV1)),
    ),
    case(
        "convert-npz-bad-dropout-rate",
        ["convert", "{w_npz}", "out.keras"],
        "meta/dropout_rate must be one number",
        setup=_files(
            w_npz=lambda p: save_npz(p, meta__variant="owt", meta__dropout="paper", meta__dropout_rate="x", **_CONV1)
        ),
    ),
    case(
        "convert-npz-bad-dropout-mode",
        ["convert", "{w_npz}", "out.keras"],
        "meta/dropout must be one of",
        setup=_files(
            w_npz=lambda p: save_npz(p, meta__variant="owt", meta__dropout="bogus", meta__dropout_rate=0.5, **_CONV1)
        ),
    ),
    case(
        "convert-npz-wnids-for-other-classes",
        ["convert", "{w_npz}", "out.keras"],
        "1 class_wnids given for 3 classes",
        setup=_files(
            w_npz=lambda p: save_npz(
                p,
                meta__variant="owt",
                meta__class_wnids=["n01440764"],
                fc8__kernel=np.zeros((4096, 3)),
                fc8__bias=np.zeros(3),
            )
        ),
    ),
    case(
        "convert-npz-unknown-metadata",
        ["convert", "{w_npz}", "out.keras"],
        "unknown metadata meta/colour",
        setup=_files(w_npz=lambda p: save_npz(p, meta__variant="owt", meta__colour="red", **_CONV1)),
    ),
    case(
        "convert-text-npz",
        ["convert", "{w_npz}", "out.keras"],
        "is not an .npz file",
        setup=_files(w_npz=_text(b"hello world\n")),
    ),
    case(
        "convert-empty-npz", ["convert", "{w_npz}", "out.keras"], "is not an .npz file", setup=_files(w_npz=_text(b""))
    ),
    case(
        "convert-pth-zero-classes",
        ["convert", "{w_pth}", "out.keras"],
        "0 classes",
        setup=_files(w_pth=lambda p: save_pth(p, tiny_state_dict(classes=0))),
    ),
    case(
        "convert-nan-pth",
        ["convert", "{w_pth}", "out.keras"],
        "non-finite weights (NaN or inf) in features.0.weight",
        setup=_files(w_pth=lambda p: save_pth(p, tiny_state_dict(fill=float("nan")))),
    ),
    case(
        "convert-text-pth",
        ["convert", "{w_pth}", "out.keras"],
        "is not a PyTorch checkpoint",
        setup=_files(w_pth=_text(b"hello world\n")),
    ),
    case(
        "convert-notes-pth-is-not-code",
        ["convert", "{w_pth}", "out.keras"],
        "is not a PyTorch checkpoint",
        setup=_files(w_pth=_text(b"# my notes\nlearning rate 0.01\n")),
    ),
    case(
        "convert-empty-pth",
        ["convert", "{w_pth}", "out.keras"],
        "is not a PyTorch checkpoint",
        setup=_files(w_pth=_text(b"")),
    ),
    case(
        "convert-folder-as-source", ["convert", "{w_pth}", "out.keras"], "is a directory", setup=_files(w_pth=_folder)
    ),
    case(
        "convert-folder-as-destination",
        ["convert", "{w_pth}", "{out_keras}"],
        "is a directory",
        setup=_files(w_pth=lambda p: save_pth(p, tiny_state_dict()), out_keras=_folder),
    ),
    case(
        "convert-non-alexnet-keras",
        ["convert", "{m_keras}", "out.npz"],
        "not an AlexNet",
        setup=_files(m_keras=lambda p: plain_keras(p, input_shape=(4,), units=2)),
    ),
    case(
        "convert-text-keras",
        ["convert", "{m_keras}", "out.npz"],
        "not a valid .keras file",
        setup=_files(m_keras=_text(b"hello world\n")),
    ),
    # --- predict ------------------------------------------------------------------
    case(
        "predict-text-keras",
        ["predict", "{img_png}", "--model", "{m_keras}"],
        "not a valid .keras file",
        setup=_files(img_png=png, m_keras=_text(b"hello world\n")),
    ),
    case(
        "predict-npz-bad-variant",
        ["predict", "{img_png}", "--weights", "{w_npz}"],
        "meta/variant must be one of",
        setup=_files(img_png=png, w_npz=lambda p: save_npz(p, meta__variant="bogus", **_CONV1)),
    ),
    case(
        "predict-npz-without-metadata",
        ["predict", "{img_png}", "--weights", "{w_npz}"],
        "does not say which AlexNet variant",
        setup=_files(img_png=png, w_npz=lambda p: save_npz(p, **_CONV1)),
    ),
    case(
        "predict-pth-zero-classes",
        ["predict", "{img_png}", "--weights", "{w_pth}"],
        "0 classes",
        setup=_files(img_png=png, w_pth=lambda p: save_pth(p, tiny_state_dict(classes=0))),
    ),
    case(
        "predict-nan-pth",
        ["predict", "{img_png}", "--weights", "{w_pth}"],
        "non-finite weights",
        setup=_files(img_png=png, w_pth=lambda p: save_pth(p, tiny_state_dict(fill=float("nan")))),
    ),
    case(
        "predict-text-pth",
        ["predict", "{img_png}", "--weights", "{w_pth}"],
        "is not a PyTorch checkpoint",
        setup=_files(img_png=png, w_pth=_text(b"hello world\n")),
    ),
    case(
        "predict-non-alexnet-keras",
        ["predict", "{img_png}", "--model", "{m_keras}"],
        "has no preprocessing spec",
        setup=_files(img_png=png, m_keras=plain_keras),
    ),
    case(
        "predict-folder-as-model",
        ["predict", "{img_png}", "--model", "{m_keras}"],
        "is a directory",
        setup=_files(img_png=png, m_keras=_folder),
    ),
    case(
        "predict-folder-as-image",
        ["predict", "{img_png}", "--weights", "{w_pth}"],
        "is a directory",
        setup=_files(img_png=_folder, w_pth=lambda p: save_pth(p, tiny_state_dict())),
    ),
    # --- show filters ----------------------------------------------------------------
    case(
        "show-filters-unknown-format",
        ["show", "filters", "--model", "{w_npz}", "--out", "fig3.xyz"],
        ".xyz is not an image format",
        setup=_files(w_npz=features_npz),
    ),
    case(
        "show-filters-folder-as-out",
        ["show", "filters", "--model", "{w_npz}", "--out", "{out}"],
        "is a directory",
        setup=_files(w_npz=features_npz, out=_folder),
    ),
    case(
        "show-filters-text-pth",
        ["show", "filters", "--model", "{w_pth}", "--out", "fig3.png"],
        "is not a PyTorch checkpoint",
        setup=_files(w_pth=_text(b"hello world\n")),
    ),
    case(
        "show-filters-non-conv-model",
        ["show", "filters", "--model", "{m_keras}", "--out", "fig3.png"],
        "no conv1 layer",
        setup=_files(m_keras=plain_keras),
    ),
    # --- show curves -------------------------------------------------------------------
    case(
        "show-curves-missing-run-dir",
        ["show", "curves", "--run-dir", "no-such-run"],
        "run directory no-such-run not found",
    ),
    case(
        "show-curves-no-history",
        ["show", "curves", "--run-dir", "{run}"],
        "has no history.csv",
        setup=_files(run=_folder),
    ),
    case(
        "show-curves-foreign-history",
        ["show", "curves", "--run-dir", "{run}"],
        "not a history this package wrote",
        setup=lambda tmp: {"run": str(_history(tmp / "run", b"step,loss\n1,0.5\n"))},
    ),
    case(
        "show-curves-bad-out",
        ["show", "curves", "--run-dir", "{run}", "--out", "curves.xyz"],
        ".xyz is not an image format",
        setup=lambda tmp: {"run": str(_history(tmp / "run", b"epoch,loss\n1,0.5\n"))},
    ),
]


def _history(run, content):
    run.mkdir()
    (run / "history.csv").write_bytes(content)
    return run
