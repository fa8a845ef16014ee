"""The mean image ([P] §2, [CC] data_mean): streamed over a training set, carried by the spec, subtracted as [CC] did."""

import base64
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_keras import data
from alexnet_keras.data.synthetic import synthetic_square
from alexnet_keras.data.transforms import center_crop, decode_image, resize_short_side
from alexnet_keras.errors import UserError
from alexnet_keras.models import AlexNet
from alexnet_keras.models.presets import load_model
from alexnet_keras.preprocessing import (
    IMAGENET_MEAN_RGB,
    MEAN_IMAGE_FILE,
    get_spec,
    has_mean_image,
    load_mean_image,
    mean_image,
    normalize,
    save_mean_image,
    with_mean_image,
)

# [CC] convdata.py:137: the centre crop of the 256x256 mean, border (256 - 227) // 2 = 14 for the 2012 net.
CC_BORDER = 14


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path, array, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path, fmt)
    return path


def square(contents):
    """Reference preprocessing of one file: decode, short side 256, centre 256x256, float64."""
    image = resize_short_side(decode_image(contents), 256)
    return center_crop(image, 256).numpy().astype(np.float64)


def a_mean(seed=0):
    return np.random.default_rng(seed).uniform(60.0, 200.0, (256, 256, 3))


# --- streaming --------------------------------------------------------------------
def test_streamed_mean_equals_numpy_on_a_small_folder(tmp_path):
    root = tmp_path / "set"
    files = [
        save(root / "train/a/1.jpg", noise((300, 400, 3), 1), "JPEG"),
        save(root / "train/a/2.png", noise((256, 256, 3), 2), "PNG"),
        save(root / "train/b/3.png", noise((513, 270, 3), 3), "PNG"),
        save(root / "train/b/4.jpg", noise((260, 700, 3), 4), "JPEG"),
        save(root / "train/b/5.png", noise((299, 301, 3), 5), "PNG"),
    ]
    (root / "train/b/broken.jpg").write_bytes(b"not an image")  # skipped, as data.load skips it
    save(root / "val/a/v.png", np.full((256, 256, 3), 255), "PNG")  # the val split must not count
    save(root / "val/b/v.png", np.full((256, 256, 3), 255), "PNG")
    expected = np.mean([square(f.read_bytes()) for f in files], axis=0)
    with pytest.warns(UserWarning, match="skipped 1 image"):
        streamed = data.compute_mean_image(str(root), batch_size=2)  # 2 + 2 + a last batch of 1
    assert streamed.shape == (256, 256, 3) and streamed.dtype == np.float64
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=1e-4)


def test_mean_of_flat_images_is_the_mean_of_their_colours(tmp_path):
    colours = [(10, 20, 30), (200, 100, 0), (91, 92, 93)]  # bilinear resizing keeps a flat image flat
    for i, (colour, size) in enumerate(zip(colours, [(256, 300), (400, 257), (333, 333)], strict=True)):
        save(tmp_path / f"set/train/c{i % 2}/{i}.png", np.full((*size, 3), colour), "PNG")
    streamed = data.compute_mean_image(str(tmp_path / "set"), batch_size=64)
    hand = np.array([(10 + 200 + 91) / 3, (20 + 100 + 92) / 3, (30 + 0 + 93) / 3])
    np.testing.assert_allclose(streamed, np.broadcast_to(hand, (256, 256, 3)), rtol=0, atol=1e-4)


def test_streamed_mean_of_the_synthetic_set_and_of_a_dataset():
    n, classes, seed = 7, 3, 5
    # int64 indices, as tf.data.Dataset.range gives data.load (the stateless seeds depend on the dtype)
    squares = [synthetic_square(tf.constant(i, tf.int64), classes, 256, seed, 1)[0].numpy() for i in range(n)]
    expected = np.mean(squares, axis=0, dtype=np.float64)
    got = data.compute_mean_image(
        "synthetic", batch_size=3, seed=seed, synthetic_classes=classes, synthetic_train_examples=n
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # a tf.data dataset of (image, label) pairs of different sizes
    images = [noise((280, 260, 3), 7), noise((256, 512, 3), 8), noise((300, 300, 3), 9)]
    ds = tf.data.Dataset.from_generator(
        lambda: ((im, 0) for im in images),
        output_signature=(tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32)),
    )
    expected = np.mean([square(tf.io.encode_png(im)) for im in images], axis=0)
    np.testing.assert_allclose(data.compute_mean_image(ds, batch_size=2), expected, rtol=0, atol=1e-4)


def test_an_empty_set_is_a_user_error():
    ds = tf.data.Dataset.from_tensor_slices(tf.zeros([0, 8, 8, 3], tf.uint8))
    with pytest.raises(UserError, match="no training images"):
        data.compute_mean_image(ds)


# --- the spec ---------------------------------------------------------------------
def test_mean_pixel_stays_the_default():
    assert get_spec("paper")["mean"] == list(IMAGENET_MEAN_RGB) and not has_mean_image("paper")
    assert AlexNet(include_top=False).preprocessing == get_spec("paper")


