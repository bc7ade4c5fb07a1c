"""kerasnlp4su.layers.LayerNormalization against a float64 NumPy re-derivation.

Every flag combination runs eagerly and inside a compiled functional model
(where TensorFlow's graph optimizer rewrites and fuses ops), at two lengths
through one graph; ranks 2-4, an epsilon comparable to the variance, the
input gradient against finite differences, and the float32 normalisation
under `mixed_bfloat16`.
"""

import itertools

import keras
import numpy as np
import pytest

from kerasnlp4su.layers import LayerNormalization

from backend_utils import gradient, to_np
from layer_harness import check_layer

pytestmark = pytest.mark.backend_core  # all of it is backend-specific numerics

RNG = np.random.default_rng(0)
FLAGS = list(itertools.product([True, False], repeat=4))  # zero_mean, unit_variance, scale, center


def numpy_layer_norm(x, gamma, beta, epsilon, zero_mean=True, unit_variance=True):
    x = x.astype("float64")
    if zero_mean:
        x = x - x.mean(-1, keepdims=True)
    if unit_variance:
        x = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + epsilon)
    if gamma is not None:
        x = x * gamma
    if beta is not None:
        x = x + beta
    return x


def built_layer(dim, zero_mean, unit_variance, scale, center, epsilon=1e-12):
    layer = LayerNormalization(epsilon=epsilon, zero_mean=zero_mean, unit_variance=unit_variance,
                               scale=scale, center=center)
    layer.build((None, None, dim))
    gamma = RNG.standard_normal(dim).astype("float32") if scale else None
    beta = RNG.standard_normal(dim).astype("float32") if center else None
    if scale:
        layer.gamma.assign(gamma)
    if center:
        layer.beta.assign(beta)
    return layer, gamma, beta


@pytest.mark.parametrize("zero_mean,unit_variance,scale,center", FLAGS)
def test_every_flag_combination_matches_numpy_eager_and_compiled(zero_mean, unit_variance, scale,
                                                                 center):
    layer, gamma, beta = built_layer(16, zero_mean, unit_variance, scale, center)
    # Offset and spread: a variance formula that cancels badly would show.
    x = (3.0 + 2.5 * RNG.standard_normal((3, 5, 16))).astype("float32")
    expected = numpy_layer_norm(x, gamma, beta, 1e-12, zero_mean, unit_variance)
    np.testing.assert_allclose(to_np(layer(x)), expected, rtol=1e-5, atol=1e-5)
    inputs = keras.Input((None, 16))
    model = keras.Model(inputs, layer(inputs))
    for length in (5, 2):  # unknown length: the compiled graph serves both
        np.testing.assert_allclose(model.predict(x[:, :length], verbose=0),
                                   expected[:, :length], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 32), (2, 3, 32), (2, 2, 3, 32)])
def test_ranks_two_to_four_and_epsilon(shape):
    layer, gamma, beta = built_layer(32, True, True, True, True, epsilon=1e-3)
    x = (0.05 * RNG.standard_normal(shape)).astype("float32")  # variance ~ epsilon
    expected = numpy_layer_norm(x, gamma, beta, 1e-3)
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_np(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_input_gradient_matches_finite_differences():
    layer, gamma, beta = built_layer(8, True, True, True, True, epsilon=1e-6)
    x = RNG.standard_normal((2, 3, 8)).astype("float32")
    weights = RNG.standard_normal((2, 3, 8))

    def loss64(v):
        return float((numpy_layer_norm(v, gamma, beta, 1e-6) * weights).sum())

    w = keras.ops.convert_to_tensor(weights.astype("float32"))
    grad = gradient(lambda t: keras.ops.sum(layer(t) * w), x)
    step = 1e-5
    numeric = np.zeros_like(x, dtype="float64")
    for index in np.ndindex(x.shape):
        up, down = x.astype("float64"), x.astype("float64")
        up[index] += step
        down[index] -= step
        numeric[index] = (loss64(up) - loss64(down)) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)


def test_mixed_bfloat16_normalises_in_float32():
    layer = LayerNormalization(dtype="mixed_bfloat16")
    layer.build((None, None, 64))
    layer.gamma.assign(RNG.standard_normal(64))
    x = (100.0 + RNG.standard_normal((2, 4, 64))).astype("float32")
    out = layer(keras.ops.cast(x, "bfloat16"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    # The bf16 input itself is rounded (100 + noise keeps ~2 significant bits
    # of the noise), so compare with the normalised rounded input.
    rounded = to_np(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    expected = numpy_layer_norm(rounded, to_np(layer.gamma), np.zeros(64), 1e-12)
    np.testing.assert_allclose(to_np(keras.ops.cast(out, "float32")), expected,
                               rtol=2e-2, atol=3e-2)


@pytest.mark.parametrize("kwargs", [{}, {"zero_mean": False, "center": False}])
def test_layer_harness(kwargs):
    x = (1.0 + RNG.standard_normal((2, 3, 8))).astype("float32")
    check_layer(LayerNormalization, {"epsilon": 1e-6, **kwargs}, x, (2, 3, 8), supports_masking=True)
