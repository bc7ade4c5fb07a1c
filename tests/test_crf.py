"""ConditionalRandomField loss/accuracy and ViterbiDecoder against brute-force enumeration."""

import itertools

import keras
import numpy as np
import pytest

from kerasnlp4su.layers.crf import ConditionalRandomField, crf_nll
from kerasnlp4su.viterbi import ViterbiDecoder

from backend_utils import gradient, to_np
from reference import numeric_grad
from layer_harness import check_layer

RNG = np.random.default_rng(0)
B, L, K = 4, 4, 3
EMISSIONS = RNG.standard_normal((B, L, K)).astype("float32")
TRANS = RNG.standard_normal((K, K)).astype("float32")
LABELS = RNG.integers(0, K, (B, L))
LENGTHS = np.array([4, 2, 1, 3])
MASK = np.arange(L)[None, :] < LENGTHS[:, None]


def path_score(emissions, trans, path):
    score = sum(emissions[t, y] for t, y in enumerate(path))
    return score + sum(trans[a, b] for a, b in zip(path[:-1], path[1:]))


def brute_force_nll(emissions, trans, labels, lengths):
    """-log p(labels) by enumerating all K**n paths of each sequence (float64)."""
    emissions, trans = emissions.astype("float64"), trans.astype("float64")
    out = []
    for e, y, n in zip(emissions, labels, lengths):
        if n == 0:
            out.append(0.0)
            continue
        scores = [path_score(e[:n], trans, p) for p in itertools.product(range(K), repeat=n)]
        log_z = np.logaddexp.reduce(scores)
        out.append(log_z - path_score(e[:n], trans, list(y[:n])))
    return np.array(out)


def test_nll_matches_brute_force_with_padding():
    expected = brute_force_nll(EMISSIONS, TRANS, LABELS, LENGTHS)
    got = to_np(crf_nll(LABELS, EMISSIONS, TRANS, MASK))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # Values at padded steps (emissions and labels) must not matter.
    noisy = np.where(MASK[..., None], EMISSIONS, 50.0).astype("float32")
    labels = np.where(MASK, LABELS, 2)
    np.testing.assert_allclose(to_np(crf_nll(labels, noisy, TRANS, MASK)), expected, rtol=1e-5, atol=1e-5)


