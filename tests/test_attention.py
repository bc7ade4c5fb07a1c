"""MultiHeadAttention (softmax and linear), RoPE, masks and conditional LayerNorm."""

import math

import keras
import numpy as np
import pytest

from kerasnlp4su.layers import AttentionMask, LayerNormalization, MultiHeadAttention
from kerasnlp4su.models import build_transformer_model
from reference import rope, softmax

from backend_utils import forward, gradient, to_np
from layer_harness import check_layer

pytestmark = pytest.mark.backend_core  # all of it is backend-specific numerics

RNG = np.random.default_rng(0)


def weights(layer):
    return {name: to_np(getattr(layer, f"{name}_dense").kernel) for name in ("query", "key", "value", "output")}, \
        {name: to_np(getattr(layer, f"{name}_dense").bias) for name in ("query", "key", "value", "output")}


def numpy_attention(layer, x, keep=None, bias=None, kind="softmax", causal=False, rotary=False,
                    scale="standard"):
    """Reference multi-head attention in float64."""
    w, b = weights(layer)
    x = x.astype("float64")
    batch, n, _ = x.shape
    h = layer.heads
    q = (x @ w["query"] + b["query"]).reshape(batch, n, h, -1)
    k = (x @ w["key"] + b["key"]).reshape(batch, n, h, -1)
    v = (x @ w["value"] + b["value"]).reshape(batch, n, h, -1)
    if rotary:
        q, k = rope(q), rope(k)
    d = q.shape[-1]
    if kind == "softmax":
        s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
        allowed = np.ones((batch, 1, n, n), bool)
        if keep is not None:
            allowed &= keep[:, None, None, :]
        if causal:
            allowed &= np.tril(np.ones((n, n), bool))
        if scale == "entropy_invariant":
            # n = keys each query may see after every mask (a bias <= -5e8 drops a key).
            visible = allowed if bias is None else allowed & (bias > -5e8)
            count = visible.sum(-1, keepdims=True)
            s = s * np.log(np.maximum(count, 2)) / math.log(512)
        s = np.where(allowed, s, -1e9) + (0 if bias is None else bias)
        o = np.einsum("bhqk,bkhd->bqhd", softmax(s), v)
    else:
        phi = lambda t: np.where(t > 0, t + 1, np.exp(t))  # noqa: E731  elu + 1
        qf, kf = phi(q), phi(k)
        if keep is not None:
            kf = kf * keep[:, :, None, None]
        o = np.zeros_like(v)
        for i in range(n):
            js = range(i + 1) if causal else range(n)
            num = sum(np.einsum("bhd,bhd->bh", qf[:, i], kf[:, j])[..., None] * v[:, j] for j in js)
            den = sum(np.einsum("bhd,bhd->bh", qf[:, i], kf[:, j]) for j in js)
            o[:, i] = num / (den[..., None] + 1e-6)
    o = o.reshape(batch, n, -1)
    return o @ w["output"] + b["output"]


def make_layer(**kwargs):
    layer = MultiHeadAttention(heads=2, head_size=4, kernel_initializer="glorot_normal", **kwargs)
    layer.build((None, None, 8))
    for dense in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense):
        dense.bias.assign(RNG.standard_normal(dense.bias.shape) * 0.1)
    return layer


X = RNG.standard_normal((2, 6, 8)).astype("float32")
KEEP = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize("rotary", [False, True])
def test_softmax_attention_with_padding_and_bias(rotary):
    layer = make_layer(position_encoding="rotary" if rotary else None)
    bias = RNG.standard_normal((2, 1, 6, 6)).astype("float32")
    out = to_np(layer(X, attention_mask=bias, padding_mask=KEEP))
    np.testing.assert_allclose(out, numpy_attention(layer, X, KEEP, bias, rotary=rotary), atol=1e-5)


def test_boolean_mask_and_causal_flag_agree():
    layer = make_layer()
    causal = make_layer(causal=True)
    causal.set_weights(layer.get_weights())
    tril = np.tril(np.ones((6, 6), bool))[None, None]
    np.testing.assert_allclose(to_np(layer(X, attention_mask=tril)), to_np(causal(X)), atol=1e-6)
    np.testing.assert_allclose(to_np(causal(X)), numpy_attention(layer, X, causal=True), atol=1e-5)


