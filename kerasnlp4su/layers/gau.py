"""Gated Attention Unit (GAU), the block of FLASH and GAU-alpha.

Reference: Hua et al., "Transformer Quality in Linear Time"
(https://arxiv.org/abs/2202.10447) and https://kexue.fm/archives/8934.
"""

import math

import keras
from keras import ops

from kerasnlp4su.backend import NEG_INF, get_activation
from kerasnlp4su.layers._precision import at_least_float32
from kerasnlp4su.layers._quantization import with_sublayer_policies
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.position import RotaryEmbedding
from kerasnlp4su.layers.remat import Rematerialisable, outside_remat_scope

NORMALIZATIONS = ("squared_relu", "softmax_plus", "softmax")


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class ScaleOffset(Rematerialisable, keras.layers.Layer):
    """`x * gamma + beta` with per-feature `gamma` (ones) and optional `beta` (zeros).

    GAU derives q and k from one shared projection with two of these.

    Example:
    >>> tuple(ScaleOffset()(keras.ops.ones((2, 3, 4))).shape)
    (2, 3, 4)
    """

    def __init__(self, offset=True, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.offset = bool(offset)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        if self.offset:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        self.built = True

    def call(self, inputs):
        x = inputs * ops.cast(self.gamma, inputs.dtype)
        if self.offset:
            x = x + ops.cast(self.beta, inputs.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class GatedAttentionUnit(Rematerialisable, keras.layers.Layer):
    """Single-head gated attention: `o = W_o (u * (A v))`.

    One Dense (`i_dense`, `2 * units + key_size` units, `activation`) gives
    the gate `u`, the value `v` and a shared `qk`; q and k are `qk` under two
    per-feature scale/offset maps (`q_scaleoffset`, `k_scaleoffset`), then
    rotated by RoPE (interleaved pairs) when `rope=True`. Scores are
    `q k^T / sqrt(key_size)` (scaling off with `attention_scale=False`) and
    `A` is, with `n` the number of real (unpadded) keys of each sample:

    * `'squared_relu'`: `relu(scores)^2 / n` (the paper's choice);
    * `'softmax_plus'`: `softmax(scores * log(max(n, 16)) / log(512))`, the
      entropy-invariant softmax of https://kexue.fm/archives/8823;
    * `'softmax'`: plain softmax.

    Padded keys never contribute. These are the semantics of bert4keras's
    `GatedAttentionUnit` (with `p_bias='rotary'`). Padded query rows still
    produce (meaningless) outputs, as in any attention layer.

    Call arguments: `attention_mask`, an additive bias (or boolean keep-mask)
    broadcastable to `(batch, length, length)`; a `(batch, 1, L, L)` mask from
    `AttentionMask` is accepted too, so `AttentionMask('lm')` makes the unit
    causal. `padding_mask`, a `(batch, length)` keep-mask, combined with the
    Keras mask of the input.

    Example:
    >>> gau = GatedAttentionUnit(units=32, key_size=8)
    >>> tuple(gau(keras.ops.ones((2, 5, 16))).shape)
    (2, 5, 16)
    """

    def __init__(self, units, key_size=128, activation="swish", use_bias=True,
                 normalization="squared_relu", attention_scale=True, attention_dropout=0.0,
                 rope=True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.units = int(units)
        self.key_size = int(key_size)
        if rope and self.key_size % 2:
            raise ValueError(f"key_size must be even for rotary embeddings, got {key_size}")
        self.activation = activation
        get_activation(activation)  # fail early on an unknown name
        self.use_bias = bool(use_bias)
        self.normalization = normalization
        self.attention_scale = bool(attention_scale)
        self.attention_dropout = float(attention_dropout or 0.0)
        self.rope = bool(rope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        with outside_remat_scope():
            self.dropout = keras.layers.Dropout(self.attention_dropout, dtype=self.dtype_policy)
            self.rotary = RotaryEmbedding(dtype=self.dtype_policy) if self.rope else None

    def build(self, input_shape):
        hidden = input_shape[-1]
        common = dict(use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
                      dtype=self.dtype_policy)
        with outside_remat_scope():
            self.i_dense = Dense(2 * self.units + self.key_size, name="i_dense",
                                 activation=get_activation(self.activation), **common)
            self.q_scaleoffset = ScaleOffset(offset=self.use_bias, name="q_scaleoffset",
                                             dtype=self.dtype_policy)
            self.k_scaleoffset = ScaleOffset(offset=self.use_bias, name="k_scaleoffset",
                                             dtype=self.dtype_policy)
            self.o_dense = Dense(hidden, name="o_dense", **common)
        self.i_dense.build(input_shape)
        qk_shape = tuple(input_shape[:-1]) + (self.key_size,)
        self.q_scaleoffset.build(qk_shape)
        self.k_scaleoffset.build(qk_shape)
        self.o_dense.build(tuple(input_shape[:-1]) + (self.units,))
        self.built = True

    def call(self, inputs, attention_mask=None, padding_mask=None, training=None, mask=None):
        x = self.i_dense(inputs)
        u = x[..., :self.units]
        v = x[..., self.units:2 * self.units]
        qk = x[..., 2 * self.units:]
        q, k = self.q_scaleoffset(qk), self.k_scaleoffset(qk)
        if self.rotary is not None:
            q, k = self.rotary.rotate(q), self.rotary.rotate(k)
        # Scores and normalisation in float32: relu(.)^2 / n and softmax lose
        # too much in bfloat16.
        work = at_least_float32(q.dtype)
        a = ops.einsum("bmd,bnd->bmn", ops.cast(q, work), ops.cast(k, work))
        if self.attention_scale:
            a = a / math.sqrt(self.key_size)
        keep = self._key_mask(mask, padding_mask)
        probs = self._normalize(a, keep, attention_mask)
        probs = self.dropout(probs, training=training)
        o = ops.einsum("bmn,bnd->bmd", ops.cast(probs, v.dtype), v)
        return self.o_dense(u * o)

    @staticmethod
    def _key_mask(mask, padding_mask):
        keep = None
        for m in (mask, padding_mask):
            if m is not None:
                m = ops.cast(m, "bool")
                keep = m if keep is None else ops.logical_and(keep, m)
        return keep

    def _normalize(self, a, keep, attention_mask):
        if attention_mask is not None:
            if len(attention_mask.shape) == 4:  # (batch, 1, L, L) from AttentionMask
                attention_mask = attention_mask[:, 0]
            if keras.backend.standardize_dtype(attention_mask.dtype) == "bool":
                attention_mask = ops.where(attention_mask, 0.0, NEG_INF)
            a = a + ops.cast(attention_mask, a.dtype)
        if keep is None:
            n = ops.cast(ops.shape(a)[-1], a.dtype)
        else:
            a = ops.where(keep[:, None, :], a, NEG_INF)
            n = ops.sum(ops.cast(keep, a.dtype), axis=-1)[:, None, None]
        if self.normalization == "squared_relu":
            # relu(NEG_INF) = 0, so masked keys drop out; dividing by the number
            # of real keys (not by the padded length) matches bert4keras.
            return ops.square(ops.relu(a)) / ops.maximum(n, 1.0)
        if self.normalization == "softmax_plus":
            # Short sequences are not sharpened below n = 16 (bert4keras).
            a = a * ops.log(ops.maximum(n, 16.0)) / math.log(512)
        return ops.softmax(a, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {
            **with_sublayer_policies(self, super().get_config()),
            "units": self.units,
            "key_size": self.key_size,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "normalization": self.normalization,
            "attention_scale": self.attention_scale,
            "attention_dropout": self.attention_dropout,
            "rope": self.rope,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
