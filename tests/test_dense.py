"""kerasnlp4su.layers.Dense: Keras's Dense computed on a 2-D view of its input."""

import keras
import numpy as np
import pytest

from kerasnlp4su.backend import gelu_tanh
from kerasnlp4su.layers import Dense

from backend_utils import gradient, to_np
from layer_harness import check_layer

pytestmark = pytest.mark.backend_core  # all of it is backend-specific numerics

RNG = np.random.default_rng(0)


def numpy_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6), (2, 3, 5, 6)])
def test_dense_matches_numpy_for_any_rank(shape):
    layer = Dense(7, activation=gelu_tanh)
    layer.build(shape)
    bias = RNG.standard_normal(7).astype("float32")
    layer.bias.assign(bias)
    kernel = to_np(layer.kernel)
    x = RNG.standard_normal(shape).astype("float32")
    y = to_np(layer(x))
    expected = numpy_gelu_tanh(x.astype("float64") @ kernel + bias)
    assert y.shape == shape[:-1] + (7,)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_dense_handles_unknown_leading_axes_in_a_model():
    # A functional model has unknown batch and length: the reshapes must
    # use the run-time shape, and two lengths must both come out right.
    x = keras.Input((None, 6))
    layer = Dense(3)
    model = keras.Model(x, layer(x))
    for length in (2, 5):
        inputs = RNG.standard_normal((3, length, 6)).astype("float32")
        out = model.predict(inputs, verbose=0)
        expected = inputs @ to_np(layer.kernel) + to_np(layer.bias)
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_dense_input_gradient_matches_keras_dense():
    ours, theirs = Dense(4, activation="tanh"), keras.layers.Dense(4, activation="tanh")
    ours.build((None, 3, 5))
    theirs.build((None, 3, 5))
    for a, b in zip(ours.weights, theirs.weights):
        b.assign(RNG.standard_normal(a.shape).astype("float32"))
        a.assign(b)
    x = RNG.standard_normal((2, 3, 5)).astype("float32")
    np.testing.assert_allclose(gradient(lambda t: keras.ops.sum(ours(t) ** 2), x),
                               gradient(lambda t: keras.ops.sum(theirs(t) ** 2), x), atol=1e-5)


def test_dense_keeps_lora_and_masks():
    layer = Dense(3)
    layer.build((None, None, 4))
    layer.enable_lora(2)
    layer.lora_kernel_b.assign(RNG.standard_normal((2, 3)).astype("float32"))
    x = RNG.standard_normal((2, 5, 4)).astype("float32")
    merged = to_np(layer.kernel)  # base kernel + lora_a @ lora_b
    assert not np.allclose(merged, to_np(layer._kernel))
    np.testing.assert_allclose(to_np(layer(x)), x @ merged + to_np(layer.bias), atol=1e-5)
    ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
    assert Dense(3)(hidden)._keras_mask is not None  # the padding mask flows through


def test_layer_harness():
    check_layer(Dense, {"units": 3, "activation": "tanh"}, RNG.standard_normal((2, 4, 5)).astype("float32"),
                (2, 4, 3))