def test_entropy_invariant_scale():
    layer = make_layer(scale="entropy_invariant")
    np.testing.assert_allclose(to_np(layer(X)), numpy_attention(layer, X, scale="entropy_invariant"),
                               atol=1e-5)
    # Hand check of the factor: 6 visible keys, head size 4 -> log(6) / log(512) / 2.
    plain = make_layer(scale="none")
    plain.set_weights(layer.get_weights())
    w, b = weights(layer)
    q = (X.astype("float64") @ w["query"] + b["query"]).reshape(2, 6, 2, 4)
    k = (X.astype("float64") @ w["key"] + b["key"]).reshape(2, 6, 2, 4)
    factor = math.log(6) / math.log(512) / 2.0
    probs = softmax(np.einsum("bqhd,bkhd->bhqk", q, k) * factor)
    v = (X.astype("float64") @ w["value"] + b["value"]).reshape(2, 6, 2, 4)
    o = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(2, 6, 8) @ w["output"] + b["output"]
    np.testing.assert_allclose(to_np(layer(X)), o, atol=1e-5)


@pytest.mark.parametrize("rotary", [False, True])
def test_entropy_invariant_counts_visible_keys_per_query(rotary):
    layer = make_layer(scale="entropy_invariant", position_encoding="rotary" if rotary else None)
    bias = np.where(RNG.uniform(size=(2, 1, 6, 6)) < 0.3, -1e9,
                    RNG.standard_normal((2, 1, 6, 6))).astype("float32")
    bias[..., 0] = 0.0  # every query keeps at least one key
    ref = numpy_attention(layer, X, KEEP, bias, rotary=rotary, scale="entropy_invariant")
    np.testing.assert_allclose(to_np(layer(X, attention_mask=bias, padding_mask=KEEP)), ref, atol=1e-5)
    causal = make_layer(scale="entropy_invariant", causal=True,
                        position_encoding="rotary" if rotary else None)
    causal.set_weights(layer.get_weights())
    ref = numpy_attention(layer, X, KEEP, causal=True, rotary=rotary, scale="entropy_invariant")
    np.testing.assert_allclose(to_np(causal(X, padding_mask=KEEP)), ref, atol=1e-5)
    # Extra padding in the batch leaves real outputs unchanged ...
    padded = np.concatenate([X, RNG.standard_normal((2, 3, 8)).astype("float32")], axis=1)
    keep = np.concatenate([KEEP, np.zeros((2, 3), bool)], axis=1)
    np.testing.assert_allclose(to_np(layer(padded, padding_mask=keep))[:, :6][KEEP],
                               to_np(layer(X, padding_mask=KEEP))[KEEP], atol=1e-5)
    # ... and with causal masking a prefix's outputs do not depend on the suffix length.
    np.testing.assert_allclose(to_np(causal(X[:, :3])), to_np(causal(X))[:, :3], atol=1e-5)


@pytest.mark.parametrize("kind,scale,chunk", [("softmax", "entropy_invariant", 64),
                                              ("linear", "standard", 64), ("linear", "standard", 2)])
