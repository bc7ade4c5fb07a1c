"""GlobalPointer / EfficientGlobalPointer against a NumPy re-derivation."""

import math

import keras
import numpy as np
import pytest

from kerasnlp4su.layers.global_pointer import EfficientGlobalPointer, GlobalPointer
from kerasnlp4su.training.losses import globalpointer_crossentropy
from kerasnlp4su.training.metrics import SpanF1
from reference import rope

from backend_utils import gradient, to_np
from layer_harness import check_layer

RNG = np.random.default_rng(0)
HEADS, SIZE, HIDDEN = 3, 8, 16
X = RNG.standard_normal((2, 6, HIDDEN)).astype("float32")
KEEP = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
MASKED = -1e12


def dense_np(layer, x):
    return x @ to_np(layer.kernel).astype("float64") + to_np(layer.bias).astype("float64")


def mask_np(logits, keep, tril):
    n = logits.shape[-1]
    allowed = np.ones(logits.shape, bool)
    if keep is not None:
        allowed &= keep[:, None, :, None] & keep[:, None, None, :]
    if tril:
        allowed &= np.triu(np.ones((n, n), bool))[None, None]
    return np.where(allowed, logits, MASKED)


def global_pointer_np(layer, x, keep=None, rope_on=True, tril=True):
    b, n, _ = x.shape
    h = dense_np(layer.dense, x.astype("float64")).reshape(b, n, HEADS, 2 * SIZE)
    q, k = h[..., :SIZE], h[..., SIZE:]
    if rope_on:
        q, k = rope(q), rope(k)
    logits = np.einsum("bmhd,bnhd->bhmn", q, k) / math.sqrt(SIZE)
    return mask_np(logits, keep, tril)


def efficient_pointer_np(layer, x, keep=None, rope_on=True, tril=True):
    p = dense_np(layer.p_dense, x.astype("float64"))
    q, k = p[..., 0::2], p[..., 1::2]
    if rope_on:
        q, k = rope(q[:, :, None])[:, :, 0], rope(k[:, :, None])[:, :, 0]
    logits = np.einsum("bmd,bnd->bmn", q, k) / math.sqrt(SIZE)
    bias = dense_np(layer.q_dense, p) / 2  # (b, n, 2 * heads), from the projection before RoPE
    start, end = bias[..., 1::2], bias[..., 0::2]
    logits = logits[:, None] + end.transpose(0, 2, 1)[:, :, None, :] + start.transpose(0, 2, 1)[:, :, :, None]
    return mask_np(logits, keep, tril)


CASES = [(GlobalPointer, global_pointer_np), (EfficientGlobalPointer, efficient_pointer_np)]


def make(cls, **kwargs):
    layer = cls(HEADS, SIZE, **kwargs)
    layer.build((None, None, HIDDEN))
    for w in layer.weights:  # non-zero biases so their placement is tested
        w.assign(RNG.standard_normal(w.shape).astype("float32") * 0.5)
    return layer


