"""The checks every layer and model gets, after KerasHub's `TestCase` (keras_hub/src/tests/test_case.py).

* `run_serialization_test`: `get_config` survives JSON and `from_config`, and Keras'
  own serialize/deserialize finds the registered class.
* `run_layer_test`: serialization, build, symbolic and eager calls agree on the
  shape (and `compute_output_shape`), optionally the expected values, one training
  step through `fit`'s machinery that moves every weight (gradients reach the input),
  and dtype policies (compute and variable dtypes).
* `run_model_saving_test`: `model.save`, then `keras.saving.load_model` in safe mode
  and without `custom_objects`, gives the same class, config and outputs.
* `run_model_test`: the model analogue of `run_layer_test` (KerasHub's `run_backbone_test`).

Plain functions for pytest; they assert and return nothing.
"""

import json

import keras
import numpy as np
from keras import ops

PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")
# The 2012 network's layers in order, named as in the paper (plus the input and the flatten).
PAPER_NAMES = [
    "image",
    "conv1",
    "lrn1",
    "pool1",
    "conv2",
    "lrn2",
    "pool2",
    "conv3",
    "conv4",
    "conv5",
    "pool5",
    "flatten",
    "fc6",
    "drop6",
    "fc7",
    "drop7",
    "fc8",
]


def _config_text(config):
    return json.dumps(config, sort_keys=True, default=str)


def run_serialization_test(instance):
    """Config round-trips: `from_config(get_config())`, and Keras' serialize/deserialize by registered name."""
    cls, config = type(instance), instance.get_config()
    text = _config_text(config)
    json.loads(json.dumps(config, default=str))  # plain data
    assert _config_text(cls.from_config(config).get_config()) == text
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    assert serialized["registered_name"] == f"alexnet_keras>{cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls and _config_text(revived.get_config()) == text


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    *,
    expected_output=None,
    expected_trainable_weights=0,
    call_kwargs=None,
    run_training_check=True,
    run_precision_checks=True,
    precision_policies=PRECISION_POLICIES,
    atol=1e-5,
):
    """Every generic check for one layer configuration; returns nothing, asserts everything."""
    call_kwargs = call_kwargs or {}
    input_data = np.asarray(input_data, "float32")
    expected_output_shape = tuple(expected_output_shape)
    run_serialization_test(cls(**init_kwargs))

    layer = cls(**init_kwargs)  # build
    layer.build(input_data.shape)
    assert layer.built and len(layer.trainable_weights) == expected_trainable_weights
    assert tuple(layer.compute_output_shape(input_data.shape)) == expected_output_shape

    symbolic = cls(**init_kwargs)(keras.KerasTensor(input_data.shape, "float32"), **call_kwargs)
    layer = cls(**init_kwargs)
    eager = layer(input_data, **call_kwargs)
    assert tuple(symbolic.shape) == tuple(eager.shape) == expected_output_shape
    if expected_output is not None:
        np.testing.assert_allclose(ops.convert_to_numpy(eager), expected_output, atol=atol)

    if run_training_check:  # one step of fit's machinery
        # An identity Dense in front: its weights move only if gradients flow back through the layer.
        inputs = keras.Input(input_data.shape[1:])
        front = keras.layers.Dense(input_data.shape[-1], kernel_initializer="identity")(inputs)
        model = keras.Model(inputs, cls(**init_kwargs)(front))
        model.compile(optimizer="sgd", loss="mse")
        target = ops.convert_to_numpy(eager) + 1.0
        before = [ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
        loss = model.train_on_batch(input_data, target)
        assert np.isfinite(loss)
        after = [ops.convert_to_numpy(w) for w in model.trainable_weights]
        assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # the step moved every weight

    if run_precision_checks:
        for name in precision_policies:
            policy = keras.DTypePolicy(name)
            layer = cls(**{**init_kwargs, "dtype": policy})
            output = layer(input_data, **call_kwargs)
            assert keras.backend.standardize_dtype(output.dtype) == policy.compute_dtype, name
            assert all(w.dtype == policy.variable_dtype for w in layer.weights), name
            assert np.isfinite(ops.convert_to_numpy(ops.cast(output, "float32"))).all(), name
            spec = layer.compute_output_spec(keras.KerasTensor(input_data.shape, policy.compute_dtype))
            assert keras.backend.standardize_dtype(spec.dtype) == policy.compute_dtype, name


def run_model_saving_test(cls, init_kwargs, input_data, tmp_path, *, atol=1e-6):
    """`save` then `keras.saving.load_model` (safe mode, no custom_objects): same class, config and outputs."""
    model = cls(**init_kwargs)
    expected = ops.convert_to_numpy(model(input_data, training=False))
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is cls
    assert _config_text(restored.get_config()) == _config_text(model.get_config())
    np.testing.assert_allclose(ops.convert_to_numpy(restored(input_data, training=False)), expected, atol=atol)


def run_model_test(cls, init_kwargs, input_data, expected_output_shape, tmp_path, *, precision_policy="mixed_bfloat16"):
    """Serialization, eager call and `predict` shapes, saving, and a dtype policy reaching every layer."""
    input_data = np.asarray(input_data, "float32")
    expected_output_shape = tuple(expected_output_shape)
    model = cls(**init_kwargs)
    run_serialization_test(model)
    assert tuple(model(input_data).shape) == expected_output_shape
    assert model.predict(input_data, verbose=0).shape == expected_output_shape
    run_model_saving_test(cls, init_kwargs, input_data, tmp_path)

    policy = keras.DTypePolicy(precision_policy)
    mixed = cls(**{**init_kwargs, "dtype": precision_policy})
    layers = [layer for layer in mixed.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert all(layer.dtype_policy.name == precision_policy for layer in layers), [
        (layer.name, layer.dtype_policy.name) for layer in layers
    ]
    assert all(w.dtype == policy.variable_dtype for w in mixed.weights)
    output = mixed(input_data, training=False)
    assert keras.backend.standardize_dtype(output.dtype) == policy.compute_dtype
    assert tuple(output.shape) == expected_output_shape
    assert mixed.get_config()["dtype"]["config"]["name"] == precision_policy  # it survives the config
    assert cls.from_config(mixed.get_config()).layers[-1].dtype_policy.name == precision_policy
