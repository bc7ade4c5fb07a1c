"""Multilabel categorical cross-entropy (dense, sparse, GlobalPointer) and span metrics."""

import keras
import numpy as np
import pytest

from kerasnlp4su.training.losses import (
    MultilabelCategoricalCrossentropy,
    globalpointer_crossentropy,
    multilabel_categorical_crossentropy,
    sparse_globalpointer_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)
from kerasnlp4su.training.metrics import SpanF1, span_f1_score

from backend_utils import gradient, to_np

RNG = np.random.default_rng(0)


def mlce_np(y_true, y_pred):
    """log(1 + sum_neg exp(s)) + log(1 + sum_pos exp(-s)), soft labels as weights (float64)."""
    y_true, s = np.asarray(y_true, "float64"), np.asarray(y_pred, "float64")
    neg = np.log1p(np.sum((1 - y_true) * np.exp(s), -1))
    pos = np.log1p(np.sum(y_true * np.exp(-s), -1))
    return neg + pos


def mlce_grad_np(y_true, y_pred):
    """Analytic d loss / d s for hard labels."""
    s = np.asarray(y_pred, "float64")
    e_neg = (1 - y_true) * np.exp(s)
    e_pos = y_true * np.exp(-s)
    return e_neg / (1 + e_neg.sum(-1, keepdims=True)) - e_pos / (1 + e_pos.sum(-1, keepdims=True))


def random_problem(rows=6, classes=10, positives=3):
    y_pred = (RNG.standard_normal((rows, classes)) * 2).astype("float32")
    index = np.stack([RNG.choice(classes, positives, replace=False) for _ in range(rows)])
    dense = np.zeros((rows, classes), "float32")
    np.put_along_axis(dense, index, 1.0, axis=-1)
    return y_pred, index, dense


def test_dense_matches_numpy_and_sparse():
    y_pred, index, dense = random_problem()
    expected = mlce_np(dense, y_pred)
    got = to_np(multilabel_categorical_crossentropy(dense, y_pred))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    sparse = to_np(sparse_multilabel_categorical_crossentropy(index, y_pred))
    np.testing.assert_allclose(sparse, got, rtol=1e-5)
    # Hand-checked value: s = [2, -1], class 0 positive -> log(1 + e^-1) + log(1 + e^-2).
    assert float(to_np(multilabel_categorical_crossentropy([[1.0, 0.0]], [[2.0, -1.0]]))[0]) == \
        pytest.approx(np.log1p(np.exp(-1)) + np.log1p(np.exp(-2)), rel=1e-6)


def test_sparse_mask_zero_drops_class_zero_and_padding():
    y_pred, _, _ = random_problem(classes=12)
    index = np.stack([1 + RNG.choice(11, 4, replace=False) for _ in range(len(y_pred))])  # class 0 is padding
    dense = np.zeros_like(y_pred)
    np.put_along_axis(dense, index, 1.0, axis=-1)
    padded = np.concatenate([index, np.zeros((len(index), 3), int)], axis=-1)
    expected = mlce_np(dense[:, 1:], y_pred[:, 1:])
    got = to_np(sparse_multilabel_categorical_crossentropy(padded, y_pred, mask_zero=True))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A row that is all padding only pays for its negatives.
    empty = to_np(sparse_multilabel_categorical_crossentropy(np.zeros((1, 2), int), y_pred[:1], mask_zero=True))
    np.testing.assert_allclose(empty, np.log1p(np.exp(y_pred[:1, 1:].astype("float64")).sum(-1)), rtol=1e-5)


def test_soft_labels_and_masked_scores():
    y_pred, _, _ = random_problem()
    soft = RNG.uniform(0, 1, y_pred.shape).astype("float32")
    np.testing.assert_allclose(to_np(multilabel_categorical_crossentropy(soft, y_pred)),
                               mlce_np(soft, y_pred), rtol=1e-5)
    # Cells written as masked by a layer are ignored even if labelled positive.
    y_pred2, _, dense = random_problem()
    masked = y_pred2.copy()
    masked[:, -2:] = -1e12
    labels = dense.copy()
    labels[:, -2:] = 1.0
    np.testing.assert_allclose(to_np(multilabel_categorical_crossentropy(labels, masked)),
                               mlce_np(dense[:, :-2], y_pred2[:, :-2]), rtol=1e-5)


def test_gradients_dense_and_sparse():
    y_pred, index, dense = random_problem()
    expected = mlce_grad_np(dense, y_pred)
    g_dense = gradient(lambda s: keras.ops.sum(multilabel_categorical_crossentropy(dense, s)), y_pred)
    g_sparse = gradient(lambda s: keras.ops.sum(sparse_multilabel_categorical_crossentropy(index, s)), y_pred)
    np.testing.assert_allclose(g_dense, expected, atol=1e-5)
    np.testing.assert_allclose(g_sparse, expected, atol=1e-4)
    masked = y_pred.copy()
    masked[:, 0] = -1e12
    g_masked = gradient(lambda s: keras.ops.sum(multilabel_categorical_crossentropy(dense, s)), masked)
    assert np.all(np.isfinite(g_masked)) and np.all(g_masked[:, 0] == 0)