@pytest.mark.parametrize("cls,ref", CASES)
@pytest.mark.parametrize("rope_on,tril", [(True, True), (False, True), (True, False)])
def test_forward_matches_numpy(cls, ref, rope_on, tril):
    layer = make(cls, rope=rope_on, tril_mask=tril)
    out = to_np(layer(X, mask=KEEP))
    assert out.shape == (2, HEADS, 6, 6)
    np.testing.assert_allclose(out, ref(layer, X, KEEP, rope_on, tril), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(layer(X)), ref(layer, X, None, rope_on, tril), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls,ref", CASES)
def test_masked_cells_and_padding_invariance(cls, ref):
    layer = make(cls)
    out = to_np(layer(X, mask=KEEP))
    # Padded rows/columns and start > end are exactly the masked value ...
    assert np.all(out[0, :, 4:, :] == MASKED) and np.all(out[0, :, :, 4:] == MASKED)
    assert np.all(out[1][:, np.tril_indices(6, -1)[0], np.tril_indices(6, -1)[1]] == MASKED)
    # ... and nothing else is.
    valid = (KEEP[:, None, :, None] & KEEP[:, None, None, :]) & np.triu(np.ones((6, 6), bool))
    assert np.all(np.abs(out[np.broadcast_to(valid, out.shape)]) < 100)
    changed = X.copy()
    changed[0, 4:] = RNG.standard_normal((2, HIDDEN)) * 10
    other = to_np(layer(changed, mask=KEEP))
    np.testing.assert_array_equal(other, out)  # real cells are bit-identical, padded cells still masked
    # RoPE makes scores depend on the relative offset only: shifting the
    # sequence by one position (same tokens) leaves score(i, j) unchanged.
    tokens = np.repeat(X[:1, :1], 3, axis=1)
    tokens[0, 1] = X[0, 2]
    shifted = np.concatenate([X[:1, 3:4], tokens], axis=1)
    a, b = to_np(layer(tokens)), to_np(layer(shifted))
    np.testing.assert_allclose(a[0, :, 0, 1], b[0, :, 1, 2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls,ref", CASES)
def test_input_gradient_matches_finite_differences(cls, ref):
    layer = make(cls)
    x = X[:, :4]
    keep = KEEP[:, :4].copy()
    keep[0, 3] = False
    weights = RNG.standard_normal((2, HEADS, 4, 4))
    valid = mask_np(np.zeros((2, HEADS, 4, 4)), keep, True) == 0
    w = np.where(valid, weights, 0.0)

    def f(t):
        return keras.ops.sum(layer(t, mask=keep) * keras.ops.convert_to_tensor(w, "float32"))

    got = gradient(f, x)
    eps = 1e-5
    expected = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        d = np.zeros(x.shape)
        d[idx] = eps
        plus = np.sum(np.where(valid, ref(layer, x + d, keep), 0) * w)
        minus = np.sum(np.where(valid, ref(layer, x - d, keep), 0) * w)
        expected[idx] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert np.all(got[0, 3] == 0)  # a padded token gets no gradient


@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_keras_mask_fit_and_config(cls):
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(30, HIDDEN, mask_zero=True)(ids)
    scores = cls(HEADS, SIZE, name="pointer")(h)
    model = keras.Model(ids, scores)
    # Its own generator: drawing from the shared RNG made the data depend on
    # which tests ran earlier in the same worker.
    data = np.random.default_rng(0).integers(1, 30, (8, 6))
    data[:, 4:] = 0
    out = to_np(model(data))
    assert np.all(out[:, :, 4:, :] == MASKED) and np.all(out[:, :, :, 4:] == MASKED)

    labels = np.zeros((8, HEADS, 6, 6), "float32")
    labels[np.arange(8), data[:, 0] % HEADS, 1, 2] = 1
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=globalpointer_crossentropy,
                  metrics=[SpanF1()])
    # train_on_batch: the per-epoch overhead of fit() would dominate this tiny run.
    logs = [model.train_on_batch(data, labels, return_dict=True) for _ in range(40)]
    assert logs[-1]["loss"] < 0.1 * logs[0]["loss"] and np.isfinite(logs[-1]["loss"])
    assert logs[-1]["span_f1"] == 1.0

    # The .keras and .weights.h5 round trips: test_layer_harness.
    layer = model.get_layer("pointer")
    config = layer.get_config()
    assert {k: config[k] for k in ("heads", "head_size", "rope", "tril_mask", "use_bias")} == \
        {"heads": HEADS, "head_size": SIZE, "rope": True, "tril_mask": True, "use_bias": True}
    assert cls.from_config(config).get_config() == config
    # bert4keras configs spell the flag `RoPE`.
    assert cls(HEADS, SIZE, RoPE=False).rope is False


def test_layer_harness():
    # bf16: masked cells keep their sign and size, real ones stay close to float32.
    for cls in (GlobalPointer, EfficientGlobalPointer):
        check_layer(cls, {"heads": HEADS, "head_size": SIZE}, X, (2, HEADS, 6, 6), mask=KEEP,
                    mixed_tolerance=0.1)


def test_rejects_odd_head_size():
    with pytest.raises(ValueError, match="even"):
        GlobalPointer(2, 5)
