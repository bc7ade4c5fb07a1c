"""Attention masks computed from token and segment ids, as serializable layers."""

import keras
from keras import ops

from kerasnlp4su.backend import NEG_INF

MASK_MODES = ("padding", "lm", "unilm")


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class AttentionMask(keras.layers.Layer):
    """Additive attention bias from token ids (and segment ids for UniLM).

    * `'padding'`: keys with token id 0 are hidden; shape `(batch, 1, 1, L)`.
    * `'lm'`: causal (each token sees itself and the past) plus padding;
      shape `(batch, 1, L, L)`.
    * `'unilm'`: segment 0 is fully visible, segment 1 is causal (UniLM
      seq2seq); the input is `[token_ids, segment_ids]`.

    Values are 0 where attention is allowed and a large negative number where
    it is not, so the result is simply added to the attention scores.

    Example:
    >>> ids = keras.ops.array([[101, 7, 102, 0]])
    >>> AttentionMask("padding")(ids).shape
    (1, 1, 1, 4)
    """

    def __init__(self, mode="padding", **kwargs):
        super().__init__(**kwargs)
        if mode not in MASK_MODES:
            raise ValueError(f"AttentionMask mode must be one of {MASK_MODES}, got {mode!r}")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "unilm":
            token_ids, segment_ids = inputs
        else:
            token_ids = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        keep = ops.not_equal(token_ids, 0)[:, None, None, :]
        if self.mode == "lm":
            idx = ops.arange(ops.shape(token_ids)[1])
            keep = ops.logical_and(keep, (idx[None, :] <= idx[:, None])[None, None])
        elif self.mode == "unilm":
            # Key j is visible to query i when j's segment-1 prefix count does
            # not exceed i's: segment 0 sees segment 0, segment 1 sees the
            # source and its own past.
            order = ops.cumsum(ops.cast(segment_ids, "int32"), axis=1)
            keep = ops.logical_and(keep, (order[:, None, :] <= order[:, :, None])[:, None])
        return ops.where(keep, 0.0, NEG_INF)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        length = shape[1]
        if self.mode == "padding":
            return (shape[0], 1, 1, length)
        return (shape[0], 1, length, length)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class PaddingMask(keras.layers.Layer):
    """`(batch, L)` boolean keep-mask: True where the token id is not 0.

    Example:
    >>> PaddingMask()(keras.ops.array([[5, 0]]))
    """

    def call(self, inputs):
        return ops.not_equal(inputs, 0)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")

    def compute_mask(self, inputs, mask=None):
        return None
