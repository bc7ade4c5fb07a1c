"""Bidirectional maximum-entropy Markov model: a cheaper CRF (bert4keras's MEMM)."""

import keras
from keras import ops

from kerasnlp4su.layers.crf import mask_into_scores

_PADDED_BELOW = -3e4  # padded steps hold -large_value(dtype) <= -6e4 (as in crf.py)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class MaximumEntropyMarkovModel(keras.layers.Layer):
    """Per-token softmax over `(emission_t + trans[y_{t-1}]) / 2`, both directions averaged.

    Used like `ConditionalRandomField`: an identity on emission scores
    `(batch, length, num_labels)` that writes `-large_value(dtype)` at padded
    steps (so the mask reaches the loss), and whose `sparse_loss` /
    `dense_loss` / `sparse_accuracy` / `dense_accuracy` go to `compile`.

    Forward direction: step 0 uses its emissions alone; step t > 0 uses the
    average of its emissions and the row of `trans` of the previous gold
    label (teacher forcing); the loss is the mean cross-entropy over real
    steps. The backward direction does the same on each sequence reversed
    (real steps only; padding on the right) with `trans` transposed. The loss
    and accuracy are the mean of both directions (bert4keras's definition).
    Decode with `ViterbiDecoder(memm.trans)`.

    `hidden_dim` factors `trans = l_trans @ r_trans.T` (low rank, for many
    labels). `lr_multiplier` stores the transitions divided by it and scales
    them back at use, as in the CRF.

    Example:
    >>> memm = MaximumEntropyMarkovModel(lr_multiplier=100)
    >>> x = keras.Input((None, 16))
    >>> model = keras.Model(x, memm(keras.layers.Dense(5)(x)))
    >>> model.compile("adam", loss=memm.sparse_loss, metrics=[memm.sparse_accuracy])
    """

    def __init__(self, lr_multiplier=1, hidden_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.lr_multiplier = float(lr_multiplier)
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)

    def build(self, input_shape):
        num_labels = input_shape[-1]
        shapes = ({"trans": (num_labels, num_labels)} if self.hidden_dim is None else
                  {"l_trans": (num_labels, self.hidden_dim), "r_trans": (num_labels, self.hidden_dim)})
        for name, shape in shapes.items():
            variable = self.add_weight(name=name, shape=shape, initializer="glorot_uniform")
            if self.lr_multiplier != 1:
                variable.assign(variable / self.lr_multiplier)
            setattr(self, "_" + name, variable)
        self.built = True

    def _scaled(self, variable):
        value = ops.convert_to_tensor(variable)
        return value * self.lr_multiplier if self.lr_multiplier != 1 else value

    @property
    def trans(self):
        """The effective `(num_labels, num_labels)` transitions, `trans[i, j]`: i -> j."""
        if self.hidden_dim is None:
            return self._scaled(self._trans)
        return ops.matmul(self.l_trans, ops.transpose(self.r_trans))

    @property
    def l_trans(self):
        return self._scaled(self._l_trans)

    @property
    def r_trans(self):
        return self._scaled(self._r_trans)

    def call(self, inputs, mask=None):
        return mask_into_scores(inputs, mask)

    def compute_mask(self, inputs, mask=None):
        return None  # the mask travels in the values (see ConditionalRandomField)

    def compute_output_shape(self, input_shape):
        return input_shape

    # ------------------------------------------------------------ loss, accuracy
    def _direction_logits(self, labels, y_pred, mask, backwards):
        """Averaged logits of one direction, with labels and mask in that direction's order."""
        if backwards:
            labels, y_pred, mask = (_reverse_real_steps(t, mask) for t in (labels, y_pred, mask))
        if self.hidden_dim is None:
            trans = ops.transpose(self.trans) if backwards else self.trans
            history = ops.take(trans, labels, axis=0)
        else:
            left, right = (self.r_trans, self.l_trans) if backwards else (self.l_trans, self.r_trans)
            history = ops.einsum("bnd,kd->bnk", ops.take(left, labels, axis=0), right)
        history = ops.concatenate([y_pred[:, :1], history[:, :-1]], axis=1)
        return labels, (y_pred + history) / 2, mask

    def _prepare(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        mask = ops.all(y_pred > _PADDED_BELOW, axis=-1)
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] not in (None, 1):
            y_true = ops.argmax(y_true, axis=-1)  # one-hot
        labels = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        return labels, ops.where(mask[:, :, None], y_pred, 0.0), mask

    def basic_loss(self, y_true, y_pred, go_backwards=False):
        """Mean cross-entropy of one direction over real steps (integer labels)."""
        labels, logits, mask = self._direction_logits(*self._prepare(y_true, y_pred), go_backwards)
        loss = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        maskf = ops.cast(mask, "float32")
        return ops.sum(loss * maskf) / ops.maximum(ops.sum(maskf), 1.0)

    def sparse_loss(self, y_true, y_pred):
        """Mean of the forward and backward losses; `y_true` holds label ids."""
        return (self.basic_loss(y_true, y_pred, False) + self.basic_loss(y_true, y_pred, True)) / 2

    def dense_loss(self, y_true, y_pred):
        """`sparse_loss` for one-hot `y_true`."""
        return self.sparse_loss(y_true, y_pred)

    def basic_accuracy(self, y_true, y_pred, go_backwards=False):
        """Per-token accuracy of one direction's argmax over real steps."""
        labels, logits, mask = self._direction_logits(*self._prepare(y_true, y_pred), go_backwards)
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels), "float32")
        maskf = ops.cast(mask, "float32")
        return ops.sum(hit * maskf) / ops.maximum(ops.sum(maskf), 1.0)

    def sparse_accuracy(self, y_true, y_pred):
        """Mean of the forward and backward accuracies; `y_true` holds label ids."""
        return (self.basic_accuracy(y_true, y_pred, False) + self.basic_accuracy(y_true, y_pred, True)) / 2

    def dense_accuracy(self, y_true, y_pred):
        """`sparse_accuracy` for one-hot `y_true`."""
        return self.sparse_accuracy(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "lr_multiplier": self.lr_multiplier, "hidden_dim": self.hidden_dim}


def _reverse_real_steps(x, mask):
    """Reverse each sequence's real (left-aligned) steps along axis 1; padding stays put."""
    length = ops.sum(ops.cast(mask, "int32"), axis=1)[:, None]
    steps = ops.arange(ops.shape(mask)[1], dtype="int32")[None, :]
    index = ops.where(steps < length, length - 1 - steps, steps)
    if len(x.shape) == 3:
        index = ops.broadcast_to(index[:, :, None], ops.shape(x))
    return ops.take_along_axis(x, index, axis=1)
