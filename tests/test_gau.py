"""GatedAttentionUnit against a NumPy re-derivation of bert4keras's GAU."""

import math

import keras
import numpy as np
import pytest

from kerasnlp4su.layers.gau import GatedAttentionUnit
from kerasnlp4su.layers.masks import AttentionMask
from reference import rope, softmax

from backend_utils import gradient, to_np
from layer_harness import check_layer

RNG = np.random.default_rng(0)
UNITS, KEY, HIDDEN = 12, 8, 10
X = RNG.standard_normal((2, 6, HIDDEN)).astype("float32")
KEEP = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
CAUSAL = np.where(np.tril(np.ones((6, 6), bool)), 0.0, -1e9)[None].astype("float32")


def gau_np(layer, x, keep=None, bias=None, normalization="squared_relu", rope_on=True, scale=True):
    """Float64 forward pass written from the GAU definition."""
    w = {v.path.split("/", 1)[1]: to_np(v).astype("float64") for v in layer.weights}
    x = x.astype("float64")
    h = x @ w["i_dense/kernel"] + w["i_dense/bias"]
    h = h / (1 + np.exp(-h))  # swish
    u, v, qk = h[..., :UNITS], h[..., UNITS:2 * UNITS], h[..., 2 * UNITS:]
    q = qk * w["q_scaleoffset/gamma"] + w["q_scaleoffset/beta"]
    k = qk * w["k_scaleoffset/gamma"] + w["k_scaleoffset/beta"]
    if rope_on:
        q, k = rope(q[:, :, None])[:, :, 0], rope(k[:, :, None])[:, :, 0]
    a = np.einsum("bmd,bnd->bmn", q, k)
    if scale:
        a = a / math.sqrt(KEY)
    if bias is not None:
        a = a + bias
    n = x.shape[1] * np.ones((x.shape[0], 1, 1))
    if keep is not None:
        a = np.where(keep[:, None, :], a, -np.inf)
        n = keep.sum(-1)[:, None, None].astype("float64")
    if normalization == "squared_relu":
        probs = np.maximum(a, 0) ** 2 / n
    elif normalization == "softmax_plus":
        probs = softmax(a * np.log(np.maximum(n, 16)) / np.log(512))
    else:
        probs = softmax(a)
    o = u * np.einsum("bmn,bnd->bmd", probs, v)
    return o @ w["o_dense/kernel"] + w["o_dense/bias"]


def make(**kwargs):
    layer = GatedAttentionUnit(UNITS, key_size=KEY, **kwargs)
    layer.build((None, None, HIDDEN))
    for w in layer.weights:  # perturb gamma/beta/biases so each one is exercised
        w.assign(to_np(w) + RNG.standard_normal(w.shape).astype("float32") * 0.3)
    return layer


@pytest.mark.parametrize("normalization", ["squared_relu", "softmax_plus", "softmax"])
@pytest.mark.parametrize("rope_on", [True, False])
def test_forward_matches_numpy(normalization, rope_on):
    layer = make(normalization=normalization, rope=rope_on)
    for keep, bias in [(None, None), (KEEP, None), (KEEP, CAUSAL), (None, CAUSAL)]:
        out = to_np(layer(X, padding_mask=keep, attention_mask=bias))
        ref = gau_np(layer, X, keep, bias, normalization, rope_on)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_squared_relu_divides_by_real_length_and_no_scale_option():
    # softmax_plus's log(max(n, 16)) only differs from n = L for long inputs; check it at L = 40.
    x = RNG.standard_normal((2, 40, HIDDEN)).astype("float32")
    keep = np.arange(40)[None] < np.array([[25], [40]])
    for normalization in ("squared_relu", "softmax_plus"):
        layer = make(normalization=normalization, attention_scale=False)
        out = to_np(layer(x, padding_mask=keep))
        ref = gau_np(layer, x, keep, None, normalization, scale=False)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
        # Dividing by the padded length instead would be visibly different.
        wrong = gau_np(layer, x, None, np.where(keep[:, None, :], 0.0, -1e9), normalization, scale=False)
        assert np.abs(out[0] - wrong[0]).max() > 1e-3


def test_padding_invariance_and_keras_mask():
    layer = make()
    out = to_np(layer(X, mask=KEEP))
    np.testing.assert_allclose(out, to_np(layer(X, padding_mask=KEEP)), atol=1e-6)
    changed = X.copy()
    changed[0, 4:] = RNG.standard_normal((2, HIDDEN)) * 10
    np.testing.assert_allclose(to_np(layer(changed, mask=KEEP))[0, :4], out[0, :4], atol=1e-6)
    # Causal: a future token does not change the past.
    causal = to_np(layer(changed, attention_mask=CAUSAL))
    np.testing.assert_allclose(causal[0, :4], to_np(layer(X, attention_mask=CAUSAL))[0, :4], atol=1e-6)
    assert layer.compute_mask(X, KEEP) is KEEP


def test_input_gradient_matches_finite_differences():
    layer = make()
    x = X[:, :4]
    keep = KEEP[:, :4].copy()
    keep[0, 3] = False
    w = RNG.standard_normal((2, 4, HIDDEN))
    w[0, 3] = 0  # a padded query row is not a meaningful output

    def f(t):
        return keras.ops.sum(layer(t, padding_mask=keep) * keras.ops.convert_to_tensor(w, "float32"))

    got = gradient(f, x)
    eps = 1e-5
    expected = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        d = np.zeros(x.shape)
        d[idx] = eps
        expected[idx] = (np.sum(gau_np(layer, x + d, keep) * w) - np.sum(gau_np(layer, x - d, keep) * w)) / (2 * eps)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert np.all(got[0, 3] == 0)


def test_dropout_only_in_training():
    layer = make(attention_dropout=0.5)
    np.testing.assert_allclose(to_np(layer(X, training=False)), gau_np(layer, X), rtol=1e-4, atol=1e-4)
    assert np.abs(to_np(layer(X, training=True)) - gau_np(layer, X)).max() > 1e-3


def test_serialization_with_causal_mask(tmp_path):
    # Shapes, bf16, gradients and the fit step: test_layer_harness.
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(30, HIDDEN, mask_zero=True)(ids)
    bias = AttentionMask("lm")(ids)
    h = GatedAttentionUnit(UNITS, key_size=KEY, normalization="softmax_plus", name="gau")(h, attention_mask=bias)
    out = keras.layers.Dense(3)(h)
    model = keras.Model(ids, out)
    data = RNG.integers(1, 30, (4, 6))
    data[:, 5:] = 0
    model.save(tmp_path / "gau.keras")
    restored = keras.saving.load_model(tmp_path / "gau.keras", safe_mode=True)
    np.testing.assert_allclose(to_np(restored(data)), to_np(model(data)), atol=1e-5)
    layer = model.get_layer("gau")
    config = layer.get_config()
    assert config["normalization"] == "softmax_plus" and config["key_size"] == KEY
    assert GatedAttentionUnit.from_config(config).get_config() == config
    assert sorted(v.path.split("/", 1)[1] for v in layer.weights) == [
        "i_dense/bias", "i_dense/kernel", "k_scaleoffset/beta", "k_scaleoffset/gamma",
        "o_dense/bias", "o_dense/kernel", "q_scaleoffset/beta", "q_scaleoffset/gamma"]


def test_layer_harness():
    check_layer(GatedAttentionUnit, {"units": UNITS, "key_size": KEY}, X, (2, 6, HIDDEN), mask=KEEP,
                supports_masking=True, mixed_tolerance=0.1)


def test_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="normalization"):
        GatedAttentionUnit(8, 4, normalization="relu")
