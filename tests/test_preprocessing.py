"""alexnet_keras.preprocessing: the specs and the one normalisation, for tf.data, NumPy and Keras tensors."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from alexnet_keras.constants import DEFAULT_PREPROCESSING, INPUT_SIZE
from alexnet_keras.preprocessing import get_spec, mean_image, normalize, preprocess_input, with_mean_image


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("name", ["paper", "torchvision"])
def test_normalize_matches_numpy(name):
    spec = get_spec(name)
    image = noise((5, 6, 3)).astype(np.float32)
    expected = (image * spec["scale"] - np.array(spec["mean"])) / np.array(spec["std"])
    # a tf tensor, as inside the tf.data pipelines
    np.testing.assert_allclose(normalize(tf.constant(image), name).numpy(), expected, rtol=1e-5, atol=1e-4)
    # a NumPy array, and a Keras backend tensor through preprocess_input: the same numbers
    np.testing.assert_allclose(normalize(image, spec), expected, rtol=1e-5, atol=1e-4)
    out = ops.convert_to_numpy(preprocess_input(image, name))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_spec_input_sizes_follow_the_variants():
    for variant, name in DEFAULT_PREPROCESSING.items():
        assert get_spec(name)["input_size"] == INPUT_SIZE[variant]
    assert (get_spec("paper")["input_size"], get_spec("torchvision")["input_size"]) == (227, 224)


def test_unknown_spec_is_refused():
    with pytest.raises(ValueError, match="unknown preprocessing 'caffe'"):
        normalize(np.zeros(3, np.float32), "caffe")


def test_normalize_with_a_mean_image_on_every_kind_of_value():
    """A mean-image spec subtracts the centre crop of its mean ([CC] convdata.py:137), through the same normalize."""
    mean = np.random.default_rng(1).uniform(0.0, 255.0, (256, 256, 3))
    spec = with_mean_image("paper", mean)
    stored = mean.astype(np.float16).astype(np.float32)  # what the spec keeps
    image = noise((3, 227, 227, 3)).astype(np.float32)
    expected = image - stored[14:241, 14:241]  # floor((256 - 227) / 2) = 14
    np.testing.assert_allclose(mean_image(spec), stored)
    np.testing.assert_allclose(normalize(tf.constant(image), spec).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(normalize(image, spec), expected, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(preprocess_input(image, spec)), expected, atol=1e-4)
    # a tensor whose height and width are unknown cannot be matched to a crop of the mean
    unknown = tf.function(lambda x: normalize(x, spec), input_signature=[tf.TensorSpec([None, None, 3])])
    with pytest.raises(ValueError, match="known size"):
        unknown.get_concrete_function()