def test_causal_kv_cache_equals_full_pass(kind, scale, chunk):
    layer = make_layer(attention_type=kind, causal=True, scale=scale, position_encoding="rotary",
                       linear_chunk_size=chunk)
    full = to_np(layer(X))
    out, cache = layer(X[:, :3], cache=(np.zeros((2, 2, 0, 4), "float32"),) * 2)
    pieces = [to_np(out)]
    for t in range(3, 6):
        out, cache = layer(X[:, t:t + 1], cache=cache)
        pieces.append(to_np(out))
    assert tuple(cache[0].shape) == (2, 2, 6, 4)  # (batch, heads, cached, size)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)
    # Two new tokens at once see the cache and, causally, each other.
    out, _ = layer(X[:, 4:], cache=layer(X[:, :4], cache=(np.zeros((2, 2, 0, 4), "float32"),) * 2)[1])
    np.testing.assert_allclose(to_np(out), full[:, 4:], atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_fixed_capacity_cache_equals_appending(causal):
    # Writing into reserved buffers at `cache_index` gives what appending
    # gives, whatever the unwritten slots hold: they are never attended to.
    layer = make_layer(causal=causal, position_encoding="rotary")
    empty = (np.zeros((2, 2, 0, 4), "float32"),) * 2
    out, grown = layer(X[:, :3], cache=empty)
    want = [to_np(out)]
    garbage = RNG.standard_normal((2, 2, 8, 4)).astype("float32")
    buffers = tuple(np.concatenate([to_np(c), garbage[:, :, 3:]], axis=2) for c in grown)
    got = [to_np(out)]
    for t in range(3, 6):
        out, grown = layer(X[:, t:t + 1], cache=grown)
        want.append(to_np(out))
        out, buffers = layer(X[:, t:t + 1], cache=buffers, cache_index=t)
        got.append(to_np(out))
        assert tuple(buffers[0].shape) == (2, 2, 8, 4)  # the capacity stays
    np.testing.assert_allclose(np.concatenate(got, 1), np.concatenate(want, 1), atol=1e-5)
    np.testing.assert_allclose(to_np(buffers[0])[:, :, :6], to_np(grown[0]), atol=1e-6)
    np.testing.assert_array_equal(to_np(buffers[1])[:, :, 6:], garbage[:, :, 6:])


def test_fixed_capacity_cache_needs_softmax_and_a_cache():
    with pytest.raises(ValueError, match="needs softmax"):
        make_layer(attention_type="linear", causal=True)(
            X[:, :1], cache=(np.zeros((2, 2, 4, 4), "float32"),) * 2, cache_index=0)
    with pytest.raises(ValueError, match="cache_index needs a cache"):
        make_layer()(X, cache_index=0)


def test_linear_attention_rejects_entropy_invariant_scale():
    with pytest.raises(ValueError, match="scale cancels"):
        MultiHeadAttention(2, 4, attention_type="linear", scale="entropy_invariant")


@pytest.mark.parametrize("causal,chunk", [(False, 64), (True, 64), (True, 4), (True, 1)])
@pytest.mark.parametrize("rotary", [False, True])
def test_linear_attention_matches_reference(causal, chunk, rotary):
    # Chunks of 4 over 6 tokens: one full chunk, one padded, state carried across.
    layer = make_layer(attention_type="linear", causal=causal, linear_chunk_size=chunk,
                       position_encoding="rotary" if rotary else None)
    out = to_np(layer(X, padding_mask=KEEP))
    ref = numpy_attention(layer, X, KEEP, kind="linear", causal=causal, rotary=rotary)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_linear_attention_rejects_arbitrary_bias():
    layer = make_layer(attention_type="linear")
    with pytest.raises(ValueError, match="linear attention cannot apply an arbitrary attention_mask"):
        layer(X, attention_mask=np.zeros((2, 1, 6, 6), "float32"))


@pytest.mark.parametrize("kind,causal", [("softmax", False), ("linear", False),
                                         ("softmax", True), ("linear", True)])
def test_gradient_matches_finite_differences(kind, causal):
    layer = make_layer(attention_type=kind, position_encoding="rotary", causal=causal,
                       **({"linear_chunk_size": 4} if kind == "linear" else {}))
    r = RNG.standard_normal((2, 6, 8))
    grad = gradient(lambda x: keras.ops.sum(layer(x, padding_mask=KEEP) * keras.ops.convert_to_tensor(r.astype("float32"))), X)
    eps = 1e-4
    numeric = np.zeros_like(grad)
    xs = X.astype("float64")
    for idx in [(0, 1, 2), (1, 5, 7), (0, 0, 0), (1, 3, 4)]:
        plus, minus = xs.copy(), xs.copy()
        plus[idx] += eps
        minus[idx] -= eps
        f = lambda z: (numpy_attention(layer, z, KEEP, kind=kind, causal=causal,  # noqa: E731
                                       rotary=True) * r).sum()
        numeric[idx] = (f(plus) - f(minus)) / (2 * eps)
        assert abs(grad[idx] - numeric[idx]) < 1e-3 * max(1, abs(numeric[idx])), idx
    # With the padded query rows left out of the objective, padded tokens
    # only enter as keys, and masked keys receive exactly zero gradient.
    r_real = (r * KEEP[:, :, None]).astype("float32")
    grad = gradient(lambda x: keras.ops.sum(
        layer(x, padding_mask=KEEP) * keras.ops.convert_to_tensor(r_real)), X)
    assert np.all(grad[0, 4:] == 0) and np.abs(grad[0, :4]).max() > 1e-3


def test_padded_keys_do_not_influence_outputs():
    for kind in ("softmax", "linear"):
        layer = make_layer(attention_type=kind)
        changed = X.copy()
        changed[0, 4:] = 100.0
        a = to_np(layer(X, padding_mask=KEEP))
        b = to_np(layer(changed, padding_mask=KEEP))
        np.testing.assert_allclose(a[0, :4], b[0, :4], atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {"position_encoding": "rotary"},
    {"attention_type": "linear", "causal": True, "linear_chunk_size": 4},
    {"scale": "entropy_invariant", "causal": True}])
