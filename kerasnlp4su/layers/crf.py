"""Linear-chain conditional random field as a Keras layer plus its loss."""

import keras
from keras import ops

from kerasnlp4su.backend import MASKED_BELOW, large_value


def mask_into_scores(scores, mask=None):
    """`scores` `(batch, length, labels)` with padded steps written as `-large_value`.

    The sequence taggers (CRF, MEMM) carry the padding mask in their output
    values, so their losses and decoders see it without a Keras mask.
    """
    if mask is None:
        return scores
    keep = ops.cast(mask, "bool")[:, :, None]
    return ops.where(keep, scores, ops.cast(-large_value(scores.dtype), scores.dtype))


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class ConditionalRandomField(keras.layers.Layer):
    """CRF over per-token emission scores; holds the transition matrix `trans`.

    The layer is an identity on its input `(batch, length, num_labels)`,
    except that when a padding mask reaches it (Keras mask, or `mask=`),
    padded steps are overwritten with `-large_value(dtype)`. That is how the
    mask travels to `loss`/`accuracy` when they are used in `compile`, on
    every backend (Keras does not hand the mask to a loss of a different
    shape). Padding must be on the right (a prefix of real steps), as
    produced by `sequence_padding`.

    `loss(y_true, y_pred, mask=None)` is the negative log-likelihood
    `log Z - score(path)` per sequence, computed in float32 log space with
    a scan over time; `y_true` may be label ids `(batch, length)` or one-hot
    `(batch, length, num_labels)`. `accuracy` is the per-token accuracy of
    the emission argmax over real steps (a cheap training signal; decode
    with `kerasnlp4su.decoding.ViterbiDecoder(crf.trans)` for predictions).

    `lr_multiplier` stores `trans / lr_multiplier` and multiplies it back
    at use, so the transitions learn `lr_multiplier` times faster with SGD
    (the usual trick: emission layers are pretrained, transitions are not).

    Saving: a model compiled with these bound methods saves to `.keras`
    normally, but Keras cannot rebuild a bound method, so load it with
    `keras.saving.load_model(path, compile=False)` and compile again with
    the restored layer's `sparse_loss` (the weights, `trans` included,
    are restored either way).

    Example:
    >>> crf = ConditionalRandomField(lr_multiplier=100)
    >>> x = keras.Input((None, 16))
    >>> emissions = crf(keras.layers.Dense(5)(x))
    >>> model = keras.Model(x, emissions)
    >>> model.compile("adam", loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])
    """

    def __init__(self, lr_multiplier=1, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.lr_multiplier = float(lr_multiplier)

    def build(self, input_shape):
        num_labels = input_shape[-1]
        self._trans = self.add_weight(name="trans", shape=(num_labels, num_labels),
                                      initializer="glorot_uniform")
        if self.lr_multiplier != 1:
            self._trans.assign(self._trans / self.lr_multiplier)
        self.built = True

    @property
    def trans(self):
        """The effective `(num_labels, num_labels)` transition scores, `trans[i, j]`: i -> j."""
        if self.lr_multiplier != 1:
            return self._trans * self.lr_multiplier
        return ops.convert_to_tensor(self._trans)

    def call(self, inputs, mask=None):
        return mask_into_scores(inputs, mask)

    def compute_mask(self, inputs, mask=None):
        # The mask is already in the values; returning it would make Keras
        # weight the (batch,) loss with a (batch, length) mask.
        return None

    def compute_output_shape(self, input_shape):
        return input_shape

    # ------------------------------------------------------------------ loss
    def loss(self, y_true, y_pred, mask=None):
        """Per-sequence negative log-likelihood, shape `(batch,)`; see `crf_nll`.

        `mask` defaults to the padded steps written by `call`.
        """
        return crf_nll(y_true, y_pred, self.trans, mask)

    def sparse_loss(self, y_true, y_pred):
        """`loss` for integer label ids (bert4keras name, for `compile`)."""
        return self.loss(y_true, y_pred)

    def dense_loss(self, y_true, y_pred):
        """`loss` for one-hot labels (bert4keras name, for `compile`)."""
        return self.loss(y_true, y_pred)

    def accuracy(self, y_true, y_pred, mask=None):
        """Per-token accuracy of the emission argmax, over real steps only."""
        labels, y_pred, mask = _prepare(y_true, y_pred, mask)
        hit = ops.cast(ops.argmax(y_pred, axis=-1) == ops.argmax(labels, axis=-1), "float32")
        maskf = ops.cast(mask, "float32")
        return ops.sum(hit * maskf) / ops.maximum(ops.sum(maskf), 1.0)

    def sparse_accuracy(self, y_true, y_pred):
        """`accuracy` for integer label ids (bert4keras name, for `compile`)."""
        return self.accuracy(y_true, y_pred)

    def dense_accuracy(self, y_true, y_pred):
        """`accuracy` for one-hot labels (bert4keras name, for `compile`)."""
        return self.accuracy(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "lr_multiplier": self.lr_multiplier}


def _prepare(y_true, y_pred, mask):
    """float32 one-hot labels and emissions, both zeroed at padded steps, and the keep-mask."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.convert_to_tensor(y_true)
    if mask is None:
        mask = ops.max(y_pred, axis=-1) > MASKED_BELOW  # padded steps are -large_value
    mask = ops.cast(mask, "bool")
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1]:
        labels = ops.cast(y_true, "float32")
    else:
        ids = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        labels = ops.one_hot(ids, ops.shape(y_pred)[-1], dtype="float32")
    # Zeroing padded steps removes them (and their transitions) from the path score.
    labels = labels * ops.cast(mask, "float32")[:, :, None]
    return labels, ops.where(mask[:, :, None], y_pred, 0.0), mask


def crf_path_score(labels, y_pred, trans):
    """Unnormalised log score of one-hot label paths: emissions + transitions."""
    emission = ops.sum(labels * y_pred, axis=(1, 2))
    transition = ops.einsum("bti,ij,btj->b", labels[:, :-1], trans, labels[:, 1:])
    return emission + transition


def crf_log_partition(y_pred, trans, mask):
    """`log Z` by the forward algorithm; padded steps carry the state through."""
    alpha = y_pred[:, 0]
    if y_pred.shape[1] == 1:
        return ops.logsumexp(alpha, axis=-1)
    trans = trans[None]

    def step(state, emission, keep):
        new = ops.logsumexp(state[:, :, None] + trans, axis=1) + emission
        return ops.where(keep[:, None], new, state)

    if keras.backend.backend() == "tensorflow":
        # TF's scan keeps its carry in a TensorArray whose gradient XLA cannot
        # compile (and Keras turns XLA on by default on GPU); a while loop with
        # a known trip count can.
        steps = ops.shape(y_pred)[1] - 1

        def body(t, state):
            return t + 1, step(state, ops.take(y_pred, t + 1, axis=1), ops.take(mask, t + 1, axis=1))

        _, alpha = ops.while_loop(lambda t, state: t < steps, body, (0, alpha),
                                  maximum_iterations=steps)
    else:
        # JAX can only differentiate while loops written as scans.
        xs = (ops.transpose(y_pred[:, 1:], (1, 0, 2)), ops.transpose(mask[:, 1:], (1, 0)))
        alpha, _ = ops.scan(lambda state, x: (step(state, *x),) * 2, alpha, xs)
    return ops.logsumexp(alpha, axis=-1)


def crf_nll(y_true, y_pred, trans, mask=None):
    """Linear-chain CRF negative log-likelihood `log Z - score(y_true)`, shape `(batch,)`.

    `y_true`: ids `(batch, length)` / `(batch, length, 1)` or one-hot
    `(batch, length, num_labels)`; `y_pred`: emissions `(batch, length,
    num_labels)`; `trans[i, j]`: score of label i followed by j. `mask`:
    `(batch, length)` keep-mask with right padding; when omitted, steps whose
    scores are all at the masked value (as written by
    `ConditionalRandomField`) are padding. Computed in float32; a sequence
    with no real step has loss 0.

    Example:
    >>> nll = crf_nll(keras.ops.zeros((1, 3), "int32"), keras.ops.zeros((1, 3, 2)), keras.ops.zeros((2, 2)))
    >>> round(float(nll[0]), 4)  # all 2**3 paths tie: log 8
    2.0794
    """
    labels, y_pred, mask = _prepare(y_true, y_pred, mask)
    trans = ops.cast(trans, "float32")
    nll = crf_log_partition(y_pred, trans, mask) - crf_path_score(labels, y_pred, trans)
    return ops.where(ops.any(mask, axis=1), nll, 0.0)