def test_dense_labels_and_inferred_mask_give_the_same_loss():
    crf = ConditionalRandomField()
    emissions = crf(EMISSIONS, mask=MASK)  # writes the padding into the scores
    crf._trans.assign(TRANS)
    expected = brute_force_nll(EMISSIONS, TRANS, LABELS, LENGTHS)
    padded = to_np(emissions)[~MASK]
    assert np.all(padded == -1e12)
    np.testing.assert_allclose(to_np(emissions)[MASK], EMISSIONS[MASK])
    one_hot = np.eye(K, dtype="float32")[LABELS]
    for y in (LABELS, LABELS[..., None], one_hot):
        np.testing.assert_allclose(to_np(crf.loss(y, emissions)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_np(crf.sparse_loss(LABELS, emissions)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_np(crf.dense_loss(one_hot, emissions)), expected, rtol=1e-5, atol=1e-5)


def test_fully_padded_sequence_has_zero_loss_and_single_step_works():
    mask = MASK.copy()
    mask[1] = False
    lengths = LENGTHS.copy()
    lengths[1] = 0
    np.testing.assert_allclose(to_np(crf_nll(LABELS, EMISSIONS, TRANS, mask)),
                               brute_force_nll(EMISSIONS, TRANS, LABELS, lengths), rtol=1e-5, atol=1e-5)
    one = EMISSIONS[:, :1]
    np.testing.assert_allclose(to_np(crf_nll(LABELS[:, :1], one, TRANS)),
                               brute_force_nll(one, TRANS, LABELS[:, :1], [1] * B), rtol=1e-5, atol=1e-5)


def test_gradients_match_finite_differences_of_brute_force():
    y, lengths = LABELS, LENGTHS

    def loss_emissions(e):
        return keras.ops.sum(crf_nll(y, e, TRANS, MASK))

    def loss_trans(t):
        return keras.ops.sum(crf_nll(y, EMISSIONS, t, MASK))

    g_e = gradient(loss_emissions, EMISSIONS)
    g_t = gradient(loss_trans, TRANS)
    ref_e = numeric_grad(lambda e: brute_force_nll(e, TRANS, y, lengths).sum(),
                         EMISSIONS.astype("float64"), 1e-5)
    ref_t = numeric_grad(lambda t: brute_force_nll(EMISSIONS, t, y, lengths).sum(),
                         TRANS.astype("float64"), 1e-5)
    np.testing.assert_allclose(g_e, ref_e, atol=1e-4)
    np.testing.assert_allclose(g_t, ref_t, atol=1e-4)
    assert np.all(g_e[~MASK] == 0)  # padded steps receive no gradient
    assert np.abs(ref_t).max() > 0.1  # the check is not vacuous


def test_lr_multiplier_scales_stored_transitions():
    crf = ConditionalRandomField(lr_multiplier=10)
    crf.build((None, None, K))
    stored = to_np(crf._trans)
    np.testing.assert_allclose(to_np(crf.trans), 10 * stored, rtol=1e-6)
    crf._trans.assign(TRANS / 10)
    expected = brute_force_nll(EMISSIONS, TRANS, LABELS, LENGTHS)
    np.testing.assert_allclose(to_np(crf.loss(LABELS, EMISSIONS, MASK)), expected, rtol=1e-5, atol=1e-5)


def test_accuracy_counts_real_steps_only():
    crf = ConditionalRandomField()
    emissions = crf(EMISSIONS, mask=MASK)
    argmax = EMISSIONS.argmax(-1)
    expected = (argmax == LABELS)[MASK].mean()
    assert float(to_np(crf.sparse_accuracy(LABELS, emissions))) == pytest.approx(expected)
    one_hot = np.eye(K, dtype="float32")[LABELS]
    assert float(to_np(crf.dense_accuracy(one_hot, emissions))) == pytest.approx(expected)
    assert float(to_np(crf.accuracy(argmax, emissions))) == 1.0


def tagger(num_labels=K, lr_multiplier=1):
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 8, mask_zero=True)(ids)
    x = keras.layers.Dense(num_labels)(x)
    crf = ConditionalRandomField(lr_multiplier=lr_multiplier, name="crf")
    return keras.Model(ids, crf(x)), crf


def test_keras_mask_reaches_loss_and_fit_learns(tmp_path):
    keras.utils.set_random_seed(1)
    model, crf = tagger(lr_multiplier=5)
    ids = RNG.integers(1, 20, (32, 6))
    ids[:, 4:] = 0
    ids[::2, 3] = 0
    tags = (ids % K) * (ids > 0)
    out = to_np(model(ids))
    assert np.all(out[ids == 0] == -1e12) and np.all(np.abs(out[ids > 0]) < 100)
    # Loss through compile equals crf_nll with the explicit mask.
    explicit = to_np(crf_nll(tags, out, crf.trans, ids > 0)).mean()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=crf.sparse_loss,
                  metrics=[crf.sparse_accuracy])
    first = model.test_on_batch(ids, tags, return_dict=True)
    assert first["loss"] == pytest.approx(explicit, rel=1e-5)
    # train_on_batch: the per-epoch overhead of fit() would dominate this tiny run.
    logs = [model.train_on_batch(ids, tags, return_dict=True) for _ in range(30)]
    assert logs[-1]["loss"] < 0.2 * logs[0]["loss"]
    assert logs[-1]["sparse_accuracy"] == 1.0

    model.save(tmp_path / "crf.keras")
    # Bound-method losses cannot be deserialized, hence compile=False (documented).
    restored = keras.saving.load_model(tmp_path / "crf.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(to_np(restored(ids)), to_np(model(ids)), atol=1e-6)
    crf2 = restored.get_layer("crf")
    assert crf2.lr_multiplier == 5
    np.testing.assert_allclose(to_np(crf2.trans), to_np(crf.trans), atol=1e-6)
    config = crf.get_config()
    assert ConditionalRandomField.from_config(config).get_config() == config
    # A trained tagger decodes the training tags.
    decoder = ViterbiDecoder(to_np(crf.trans))
    nodes = to_np(model(ids[:1]))[0]
    n = int((ids[0] > 0).sum())
    assert decoder.decode(nodes[:n]).tolist() == tags[0, :n].tolist()


def test_trains_under_xla():
    # Keras compiles with XLA by default on TF GPUs and always on JAX.
    if keras.backend.backend() == "torch":
        pytest.skip("jit_compile means torch.compile on torch; not exercised here")
    model, crf = tagger()
    ids = RNG.integers(1, 20, (8, 5))
    ids[:, 3:] = 0
    tags = (ids % K) * (ids > 0)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=crf.sparse_loss, jit_compile=True)
    before = to_np(crf_nll(tags, model(ids), crf.trans)).mean()
    first = model.train_on_batch(ids, tags, return_dict=True)["loss"]
    assert first == pytest.approx(before, rel=1e-5)
    last = [model.train_on_batch(ids, tags, return_dict=True)["loss"] for _ in range(5)][-1]
    assert np.isfinite(last) and last < first