def gp_problem(batch=2, heads=3, length=5, entities=2):
    y_pred = (RNG.standard_normal((batch, heads, length, length)) * 2).astype("float32")
    spans = np.zeros((batch, heads, entities + 1, 2), int)  # one padding slot per row
    dense = np.zeros_like(y_pred)
    for b in range(batch):
        for h in range(heads):
            cells = RNG.choice([(i, j) for i in range(1, length) for j in range(i, length)],
                               entities, replace=False)
            spans[b, h, :entities] = cells
            dense[b, h, cells[:, 0], cells[:, 1]] = 1
    return y_pred, spans, dense


def test_globalpointer_dense_sparse_and_numpy_agree():
    y_pred, spans, dense = gp_problem()
    expected = mlce_np(dense.reshape(2, 3, -1), y_pred.reshape(2, 3, -1))
    got = to_np(globalpointer_crossentropy(dense, y_pred))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # The sparse form drops the (0, 0) cell; with it at a masked value both coincide.
    y_masked = y_pred.copy()
    y_masked[:, :, 0, 0] = -1e12
    np.testing.assert_allclose(to_np(sparse_globalpointer_crossentropy(spans, y_masked)),
                               to_np(globalpointer_crossentropy(dense, y_masked)), rtol=1e-5)


def test_loss_class_reduction_and_serialization():
    y_pred, spans, dense = gp_problem()
    loss = MultilabelCategoricalCrossentropy(global_pointer=True)
    value = float(to_np(loss(dense, y_pred)))
    assert value == pytest.approx(mlce_np(dense.reshape(2, 3, -1), y_pred.reshape(2, 3, -1)).mean(), rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, MultilabelCategoricalCrossentropy) and restored.global_pointer
    sparse = MultilabelCategoricalCrossentropy(global_pointer=True, sparse=True)
    y_masked = y_pred.copy()
    y_masked[:, :, 0, 0] = -1e12
    assert float(to_np(sparse(spans, y_masked))) == pytest.approx(float(to_np(loss(dense, y_masked))), rel=1e-5)
    flat_pred, index, flat_dense = random_problem()
    plain = MultilabelCategoricalCrossentropy(sparse=True)
    assert float(to_np(plain(index, flat_pred))) == pytest.approx(mlce_np(flat_dense, flat_pred).mean(), rel=1e-5)
    assert keras.saving.get_registered_object("kerasnlp4su>globalpointer_crossentropy") is \
        globalpointer_crossentropy


def test_bfloat16_scores_are_computed_in_float32():
    y_pred, _, dense = random_problem()
    rounded = to_np(keras.ops.cast(keras.ops.convert_to_tensor(y_pred), "bfloat16")).astype("float32")
    out = multilabel_categorical_crossentropy(dense, keras.ops.cast(y_pred, "bfloat16"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(to_np(out), mlce_np(dense, rounded), rtol=1e-5)
    masked = keras.ops.cast(keras.ops.full((1, 4), -6e4), "bfloat16")  # bf16 masked value
    assert float(to_np(multilabel_categorical_crossentropy(np.ones((1, 4)), masked))[0]) == 0.0


# ---------------------------------------------------------------------------- metrics
def test_span_f1_numpy_counts():
    y_true = np.zeros((2, 1, 3, 3))
    y_true[0, 0, 0, 1] = y_true[1, 0, 1, 2] = y_true[1, 0, 0, 0] = 1
    y_pred = np.full((2, 1, 3, 3), -1e12)
    y_pred[0, 0, 0, 1] = 2.0  # tp
    y_pred[0, 0, 2, 2] = 0.5  # fp
    y_pred[1, 0, 1, 2] = 0.1  # tp
    y_pred[1, 0, 0, 0] = -0.1  # fn (below threshold)
    scores = span_f1_score(y_true, y_pred)
    assert scores == pytest.approx({"f1": 4 / 6, "precision": 2 / 3, "recall": 2 / 3})
    assert span_f1_score(y_true, y_pred, threshold=-0.5)["recall"] == 1.0
    assert span_f1_score(np.zeros(4), -np.ones(4)) == {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    assert span_f1_score(np.ones(4), -np.ones(4))["f1"] == 0.0


@pytest.mark.parametrize("mode", ["f1", "precision", "recall"])
def test_span_metric_streams_micro_average(mode):
    y_true = (RNG.uniform(size=(6, 2, 4, 4)) > 0.7).astype("float32")
    y_pred = RNG.standard_normal((6, 2, 4, 4)).astype("float32") + (y_true - 0.5)
    metric = SpanF1(mode=mode)
    metric.update_state(y_true[:2], y_pred[:2])
    metric.update_state(y_true[2:], y_pred[2:])
    assert float(to_np(metric.result())) == pytest.approx(span_f1_score(y_true, y_pred)[mode], rel=1e-6)
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=np.array([1, 1, 0, 0, 1, 1]))
    kept = [0, 1, 4, 5]
    assert float(to_np(metric.result())) == pytest.approx(span_f1_score(y_true[kept], y_pred[kept])[mode], rel=1e-6)
    config = metric.get_config()
    assert config["mode"] == mode and SpanF1.from_config(config).get_config() == config
    metric.reset_state()
    assert float(to_np(metric.result())) == 1.0  # nothing seen: no spans missed


@pytest.mark.parametrize("module", [
    "kerasnlp4su.layers.global_pointer", "kerasnlp4su.layers.crf", "kerasnlp4su.layers.gau",
    "kerasnlp4su.training.losses", "kerasnlp4su.training.metrics",
    "kerasnlp4su.decoding.viterbi"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), extraglobs={"keras": keras, "np": np},
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
