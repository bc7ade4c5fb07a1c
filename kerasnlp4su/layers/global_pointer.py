"""GlobalPointer heads: score every (start, end) token pair per entity type.

References: https://kexue.fm/archives/8373 (GlobalPointer) and
https://kexue.fm/archives/8877 (the parameter-efficient variant).
"""

import keras
from keras import ops

from kerasnlp4su.backend import large_value
from kerasnlp4su.layers._quantization import with_sublayer_policies
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.position import RotaryEmbedding
from kerasnlp4su.layers.remat import Rematerialisable, outside_remat_scope


def mask_span_scores(logits, mask=None, tril_mask=True):
    """Overwrite cells of `(batch, heads, L, L)` scores that cannot be spans.

    A cell (i, j) is kept when both token i and token j are real (per the
    `(batch, L)` keep-mask) and, with `tril_mask`, when `i <= j`. Other cells
    are set to exactly `-large_value(dtype)`, not shifted by it, so the loss
    and the decoders can recognise them.
    """
    keep = None
    if mask is not None:
        mask = ops.cast(mask, "bool")
        keep = ops.logical_and(mask[:, None, :, None], mask[:, None, None, :])
    if tril_mask:
        idx = ops.arange(ops.shape(logits)[-1])
        upper = (idx[:, None] <= idx[None, :])[None, None]
        keep = upper if keep is None else ops.logical_and(keep, upper)
    if keep is None:
        return logits
    return ops.where(keep, logits, ops.cast(-large_value(logits.dtype), logits.dtype))


class _SpanPointerBase(Rematerialisable, keras.layers.Layer):
    """Shared configuration and masking for the two pointer heads."""

    def __init__(self, heads, head_size, use_bias=True, rope=True, tril_mask=True,
                 kernel_initializer="lecun_normal", **kwargs):
        # bert4keras spelled the flag `RoPE`; accept it so old configs load.
        rope = kwargs.pop("RoPE", rope)
        super().__init__(**kwargs)
        self.heads = int(heads)
        self.head_size = int(head_size)
        if self.head_size % 2:
            raise ValueError(f"head_size must be even for rotary embeddings, got {head_size}")
        self.use_bias = bool(use_bias)
        self.rope = bool(rope)
        self.tril_mask = bool(tril_mask)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        with outside_remat_scope():
            self.rotary = RotaryEmbedding(dtype=self.dtype_policy) if self.rope else None

    def _dense(self, units, name, input_shape):
        with outside_remat_scope():
            layer = Dense(units, use_bias=self.use_bias, name=name,
                          kernel_initializer=self.kernel_initializer,
                          dtype=self.dtype_policy)
        layer.build(input_shape)
        return layer

    def compute_mask(self, inputs, mask=None):
        # The padding is already written into the scores; a propagated
        # (batch, L) mask would be misapplied by Keras losses to (batch, heads) values.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.heads, input_shape[1], input_shape[1])

    def get_config(self):
        return {
            **with_sublayer_policies(self, super().get_config()),
            "heads": self.heads,
            "head_size": self.head_size,
            "use_bias": self.use_bias,
            "rope": self.rope,
            "tril_mask": self.tril_mask,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class GlobalPointer(_SpanPointerBase):
    """Multi-head span scorer: `s_h(i, j) = <q_h(i), k_h(j)> / sqrt(head_size)`.

    Input `(batch, length, hidden)` and an optional keep-mask `(batch, length)`
    (the Keras mask of the input, or `mask=` at call time). Output
    `(batch, heads, length, length)`: a score per entity type and
    (start, end) pair; a span is predicted where the score is > 0.

    One Dense layer (named `dense`) gives, for each head, `2 * head_size`
    features: the first half is q, the second half k. RoPE (interleaved
    pairs) makes the score depend on the relative offset `j - i`. Cells
    with a padded start or end, and with `tril_mask` those with start > end,
    are set to `-large_value(dtype)` (-1e12 in float32; bert4keras used
    -inf, which turns a fully padded row of the loss into NaN gradients).

    Train with `kerasnlp4su.training.losses.globalpointer_crossentropy`.

    Example:
    >>> gp = GlobalPointer(heads=3, head_size=8)
    >>> tuple(gp(keras.ops.ones((2, 5, 16))).shape)
    (2, 3, 5, 5)
    """

    def build(self, input_shape):
        self.dense = self._dense(2 * self.heads * self.head_size, "dense", input_shape)
        self.built = True

    def call(self, inputs, mask=None):
        x = self.dense(inputs)
        x = ops.reshape(x, ops.shape(x)[:2] + (self.heads, 2 * self.head_size))
        q, k = x[..., :self.head_size], x[..., self.head_size:]
        if self.rotary is not None:
            q, k = self.rotary.rotate(q), self.rotary.rotate(k)
        logits = ops.einsum("bmhd,bnhd->bhmn", q, k) / ops.cast(self.head_size**0.5, q.dtype)
        return mask_span_scores(logits, mask, self.tril_mask)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class EfficientGlobalPointer(_SpanPointerBase):
    """GlobalPointer with the entity-type dependence moved into cheap biases.

    All heads share one q/k projection (`p_dense`, `2 * head_size` units,
    q taking the even and k the odd features, as bert4keras). A second
    Dense (`q_dense`, `2 * heads` units) is applied to that projection and,
    halved, gives each head a bias for the end token (even units) and for
    the start token (odd units):

        s_h(i, j) = <q(i), k(j)> / sqrt(head_size) + b_h^end(j) + b_h^start(i)

    Masking and output shape are those of `GlobalPointer`; each extra entity
    type costs `4 * head_size + 2` parameters instead of
    `2 * head_size * (hidden + 1)`.

    Example:
    >>> egp = EfficientGlobalPointer(heads=3, head_size=8)
    >>> tuple(egp(keras.ops.ones((2, 5, 16))).shape)
    (2, 3, 5, 5)
    """

    def build(self, input_shape):
        self.p_dense = self._dense(2 * self.head_size, "p_dense", input_shape)
        self.q_dense = self._dense(2 * self.heads, "q_dense",
                                   tuple(input_shape[:-1]) + (2 * self.head_size,))
        self.built = True

    def call(self, inputs, mask=None):
        x = self.p_dense(inputs)
        q, k = x[..., ::2], x[..., 1::2]
        if self.rotary is not None:
            q, k = self.rotary.rotate(q), self.rotary.rotate(k)
        logits = ops.einsum("bmd,bnd->bmn", q, k) / ops.cast(self.head_size**0.5, q.dtype)
        # The biases read the projection before RoPE, as in bert4keras.
        bias = ops.transpose(self.q_dense(x), (0, 2, 1)) / ops.cast(2, x.dtype)
        logits = logits[:, None] + bias[:, 0::2, None, :] + bias[:, 1::2, :, None]
        return mask_span_scores(logits, mask, self.tril_mask)