def test_mixed_bfloat16_close_to_float32():
    crf = ConditionalRandomField()
    crf.build((None, None, K))
    crf._trans.assign(TRANS)
    expected = brute_force_nll(EMISSIONS, TRANS, LABELS, LENGTHS)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = ConditionalRandomField()
        out = mixed(EMISSIONS, mask=MASK)
        mixed._trans.assign(TRANS)
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
        assert keras.backend.standardize_dtype(mixed._trans.dtype) == "float32"
        loss = to_np(mixed.loss(LABELS, out))
        assert loss.dtype == np.float32 and np.all(np.isfinite(loss))
        np.testing.assert_allclose(loss, expected, atol=0.05)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_layer_harness():
    check_layer(ConditionalRandomField, {"lr_multiplier": 2}, EMISSIONS, (B, L, K), mask=MASK,
                supports_masking=True, fit_loss=lambda crf: crf.sparse_loss, fit_targets=LABELS)


# ----------------------------------------------------------------------------- Viterbi
def brute_force_decode(nodes, trans, starts=None, ends=None):
    best, best_path = -np.inf, None
    for p in itertools.product(range(len(trans)), repeat=len(nodes)):
        if (starts is not None and p[0] not in starts) or (ends is not None and p[-1] not in ends):
            continue
        s = path_score(nodes, trans, p)
        if s > best:
            best, best_path = s, list(p)
    return best_path


@pytest.mark.parametrize("length", [1, 2, 5])
def test_viterbi_equals_brute_force(length):
    rng = np.random.default_rng(length)
    for _ in range(20):
        k = 4
        nodes = rng.standard_normal((length, k))
        trans = rng.standard_normal((k, k)) * 2
        kept = nodes.copy()
        assert ViterbiDecoder(trans).decode(nodes).tolist() == brute_force_decode(nodes, trans)
        constrained = ViterbiDecoder(trans, starts=[0, 2], ends=[2, 3]).decode(nodes).tolist()
        assert constrained == brute_force_decode(nodes, trans, [0, 2], [2, 3])
        np.testing.assert_array_equal(nodes, kept)  # input left intact


def test_viterbi_rejects_wrong_width():
    with pytest.raises(ValueError, match="shape"):
        ViterbiDecoder(np.zeros((3, 3))).decode(np.zeros((4, 2)))
