"""Su Jianlin's multilabel categorical cross-entropy and the GlobalPointer loss.

For scores `s` and a set of positive classes P (the rest N), the loss is

    log(1 + sum_{i in N} exp(s_i)) + log(1 + sum_{j in P} exp(-s_j))

which generalises softmax cross-entropy to any number of targets with a
fixed threshold of 0: classes with `s > 0` are predicted
(https://kexue.fm/archives/7359, soft labels: https://kexue.fm/archives/9064).
Scores must be raw logits, without sigmoid or softmax.

Everything is computed in float32, whatever the policy of the model.
"""

import keras
from keras import ops

from kerasnlp4su.backend import MASKED_BELOW

# Stands in for infinity inside logsumexp: exp(-1e12) is exactly 0 in float32
# while keeping every value and gradient finite.
_BIG = 1e12


def _logsumexp_with_zero(x):
    """`log(1 + sum(exp(x), -1))`: logsumexp with the threshold class appended."""
    zeros = ops.zeros_like(x[..., :1])
    return ops.logsumexp(ops.concatenate([x, zeros], axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def multilabel_categorical_crossentropy(y_true, y_pred):
    """Dense form: `y_true` has the shape of `y_pred`, values in [0, 1].

    1 marks a target class and 0 a non-target; a value in between is a soft
    label (the class counts as positive with weight `y` and negative with
    weight `1 - y`, inside the log-sum-exp). Cells of `y_pred` at or below
    the masked value written by the pointer/CRF layers are ignored.
    Returns the loss per row, shape `y_pred.shape[:-1]`.

    Example:
    >>> float(multilabel_categorical_crossentropy([[1.0, 0.0]], [[2.0, -1.0]])[0])  # doctest: +ELLIPSIS
    0.44...
    """
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    # bert4keras wrote masked cells as -inf and left them out of the loss, so
    # labels sitting on them are ignored here too.
    valid = y_pred > MASKED_BELOW
    tiny = 1e-30  # only keeps log() finite on the branch `where` discards
    y_neg = ops.where(ops.logical_and(valid, y_true < 1),
                      y_pred + ops.log(ops.maximum(1.0 - y_true, tiny)), -_BIG)
    y_pos = ops.where(ops.logical_and(valid, y_true > 0),
                      -y_pred + ops.log(ops.maximum(y_true, tiny)), -_BIG)
    return _logsumexp_with_zero(y_neg) + _logsumexp_with_zero(y_pos)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """Sparse form: `y_true` holds the indices of the positive classes.

    `y_true` is `(..., num_positive)` integers, `y_pred` `(..., num_classes)`.
    Indices in a row must be distinct. Rows with fewer positives need
    `mask_zero=True`: index 0 is then the padding (repeat it freely) and
    class 0 is dropped from the loss altogether (GlobalPointer gives up the
    (0, 0) [CLS] cell that way).
    The negative part is `log(1 + sum_all exp(s) - sum_pos exp(s))`,
    evaluated stably in log space; its inner factor is clipped at
    `keras.config.epsilon()` as bert4keras did, so it equals the dense form
    except when the positives hold nearly all the mass.

    Example:
    >>> y_pred = keras.ops.convert_to_tensor([[2.0, -1.0, 0.5]])
    >>> loss = sparse_multilabel_categorical_crossentropy([[0, 2]], y_pred)
    """
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "int32")
    zeros = ops.zeros_like(y_pred[..., :1])
    y_pred = ops.concatenate([y_pred, zeros], axis=-1)
    if mask_zero:
        # +BIG at index 0 makes a padded positive contribute exp(-BIG) = 0.
        y_pred = ops.concatenate([zeros + _BIG, y_pred[..., 1:]], axis=-1)
    y_pos = ops.take_along_axis(y_pred, y_true, axis=-1)
    pos_loss = _logsumexp_with_zero(-y_pos)
    if mask_zero:
        # ... and -BIG removes class 0 (and the padding) from the negatives.
        y_pred = ops.concatenate([zeros - _BIG, y_pred[..., 1:]], axis=-1)
        y_pos = ops.take_along_axis(y_pred, y_true, axis=-1)
    all_loss = ops.logsumexp(y_pred, axis=-1)  # includes the appended 0 logit
    pos_share = ops.logsumexp(y_pos, axis=-1) - all_loss
    neg_share = ops.clip(-ops.expm1(pos_share), keras.config.epsilon(), 1.0)
    return pos_loss + all_loss + ops.log(neg_share)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def globalpointer_crossentropy(y_true, y_pred):
    """GlobalPointer loss: multilabel CE over all (start, end) cells of each head.

    `y_true`, `y_pred`: `(batch, heads, L, L)`, with 1 where an entity of
    that type spans (start, end). Each (sample, head) is one multilabel row
    of `L * L` cells; the result has shape `(batch, heads)`, so Keras's mean
    reduction gives the mean over `batch * heads` rows, as bert4keras.

    Example:
    >>> model.compile(optimizer="adam", loss=globalpointer_crossentropy)  # doctest: +SKIP
    """
    shape = ops.shape(y_pred)
    flat = (shape[0], shape[1], -1)
    return multilabel_categorical_crossentropy(ops.reshape(y_true, flat), ops.reshape(y_pred, flat))


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def sparse_globalpointer_crossentropy(y_true, y_pred):
    """Sparse GlobalPointer loss: `y_true` lists the entity spans.

    `y_true`: `(batch, heads, max_entities, 2)` integer (start, end) pairs,
    padded with (0, 0); `y_pred`: `(batch, heads, L, L)`. Returns
    `(batch, heads)` and equals `globalpointer_crossentropy` on the same
    spans whenever no entity sits on the (0, 0) cell (normally [CLS]).
    Memory grows with the number of entities instead of `L * L` labels.
    """
    y_true = ops.cast(y_true, "int32")
    shape = ops.shape(y_pred)
    flat_index = y_true[..., 0] * shape[2] + y_true[..., 1]
    y_pred = ops.reshape(y_pred, (shape[0], shape[1], -1))
    return sparse_multilabel_categorical_crossentropy(flat_index, y_pred, mask_zero=True)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class MultilabelCategoricalCrossentropy(keras.losses.Loss):
    """Keras `Loss` for `multilabel_categorical_crossentropy` and its variants.

    `sparse=True` takes index labels (see the sparse function; `mask_zero`
    applies there). `global_pointer=True` expects `(batch, heads, L, L)`
    scores: dense labels of the same shape, or sparse `(batch, heads, n, 2)`
    (start, end) pairs padded with (0, 0).

    Example:
    >>> loss = MultilabelCategoricalCrossentropy(global_pointer=True)
    >>> model.compile(optimizer="adam", loss=loss)  # doctest: +SKIP
    """

    def __init__(self, sparse=False, mask_zero=False, global_pointer=False,
                 reduction="sum_over_batch_size", name="multilabel_categorical_crossentropy",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.sparse = bool(sparse)
        self.mask_zero = bool(mask_zero)
        self.global_pointer = bool(global_pointer)

    def call(self, y_true, y_pred):
        if self.global_pointer:
            if self.sparse:
                return sparse_globalpointer_crossentropy(y_true, y_pred)
            return globalpointer_crossentropy(y_true, y_pred)
        if self.sparse:
            return sparse_multilabel_categorical_crossentropy(y_true, y_pred, self.mask_zero)
        return multilabel_categorical_crossentropy(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "sparse": self.sparse, "mask_zero": self.mask_zero,
                "global_pointer": self.global_pointer}