def test_layer_harness(kwargs):
    check_layer(MultiHeadAttention, {"heads": 2, "head_size": 4, **kwargs}, X, (2, 6, 8),
                call_kwargs={}, mixed_tolerance=0.1)


def test_attention_layers_serialize(tmp_path):
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 8)(ids)
    bias = AttentionMask("lm")(ids)
    y = MultiHeadAttention(2, 4, position_encoding="rotary", scale="entropy_invariant")(x, attention_mask=bias)
    z = MultiHeadAttention(2, 4, attention_type="linear", causal=True, linear_chunk_size=3)(y)
    model = keras.Model(ids, z)
    data = np.array([[3, 4, 5, 0, 6, 7, 0]])  # 7 tokens: chunks of 3 with padding
    model.save(tmp_path / "a.keras")
    restored = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    np.testing.assert_allclose(forward(restored, data), forward(model, data), atol=1e-6)


def test_unilm_mask_values():
    ids = np.array([[2, 5, 3, 6, 7, 0]])
    seg = np.array([[0, 0, 0, 1, 1, 0]])
    allowed = to_np(AttentionMask("unilm")([ids, seg]))[0, 0] == 0
    expected = np.array([
        [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0]], bool)
    np.testing.assert_array_equal(allowed, expected)


def test_conditional_layer_norm_zero_condition_is_unconditioned():
    x = RNG.standard_normal((2, 3, 8)).astype("float32")
    plain = LayerNormalization()
    plain.build((None, None, 8))
    plain.gamma.assign(RNG.standard_normal(8))
    plain.beta.assign(RNG.standard_normal(8))
    cond = LayerNormalization(conditional=True, hidden_units=5)
    cond.build([(None, None, 8), (None, 4)])
    cond.gamma.assign(plain.gamma)
    cond.beta.assign(plain.beta)
    for dense in (cond.hidden_dense, cond.gamma_dense, cond.beta_dense):
        dense.kernel.assign(RNG.standard_normal(dense.kernel.shape))
    zero = np.zeros((2, 4), "float32")
    np.testing.assert_allclose(to_np(cond([x, zero])), to_np(plain(x)), atol=1e-6)
    c = RNG.standard_normal((2, 4)).astype("float32")
    h = c @ to_np(cond.hidden_dense.kernel)
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    gamma = to_np(plain.gamma) + h @ to_np(cond.gamma_dense.kernel)
    beta = to_np(plain.beta) + h @ to_np(cond.beta_dense.kernel)
    np.testing.assert_allclose(to_np(cond([x, c])), normed * gamma[:, None] + beta[:, None], atol=1e-5)


