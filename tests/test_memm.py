"""MaximumEntropyMarkovModel loss/accuracy against a NumPy re-derivation of bert4keras's MEMM."""

import keras
import numpy as np
import pytest

from kerasnlp4su.layers import MaximumEntropyMarkovModel
from layer_harness import check_layer

from backend_utils import to_np

RNG = np.random.default_rng(0)
B, L, K = 3, 5, 4
EMISSIONS = RNG.standard_normal((B, L, K)).astype("float32")
LABELS = RNG.integers(0, K, (B, L))
LENGTHS = np.array([5, 3, 1])
MASK = np.arange(L)[None, :] < LENGTHS[:, None]


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_memm(emissions, trans, labels, lengths):
    """(loss, accuracy): each direction scores step t by (e_t + trans[y_{t-1}]) / 2 (step 0: e_0)."""
    losses, hits, count = [], [], 0
    for backwards in (False, True):
        total_loss, total_hit = 0.0, 0.0
        t_matrix = trans.T if backwards else trans
        for e, y, n in zip(emissions.astype("float64"), labels, lengths):
            e, y = e[:n], y[:n]
            if backwards:
                e, y = e[::-1], y[::-1]
            logits = e.copy()
            logits[1:] = (e[1:] + t_matrix[y[:-1]]) / 2
            total_loss -= log_softmax(logits)[np.arange(n), y].sum()
            total_hit += (logits.argmax(-1) == y).sum()
        count = lengths.sum()
        losses.append(total_loss / count)
        hits.append(total_hit / count)
    return np.mean(losses), np.mean(hits)


def built(**kwargs):
    memm = MaximumEntropyMarkovModel(**kwargs)
    scores = memm(EMISSIONS, mask=MASK)
    for w in memm.weights:
        w.assign(RNG.standard_normal(w.shape).astype("float32"))
    return memm, scores


@pytest.mark.parametrize("hidden_dim", [None, 2])
def test_loss_and_accuracy_match_numpy(hidden_dim):
    memm, scores = built(hidden_dim=hidden_dim, lr_multiplier=3)
    trans = to_np(memm.trans).astype("float64")
    if hidden_dim:
        np.testing.assert_allclose(trans, 9 * to_np(memm._l_trans) @ to_np(memm._r_trans).T, rtol=1e-5)
    loss, accuracy = numpy_memm(EMISSIONS, trans, LABELS, LENGTHS)
    one_hot = np.eye(K, dtype="float32")[LABELS]
    np.testing.assert_allclose(to_np(memm.sparse_loss(LABELS, scores)), loss, rtol=1e-5)
    np.testing.assert_allclose(to_np(memm.dense_loss(one_hot, scores)), loss, rtol=1e-5)
    np.testing.assert_allclose(to_np(memm.sparse_accuracy(LABELS, scores)), accuracy, rtol=1e-6)
    np.testing.assert_allclose(to_np(memm.dense_accuracy(one_hot, scores)), accuracy, rtol=1e-6)
    # Padded steps (emissions and labels) do not matter.
    labels = np.where(MASK, LABELS, 0)
    assert np.all(to_np(scores)[~MASK] <= -6e4)
    np.testing.assert_allclose(to_np(memm.sparse_loss(labels, scores)), loss, rtol=1e-5)


def test_fit_learns_and_saves(tmp_path):
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, 8, mask_zero=True)(ids)
    memm = MaximumEntropyMarkovModel(lr_multiplier=2, name="memm")
    model = keras.Model(ids, memm(keras.layers.Dense(K)(h)))
    x = np.random.default_rng(1).integers(1, 20, (16, 6))
    x[::2, 4:] = 0
    tags = (x % K) * (x > 0)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=memm.sparse_loss,
                  metrics=[memm.sparse_accuracy])
    logs = [model.train_on_batch(x, tags, return_dict=True) for _ in range(30)]
    assert logs[-1]["loss"] < 0.3 * logs[0]["loss"] and logs[-1]["sparse_accuracy"] > 0.95
    model.save(tmp_path / "memm.keras")
    restored = keras.saving.load_model(tmp_path / "memm.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(to_np(restored(x)), to_np(model(x)), atol=1e-6)
    np.testing.assert_allclose(to_np(restored.get_layer("memm").trans), to_np(memm.trans), atol=1e-6)


def test_layer_harness():
    check_layer(MaximumEntropyMarkovModel, {"hidden_dim": 2}, EMISSIONS, (B, L, K), mask=MASK,
                supports_masking=True, fit_loss=lambda memm: memm.sparse_loss, fit_targets=LABELS)
