"""SimBERT's similarity and seq2seq losses against NumPy; the training model's loss recomputed by hand."""

import os

import keras
import numpy as np
import pytest

from backend_utils import to_np
from kerasnlp4su.training import seq2seq_loss, similarity_loss, simbert_encoder, simbert_model

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def numpy_similarity_loss(v, scale):
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    logits = scale * v @ v.T
    np.fill_diagonal(logits, -np.inf)
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                keepdims=True)) - logits.max(-1, keepdims=True)
    partners = np.arange(len(v)) ^ 1
    return -log_probs[np.arange(len(v)), partners].mean()


def numpy_seq2seq_loss(ids, segments, probs):
    mask = segments[:, 1:].astype("float64")
    picked = np.take_along_axis(probs[:, :-1], ids[:, 1:, None], axis=-1)[..., 0]
    return (-np.log(np.clip(picked, 1e-7, 1)) * mask).sum() / mask.sum()


@pytest.mark.backend_core
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_similarity_loss_matches_numpy(scale):
    v = np.random.default_rng(0).standard_normal((6, 5)).astype("float32")
    assert float(to_np(similarity_loss(v, scale))) == pytest.approx(numpy_similarity_loss(
        v.astype("float64"), scale), rel=1e-4)


@pytest.mark.backend_core
def test_seq2seq_loss_matches_numpy():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 7, (3, 6)).astype("int32")
    segments = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 1]], "int32")
    probs = rng.random((3, 6, 7)).astype("float32")
    probs /= probs.sum(-1, keepdims=True)
    assert float(to_np(seq2seq_loss(ids, segments, probs))) == pytest.approx(
        numpy_seq2seq_loss(ids, segments, probs), rel=1e-4)


def test_simbert_model_loss_is_seq2seq_plus_similarity_and_trains():
    from kerasnlp4su.models import build_transformer_model

    keras.utils.set_random_seed(0)
    bert = build_transformer_model(os.path.join(TINY, "bert_config.json"),
                                   os.path.join(TINY, "bert_model.ckpt"), application="unilm",
                                   with_pool="linear", with_mlm=True)
    rng = np.random.default_rng(0)
    ids = rng.integers(100, 2000, (4, 9)).astype("int32")
    ids[:, 0], ids[:, 4], ids[:, 8] = 2, 3, 3
    segments = np.array([[0] * 5 + [1] * 4] * 4, "int32")
    x = [ids, segments]
    vectors, probs = (to_np(t) for t in bert(x))
    expected = (numpy_seq2seq_loss(ids, segments, probs.astype("float64"))
                + 0.5 * numpy_similarity_loss(vectors.astype("float64"), 30.0))
    train = simbert_model(bert, scale=30.0, similarity_weight=0.5)
    train.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    assert train.evaluate(x, None, batch_size=4, verbose=0) == pytest.approx(expected, rel=1e-4)
    history = train.fit(x, None, batch_size=4, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]
    encoded = to_np(simbert_encoder(bert)(x))
    np.testing.assert_allclose(np.linalg.norm(encoded, axis=-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="with_pool='linear', with_mlm=True"):
        simbert_model(build_transformer_model(os.path.join(TINY, "bert_config.json")))


def test_docstring_examples_run():
    import doctest

    import kerasnlp4su.training.simbert as module

    result = doctest.testmod(module, extraglobs={"keras": keras, "np": np},
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, result
