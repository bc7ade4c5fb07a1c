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

from kerasnlp4su.backend import (  # noqa: F401  (defined with bert4keras's backend names)
    multilabel_categorical_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)


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