def test_conditional_model_with_zero_condition_equals_plain_model():
    from tiny_checkpoints import CONFIGS

    config = dict(CONFIGS["bert"])
    ids = np.array([[2, 5, 6, 3]])
    seg = np.zeros_like(ids)
    plain = build_transformer_model(None, **config)
    cond = build_transformer_model(None, layer_norm_cond=6, layer_norm_cond_hidden_size=4, **config)
    by_path = {w.path: w for w in cond.weights}
    for w in plain.weights:
        by_path[w.path].assign(to_np(w))
    for w in cond.weights:
        if "_dense/" in w.path:
            w.assign(RNG.standard_normal(w.shape))
    base = forward(plain, [ids, seg])
    np.testing.assert_allclose(forward(cond, [ids, seg, np.zeros((1, 6))]), base, atol=1e-5)
    assert np.abs(forward(cond, [ids, seg, np.ones((1, 6))]) - base).max() > 1e-3


def test_linear_attention_model_switch_and_lm_causality():
    from tiny_checkpoints import CONFIGS

    model = build_transformer_model(None, attention_type="linear", application="lm", **CONFIGS["bert"])
    assert all(layer.attention_type == "linear" for layer in model.layers
               if isinstance(layer, MultiHeadAttention))
    ids = np.array([[2, 5, 6, 7, 8, 3]])
    seg = np.zeros_like(ids)
    changed = ids.copy()
    changed[0, 4] = 30
    a, b = forward(model, [ids, seg]), forward(model, [changed, seg])
    np.testing.assert_allclose(a[0, :4], b[0, :4], atol=1e-6)
    with pytest.raises(ValueError, match="unilm.*softmax"):
        build_transformer_model(None, attention_type="linear", application="unilm", **CONFIGS["bert"])


def numpy_conditional_layer_norm(x, c, gamma, beta, hidden, gamma_kernel, beta_kernel, eps=1e-12):
    h = c @ hidden
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return normed * (gamma + h @ gamma_kernel)[:, None] + (beta + h @ beta_kernel)[:, None]


def random_conditional_layer_norm(**kwargs):
    cond = LayerNormalization(conditional=True, hidden_units=5, **kwargs)
    cond.build([(None, None, 8), (None, 4)])
    cond.set_weights([RNG.standard_normal(w.shape) * 0.5 for w in cond.get_weights()])
    return cond


def cln_numpy_weights(cond):
    return [to_np(v).astype("float64") for v in (
        cond.gamma, cond.beta, cond.hidden_dense.kernel, cond.gamma_dense.kernel,
        cond.beta_dense.kernel)]


def test_conditional_layer_norm_gradients_match_finite_differences():
    cond = random_conditional_layer_norm()
    x = RNG.standard_normal((2, 3, 8)).astype("float32")
    c = RNG.standard_normal((2, 4)).astype("float32")
    r = RNG.standard_normal((2, 3, 8))
    gamma, beta, hidden, gk, bk = cln_numpy_weights(cond)
    weight = keras.ops.convert_to_tensor(r.astype("float32"))
    grad_x = gradient(lambda t: keras.ops.sum(cond([t, c]) * weight), x)
    grad_c = gradient(lambda t: keras.ops.sum(cond([x, t]) * weight), c)

    def f(xv, cv):
        return (numpy_conditional_layer_norm(xv, cv, gamma, beta, hidden, gk, bk) * r).sum()

    eps = 1e-4
    for grad, base, other, is_x in ((grad_x, x, c, True), (grad_c, c, x, False)):
        base = base.astype("float64")
        for idx in ([(0, 1, 2), (1, 2, 7), (0, 0, 5)] if is_x else [(0, 1), (1, 3), (0, 0)]):
            plus, minus = base.copy(), base.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args = ((plus, other), (minus, other)) if is_x else ((other, plus), (other, minus))
            numeric = (f(*args[0]) - f(*args[1])) / (2 * eps)
            assert abs(grad[idx] - numeric) < 1e-3 * max(1, abs(numeric)), (is_x, idx)


def test_conditional_layer_norm_harness():
    x = RNG.standard_normal((2, 3, 8)).astype("float32")
    c = RNG.standard_normal((2, 4)).astype("float32")
    check_layer(LayerNormalization, {"conditional": True, "hidden_units": 5}, [x, c], (2, 3, 8),
                symbolic_shapes=[(None, 8), (4,)])
