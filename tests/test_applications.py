"""Keras Applications conventions: unknown keywords, `input_tensor`, and `preprocess_input`'s types and specs."""

import keras
import numpy as np
import pytest
from keras.applications import vgg16

from alexnet_keras import AlexNet, load_model
from alexnet_keras.preprocessing import preprocess_input, with_mean_image

# Hand-computed: a white pixel (255, 255, 255) under each spec.
PAPER_WHITE = [255 - 123.68, 255 - 116.779, 255 - 103.939]  # minus the mean pixel
TORCHVISION_WHITE = [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]  # [0, 1], mean, std


def _raised(build):
    try:
        build()
    except Exception as e:  # noqa: BLE001 -- the reference's exception type is what is compared
        return e
    return None


# --- unknown keywords ---------------------------------------------------------------
def test_unknown_keywords_are_rejected_as_keras_applications_do():
    theirs = _raised(lambda: vgg16.VGG16(weights=None, bogus_option="x"))
    ours = _raised(lambda: AlexNet(bogus_option="x"))
    assert type(ours) is type(theirs) is TypeError
    assert str(ours) == "AlexNet() got an unexpected keyword argument 'bogus_option'"
    assert AlexNet("owt", include_top=False, trainable=False).trainable is False  # keras.Model's own still pass


# --- input_tensor -------------------------------------------------------------------
def test_input_tensor_builds_the_model_on_that_tensor_like_keras_applications():
    keras.utils.set_random_seed(0)
    image = keras.Input((99, 99, 3), name="pixels")
    scaled = keras.layers.Rescaling(1 / 255.0, name="scale")(image)
    theirs = vgg16.VGG16(weights=None, include_top=False, input_tensor=scaled)
    model = AlexNet(include_top=False, input_tensor=scaled)
    assert theirs.inputs[0] is image and model.inputs[0] is image  # the source input, not the tensor
    assert model.get_layer("scale") is not None

    # The same as AlexNet on pre-scaled images, with the same weights.
    plain = AlexNet(include_top=False, input_shape=(99, 99, 3))
    plain.set_weights(model.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 99, 99, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(plain(x / 255.0)), rtol=1e-5, atol=1e-6
    )


def test_input_tensor_that_is_an_input_keeps_the_config_round_trip():
    image = keras.Input((99, 99, 3))
    model = AlexNet(include_top=False, input_tensor=image)
    assert model.inputs[0] is image
    again = AlexNet.from_config(model.get_config())
    assert again.input_shape == model.input_shape == (None, 99, 99, 3)


def test_a_model_on_layers_before_it_saves_as_a_plain_functional_model(tmp_path):
    image = keras.Input((99, 99, 3))
    model = AlexNet(include_top=False, input_tensor=keras.layers.Rescaling(1 / 255.0)(image))
    with pytest.raises(NotImplementedError, match=r"keras.Model\(model.input, model.output\)"):
        model.get_config()
    keras.Model(model.input, model.output).save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(1).uniform(0, 255, (1, 99, 99, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), rtol=1e-6)


def test_bad_input_tensors_are_rejected():
    array = np.zeros((1, 99, 99, 3), "float32")
    theirs = _raised(lambda: vgg16.VGG16(weights=None, include_top=False, input_tensor=array))
    ours = _raised(lambda: AlexNet(include_top=False, input_tensor=array))
    assert type(ours) is type(theirs) is ValueError
    assert "must be a Keras tensor" in str(ours)
    with pytest.raises(ValueError, match="does not match input_tensor's shape"):
        AlexNet(include_top=False, input_shape=(128, 128, 3), input_tensor=keras.Input((99, 99, 3)))
    with pytest.raises(ValueError, match="227x227"):  # the 2012 top needs a 6x6 pool5, as with input_shape
        AlexNet(input_tensor=keras.Input((99, 99, 3)))


# --- preprocess_input -----------------------------------------------------------------
def test_preprocess_input_returns_numpy_for_numpy_as_vgg16_does():
    x = np.full((1, 2, 2, 3), 255.0, "float64")
    kept = x.copy()
    assert isinstance(vgg16.preprocess_input(x.copy()), np.ndarray)
    out = preprocess_input(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], PAPER_WHITE, rtol=1e-6)
    np.testing.assert_array_equal(x, kept)  # not changed in place (vgg16's is, for float input)
    pixels = np.full((2, 2, 3), 255, np.uint8)
    np.testing.assert_allclose(preprocess_input(pixels, "torchvision")[0, 0], TORCHVISION_WHITE, rtol=1e-5)


def test_preprocess_input_returns_a_backend_tensor_for_a_tensor_as_vgg16_does():
    tensor = keras.ops.convert_to_tensor(np.full((1, 2, 2, 3), 255.0, "float32"))
    theirs, ours = vgg16.preprocess_input(tensor), preprocess_input(tensor)
    assert type(ours) is type(theirs) and keras.ops.is_tensor(ours) and not isinstance(ours, np.ndarray)
    assert keras.backend.standardize_dtype(ours.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours)[0, 0, 0], PAPER_WHITE, rtol=1e-6)


def test_preprocess_input_takes_the_models_own_spec_or_the_variant():
    white = np.full((1, 4, 4, 3), 255.0, "float32")
    owt = AlexNet("owt", include_top=False, input_shape=(64, 64, 3))
    np.testing.assert_allclose(preprocess_input(white, model=owt)[0, 0, 0], TORCHVISION_WHITE, rtol=1e-5)
    np.testing.assert_allclose(preprocess_input(white, variant="owt")[0, 0, 0], TORCHVISION_WHITE, rtol=1e-5)
    np.testing.assert_allclose(preprocess_input(white, variant="2012")[0, 0, 0], PAPER_WHITE, rtol=1e-6)

    # A model that carries a mean image: 255 minus the mean image's value, 100.
    spec = with_mean_image("paper", np.full((256, 256, 3), 100.0))
    net = AlexNet(include_top=False, input_shape=(99, 99, 3), preprocessing=spec)
    out = preprocess_input(np.full((1, 99, 99, 3), 255.0, "float32"), model=net)
    np.testing.assert_allclose(out, 155.0)


def test_preprocess_input_refuses_ambiguous_or_unknown_specs():
    x = np.zeros((1, 1, 3), "float32")
    with pytest.raises(ValueError, match="one of spec, model and variant"):
        preprocess_input(x, "paper", variant="owt")
    with pytest.raises(ValueError, match="variant must be one of"):
        preprocess_input(x, variant="2014")
    with pytest.raises(ValueError, match="carries no preprocessing spec"):
        preprocess_input(x, model=keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
