"""Span-level F1 / precision / recall for GlobalPointer-style score tensors.

A cell counts as predicted when its score is above `threshold` (0 for
logits trained with the multilabel categorical cross-entropy), and as gold
when its label is 1. Counts are micro-averaged over every cell of every
sample seen.
"""

import keras
import numpy as np
from keras import ops

METRIC_MODES = ("f1", "precision", "recall")


def _ratios(tp, n_pred, n_true):
    """f1, precision, recall from counts; an empty prediction of an empty gold set is perfect."""
    if n_pred + n_true == 0:
        return 1.0, 1.0, 1.0
    f1 = 2.0 * tp / (n_pred + n_true)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    return f1, precision, recall


def span_f1_score(y_true, y_pred, threshold=0.0):
    """NumPy span metrics: `{'f1': .., 'precision': .., 'recall': ..}`.

    `y_true`: 0/1 labels; `y_pred`: scores of the same shape, e.g.
    `(batch, heads, L, L)` from `GlobalPointer`.

    Example:
    >>> y_true = np.zeros((1, 1, 3, 3)); y_true[0, 0, 0, 1] = 1
    >>> y_pred = np.full((1, 1, 3, 3), -5.0); y_pred[0, 0, 0, 1] = 2.0; y_pred[0, 0, 2, 2] = 1.0
    >>> span_f1_score(y_true, y_pred)["precision"]
    0.5
    """
    y_true = np.asarray(y_true) > 0.5
    y_pred = np.asarray(y_pred) > threshold
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    tp = float(np.sum(y_true & y_pred))
    f1, precision, recall = _ratios(tp, float(y_pred.sum()), float(y_true.sum()))
    return {"f1": f1, "precision": precision, "recall": recall}


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class SpanF1(keras.metrics.Metric):
    """Streaming span F1 (or precision / recall) for pointer scores.

    Accumulates true positives, predicted and gold counts over batches, so
    the epoch value is the micro average over all spans (not a mean of
    per-batch F1). `mode` picks what `result()` returns. `sample_weight`,
    if given, weights each sample's counts (shape `(batch,)`).

    Example:
    >>> model.compile("adam", loss=globalpointer_crossentropy,
    ...               metrics=[SpanF1(), SpanF1(mode="precision", name="precision")])  # doctest: +SKIP
    """

    def __init__(self, threshold=0.0, mode="f1", name=None, dtype=None):
        if mode not in METRIC_MODES:
            raise ValueError(f"mode must be one of {METRIC_MODES}, got {mode!r}")
        super().__init__(name=name or f"span_{mode}", dtype=dtype)
        self.threshold = float(threshold)
        self.mode = mode
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp", dtype="float32")
        self.n_pred = self.add_variable(shape=(), initializer="zeros", name="n_pred", dtype="float32")
        self.n_true = self.add_variable(shape=(), initializer="zeros", name="n_true", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
        y_pred = ops.cast(ops.cast(y_pred, "float32") > self.threshold, "float32")
        axes = tuple(range(1, len(y_pred.shape)))
        tp = ops.sum(y_true * y_pred, axis=axes)
        n_pred = ops.sum(y_pred, axis=axes)
        n_true = ops.sum(y_true, axis=axes)
        if sample_weight is not None:
            w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            tp, n_pred, n_true = tp * w, n_pred * w, n_true * w
        self.tp.assign_add(ops.sum(tp))
        self.n_pred.assign_add(ops.sum(n_pred))
        self.n_true.assign_add(ops.sum(n_true))

    def result(self):
        tp, n_pred, n_true = self.tp, self.n_pred, self.n_true
        if self.mode == "f1":
            value, denominator = 2.0 * tp, n_pred + n_true
        elif self.mode == "precision":
            value, denominator = tp, n_pred
        else:
            value, denominator = tp, n_true
        # Same convention as span_f1_score: nothing predicted and nothing to
        # find is a perfect score; otherwise an empty denominator scores 0.
        empty = ops.logical_and(n_pred == 0, n_true == 0)
        ratio = value / ops.maximum(denominator, 1e-12)
        return ops.where(empty, 1.0, ratio)

    def reset_state(self):
        for v in (self.tp, self.n_pred, self.n_true):
            v.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "mode": self.mode}