def test_spec_stores_the_mean_image_as_float16_npy_in_base64():
    mean = a_mean()
    spec = with_mean_image("paper", mean)
    assert has_mean_image(spec) and set(spec["mean"]) == {"image"}
    raw = base64.b64decode(spec["mean"]["image"])
    # hand-computed: a 128-byte .npy header + 256*256*3 float16 values of 2 bytes; base64 is 4 chars per 3 bytes
    assert len(raw) == 128 + 256 * 256 * 3 * 2 == 393_344
    assert len(spec["mean"]["image"]) == 4 * -(-393_344 // 3) == 524_460
    stored = np.load(io.BytesIO(raw), allow_pickle=False)
    assert stored.dtype == np.float16 and stored.shape == (256, 256, 3)
    decoded = mean_image(spec)
    np.testing.assert_array_equal(decoded, mean.astype(np.float16).astype(np.float32))
    assert np.max(np.abs(decoded - mean)) <= 1 / 16  # float16's half-spacing for values in [128, 256)
    # a spec that scales pixels to [0, 1] keeps the mean in the same units as its x * scale
    np.testing.assert_allclose(mean_image(with_mean_image("torchvision", mean)), mean / 255.0, atol=2.5e-4)


def test_bad_mean_images_are_refused():
    with pytest.raises(UserError, match=r"shape \(227, 227, 3\).*needs \(256, 256, 3\)"):
        with_mean_image("paper", np.zeros((227, 227, 3)))
    with pytest.raises(UserError, match="non-finite"):
        with_mean_image("paper", np.full((256, 256, 3), np.nan))
    spec = get_spec("paper")
    spec["mean"] = {"image": "!!not base64!!"}
    with pytest.raises(UserError, match="mean image cannot be read"):
        normalize(np.zeros((227, 227, 3), np.float32), spec)
    small = io.BytesIO()
    np.save(small, np.zeros((8, 8, 3), np.float16))
    spec["mean"] = {"image": base64.b64encode(small.getvalue()).decode()}
    with pytest.raises(UserError, match=r"not finite float16 \(256, 256, 3\)"):
        mean_image(spec)


# --- what is subtracted, where ------------------------------------------------------
def test_normalize_subtracts_the_centre_crop_as_cc_did():
    spec = with_mean_image("paper", a_mean(1))
    m = mean_image(spec)
    centre = m[CC_BORDER : CC_BORDER + 227, CC_BORDER : CC_BORDER + 227]
    patch = noise((2, 227, 227, 3), 3).astype(np.float32)
    np.testing.assert_allclose(normalize(patch, spec), patch - centre, atol=1e-4)
    np.testing.assert_allclose(normalize(tf.constant(patch), spec).numpy(), patch - centre, atol=1e-4)
    squares = noise((256, 256, 3), 4).astype(np.float32)  # a 256 square (ten-crop input) gets the whole mean
    np.testing.assert_allclose(normalize(squares, spec), squares - m, atol=1e-4)
    owt = with_mean_image("torchvision", a_mean(1))  # 224: border 16
    centre = mean_image(owt)[16:240, 16:240]
    x = noise((224, 224, 3), 5).astype(np.float32)
    np.testing.assert_allclose(
        normalize(x, owt), (x / 255.0 - centre) / np.float32(get_spec(owt)["std"]), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="known size up to 256x256"):
        normalize(np.zeros((300, 300, 3), np.float32), spec)


def test_training_crops_and_eval_centre_crops_subtract_the_centre_of_the_mean():
    spec = with_mean_image("paper", a_mean(2))
    no_mean = get_spec("paper") | {"mean": [0.0, 0.0, 0.0]}
    centre = mean_image(spec)[CC_BORDER : CC_BORDER + 227, CC_BORDER : CC_BORDER + 227]
    image = tf.constant(noise((300, 280, 3), 6))
    for seed in ([1, 2], [3, 4], [5, 6]):  # random crops anywhere, flipped or not: always the centre crop
        seed = tf.constant(seed, tf.int64)
        got = data.train_transform(image, spec, seed).numpy()
        np.testing.assert_allclose(got, data.train_transform(image, no_mean, seed).numpy() - centre, atol=1e-3)
    got = data.eval_transform(image, spec).numpy()
    np.testing.assert_allclose(got, data.eval_transform(image, no_mean).numpy() - centre, atol=1e-3)


# --- it travels with the model --------------------------------------------------------
def test_mean_image_spec_round_trips_through_config_and_keras_file(tmp_path):
    spec = with_mean_image("paper", a_mean(3))
    model = AlexNet(include_top=False, preprocessing=spec)
    config = model.get_config()
    assert config["preprocessing"] == spec
    assert AlexNet.from_config(config).preprocessing == spec
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = load_model(path)  # the package's safe-mode loader
    assert loaded.preprocessing == spec
    np.testing.assert_array_equal(mean_image(loaded.preprocessing), mean_image(spec))


def test_run_directory_file_round_trips_exactly(tmp_path):
    mean = a_mean(4)
    path = tmp_path / MEAN_IMAGE_FILE
    save_mean_image(mean, str(path))
    assert os.listdir(tmp_path) == [MEAN_IMAGE_FILE]  # no temp file left behind
    again = load_mean_image(str(path))
    assert again.dtype == np.float64
    np.testing.assert_array_equal(again, mean)
    assert with_mean_image("paper", again) == with_mean_image("paper", mean)  # a resumed run gets the same spec
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read the mean image"):
        load_mean_image(str(path))
    with pytest.raises(UserError, match="non-finite"):
        save_mean_image(np.full((256, 256, 3), np.inf), str(tmp_path / "x.npy"))
    assert not (tmp_path / "x.npy").exists()
