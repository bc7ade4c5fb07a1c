"""Multi-head attention with bias/mask hooks, RoPE, linear attention and a KV cache."""

import math

import keras
from keras import ops

from kerasnlp4su.backend import NEG_INF, attention_scale, write_at
from kerasnlp4su.layers._precision import at_least_float32
from kerasnlp4su.layers._quantization import with_sublayer_policies
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.position import RotaryEmbedding
from kerasnlp4su.layers.remat import Rematerialisable, outside_remat_scope

ATTENTION_TYPES = ("softmax", "linear")
SCALE_TYPES = ("standard", "entropy_invariant", "none")


def elu_plus_one(x):
    """Positive feature map of linear attention (Katharopoulos et al.)."""
    return ops.elu(x) + 1.0


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class MultiHeadAttention(Rematerialisable, keras.layers.Layer):
    """Multi-head attention as used by BERT, RoFormer and UniLM.

    `inputs` is either one tensor (self-attention) or `[query, key, value]`.
    Optional call arguments:

    * `attention_mask`: additive bias broadcastable to `(batch, heads, q_len,
      k_len)` (0 keeps, a large negative drops); this is the hook LM and UniLM
      masks, relative-position biases etc. plug into. A boolean tensor is
      accepted too (True keeps).
    * `padding_mask`: `(batch, k_len)` keep-mask for keys.
    * `cache`: `(k, v)` tensors of shape `(batch, heads, cached, size)` from
      earlier decoding steps (start from `cached = 0`); the call then returns
      `(output, new_cache)`. RoPE positions continue from the cache length.
      Heads come before positions so a decoding step multiplies the cached
      keys and values as they lie, without transposing the whole cache.
    * `position_bias`: `(q_len, k_len, heads)` additive bias, as
      `RelativePositionEmbeddingT5` returns it (T5's relative positions);
      it is added to every batch row's scores.
    * `key_value`: precomputed `(keys, values)`, heads first `(batch, heads,
      k_len, size)`, as `project_key_value` returns them; `inputs` is then
      the query alone. An encoder-decoder's cached decoding projects the
      encoder output once and reuses it at every step (cross-attention).
    * `cache_index` (with `cache`): the buffers have a fixed capacity and
      hold `cache_index` valid positions; the new keys/values are written
      at `cache_index` instead of appended, so every step has the same
      shapes (what `jax.jit` needs to compile a decoding step once). Keys
      past `cache_index + q_len` are hidden; RoPE positions start at
      `cache_index`. The caller makes sure the new tokens fit: an update
      past the capacity raises on TensorFlow (on JAX/PyTorch `slice_update` clamps it).
    * `relative_keys` / `relative_values` (softmax attention): per-pair
      position terms `r` of shape `(q_len, k_len, key_size)` /
      `(q_len, k_len, head_size)`, shared by the batch and the heads
      (Shaw et al. 2018, NEZHA): the scores become `q.k + q.r_k` (before
      scaling) and the output gains `sum_k p_k r_v`. With a cache, `k_len`
      counts every key (cached and new) and query `i` sits at position
      `offset + i`: the caller builds the terms for those positions.

    `position_encoding='rotary'` applies RoPE (interleaved pairs) to q and k.
    `attention_type='linear'` switches to O(n) softmax-free attention with
    the `elu + 1` feature map (RoPE applied before it); it honours
    `padding_mask`, `causal=True` (prefix sums of `k v^T`, computed in
    chunks of `linear_chunk_size` tokens so memory stays O(n)) and a KV
    cache, but not arbitrary additive biases. Its output is normalised by the sum
    of the feature-map scores, so a score scale would cancel: linear
    attention accepts `scale='standard'` or `'none'` only.

    `scale='entropy_invariant'` multiplies the scores by
    `log(n) / log(512) / sqrt(key_size)` (https://kexue.fm/archives/8823),
    where `n` is the number of keys each query may attend to after every
    mask (padding, causal, LM/UniLM bias; a bias <= -5e8 counts as a
    dropped key). Counting per query keeps the layer padding-invariant and
    causal: a token's output never depends on how many tokens follow it or
    how much padding the batch has, and cached decoding equals recomputation.

    `return_attention_scores=True` (RealFormer, bert4keras's
    `residual_attention_scores`) makes the call return `[output, scores]`:
    the scaled scores `q k^T / sqrt(key_size)` before any bias or mask,
    `(batch, heads, q_len, k_len)`; the next layer adds them to its
    `attention_mask`. Softmax attention without a KV cache only.

    Sub-layers are named `query`, `key`, `value` and `output`, so variable
    paths read `<layer>/query/kernel` etc.

    Example:
    >>> mha = MultiHeadAttention(heads=2, head_size=4)
    >>> x = keras.ops.ones((1, 5, 8))
    >>> mha(x).shape
    (1, 5, 8)
    """

    def __init__(self, heads, head_size, out_dim=None, key_size=None, use_bias=True,
                 scale="standard", attention_dropout=0.0, position_encoding=None,
                 attention_type="softmax", causal=False, kernel_initializer="glorot_uniform",
                 linear_chunk_size=64, return_attention_scores=False, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")
        if scale not in SCALE_TYPES:
            raise ValueError(f"scale must be one of {SCALE_TYPES}, got {scale!r}")
        if attention_type == "linear" and scale == "entropy_invariant":
            raise ValueError(
                "linear attention normalises by the sum of its feature-map scores, so a score "
                "scale cancels out; use scale='standard' (or 'none') with attention_type='linear'")
        if position_encoding not in (None, "rotary"):
            raise ValueError(f"position_encoding must be None or 'rotary', got {position_encoding!r}")
        self.heads = int(heads)
        self.head_size = int(head_size)
        self.out_dim = out_dim
        self.key_size = int(key_size or head_size)
        self.use_bias = bool(use_bias)
        self.scale = scale
        self.attention_dropout = float(attention_dropout)
        self.position_encoding = position_encoding
        self.attention_type = attention_type
        self.causal = bool(causal)
        self.return_attention_scores = bool(return_attention_scores)
        if self.return_attention_scores and attention_type == "linear":
            raise ValueError("return_attention_scores needs softmax attention (linear attention "
                             "forms no score matrix)")
        self.linear_chunk_size = int(linear_chunk_size)
        if self.linear_chunk_size < 1:
            raise ValueError(f"linear_chunk_size must be >= 1, got {linear_chunk_size}")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        with outside_remat_scope():
            self.dropout = keras.layers.Dropout(self.attention_dropout, dtype=self.dtype_policy)
            self.rotary = (RotaryEmbedding(dtype=self.dtype_policy)
                           if position_encoding == "rotary" else None)

    def build(self, input_shape):
        shapes = input_shape if isinstance(input_shape[0], (list, tuple)) else [input_shape] * 3
        q_shape, k_shape, v_shape = shapes
        out_dim = self.out_dim or q_shape[-1]
        self.out_dim = int(out_dim)

        def dense(units, name, shape):
            with outside_remat_scope():
                layer = Dense(units, use_bias=self.use_bias, name=name,
                              kernel_initializer=self.kernel_initializer,
                              dtype=self.dtype_policy)
            layer.build(shape)
            return layer

        self.query_dense = dense(self.heads * self.key_size, "query", q_shape)
        self.key_dense = dense(self.heads * self.key_size, "key", k_shape)
        self.value_dense = dense(self.heads * self.head_size, "value", v_shape)
        self.output_dense = dense(self.out_dim, "output",
                                  tuple(q_shape[:-1]) + (self.heads * self.head_size,))
        self.built = True

    def _split_heads(self, x, size):
        return ops.reshape(x, ops.shape(x)[:2] + (self.heads, size))

    def project_key_value(self, context):
        """`(keys, values)` of `context`, heads first: `(batch, heads, length, size)`.

        What `key_value=` takes: cross-attention keys/values computed once.
        """
        swap = (0, 2, 1, 3)
        return (ops.transpose(self._split_heads(self.key_dense(context), self.key_size), swap),
                ops.transpose(self._split_heads(self.value_dense(context), self.head_size), swap))

    def call(self, inputs, attention_mask=None, padding_mask=None, cache=None, cache_index=None,
             relative_keys=None, relative_values=None, position_bias=None, key_value=None,
             training=None, mask=None):
        if key_value is not None:
            return self._call_precomputed(inputs, key_value, attention_mask, padding_mask,
                                          position_bias, cache, training)
        if isinstance(inputs, (list, tuple)):
            q, k, v = inputs
        else:
            q = k = v = inputs
        qw = self._split_heads(self.query_dense(q), self.key_size)
        kw = self._split_heads(self.key_dense(k), self.key_size)
        vw = self._split_heads(self.value_dense(v), self.head_size)
        if cache_index is not None and cache is None:
            raise ValueError(f"{self.name}: cache_index needs a cache")
        if cache is not None and self.return_attention_scores:
            raise ValueError(f"{self.name}: return_attention_scores (residual attention scores) "
                             "cannot be combined with a KV cache")
        if cache_index is not None and self.attention_type == "linear":
            raise ValueError(f"{self.name}: a fixed-capacity cache (cache_index) needs softmax "
                             "attention; linear attention appends to its cache")
        if cache is None:
            offset = 0
        elif cache_index is None:
            offset = ops.shape(cache[0])[2]
        else:
            offset = cache_index
        if self.rotary is not None:
            qw = self.rotary.rotate(qw, offset)
            kw = self.rotary.rotate(kw, offset)
        heads_first = cache is not None
        key_limit = None
        if heads_first:  # from here on kw/vw are (batch, heads, keys, size)
            swap = (0, 2, 1, 3)
            if cache_index is None:
                kw, vw = (ops.concatenate([ops.cast(c, t.dtype), ops.transpose(t, swap)], axis=2)
                          for c, t in zip(cache, (kw, vw)))
            else:
                kw, vw = (write_at(c, ops.transpose(t, swap), cache_index, axis=2)
                          for c, t in zip(cache, (kw, vw)))
                key_limit = offset + ops.shape(qw)[1]
        if self.attention_type == "linear":
            if attention_mask is not None:
                raise ValueError(
                    f"{self.name}: linear attention cannot apply an arbitrary attention_mask; "
                    "use padding_mask and causal=True (UniLM masks need softmax attention)")
            if relative_keys is not None or relative_values is not None:
                raise ValueError(f"{self.name}: relative_keys/relative_values need softmax "
                                 "attention, not attention_type='linear'")
            keys, values = (ops.transpose(t, swap) for t in (kw, vw)) if heads_first else (kw, vw)
            o = self._linear_attention(qw, keys, values, padding_mask, offset)
        else:
            o, logits = self._softmax_attention(qw, kw, vw, attention_mask, padding_mask, offset,
                                                training, heads_first=heads_first,
                                                key_limit=key_limit,
                                                relative=(relative_keys, relative_values),
                                                position_bias=position_bias)
        o = ops.reshape(o, ops.shape(o)[:2] + (self.heads * self.head_size,))
        o = self.output_dense(o)
        if heads_first:
            return o, (kw, vw)
        if self.return_attention_scores:
            return [o, logits]
        return o

    def _call_precomputed(self, inputs, key_value, attention_mask, padding_mask, position_bias,
                          cache, training):
        if cache is not None or self.attention_type != "softmax" or self.rotary is not None:
            raise ValueError(f"{self.name}: key_value (precomputed keys/values) works with "
                             "softmax attention without RoPE and without a cache")
        q = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        qw = self._split_heads(self.query_dense(q), self.key_size)
        kw, vw = key_value
        o, _ = self._softmax_attention(qw, kw, vw, attention_mask, padding_mask, 0, training,
                                       heads_first=True, position_bias=position_bias)
        o = ops.reshape(o, ops.shape(o)[:2] + (self.heads * self.head_size,))
        return self.output_dense(o)

    def _softmax_attention(self, qw, kw, vw, attention_mask, padding_mask, offset, training,
                           heads_first=False, key_limit=None, relative=(None, None),
                           position_bias=None):
        # `kw`/`vw` are (batch, keys, heads, d), or (batch, heads, keys, d)
        # with `heads_first` (the KV-cache layout). Keys at `key_limit` and
        # beyond are unwritten slots of a fixed-capacity cache.
        keys = "bhkd" if heads_first else "bkhd"
        # Scores in float32: softmax of bf16 logits is visibly off.
        work = at_least_float32(qw.dtype)
        scores = ops.einsum(f"bqhd,{keys}->bhqk", ops.cast(qw, work), ops.cast(kw, work))
        relative_keys, relative_values = relative
        if relative_keys is not None:
            scores = scores + ops.einsum("bqhd,qkd->bhqk", ops.cast(qw, work),
                                         ops.cast(relative_keys, work))
        allowed, bias = None, None  # boolean keep-mask and additive bias, both broadcastable
        if attention_mask is not None:
            if keras.backend.standardize_dtype(attention_mask.dtype) == "bool":
                allowed = attention_mask
            else:
                bias = ops.cast(attention_mask, work)
        if padding_mask is not None:
            keep = ops.cast(padding_mask, "bool")[:, None, None, :]
            allowed = keep if allowed is None else ops.logical_and(allowed, keep)
        if self.causal or key_limit is not None:
            k_pos = ops.arange(ops.shape(kw)[2 if heads_first else 1])
        if self.causal:
            q_pos = ops.arange(ops.shape(qw)[1]) + offset
            tril = k_pos[None, :] <= q_pos[:, None]
            allowed = tril if allowed is None else ops.logical_and(allowed, tril)
        elif key_limit is not None:  # causal already hides every slot past the queries
            written = k_pos < key_limit
            if bias is not None:  # fold into the (usually per-key) bias, not the scores
                bias = ops.where(written, bias, NEG_INF)
            else:
                allowed = written if allowed is None else ops.logical_and(allowed, written)
        if self.scale == "standard":
            scores = scores * (1.0 / math.sqrt(self.key_size))
        elif self.scale == "entropy_invariant":
            scores = scores * ops.cast(attention_scale(
                self.key_size, self._visible_keys(scores, allowed, bias), "entropy_invariant"),
                scores.dtype)
        logits = scores  # before bias and mask: what return_attention_scores gives
        if bias is not None:
            scores = scores + bias
        if position_bias is not None:  # (q, k, heads) -> (1, heads, q, k)
            scores = scores + ops.transpose(ops.cast(position_bias, work), (2, 0, 1))[None]
        if allowed is not None:
            scores = ops.where(allowed, scores, NEG_INF)
        probs = ops.softmax(scores, axis=-1)
        probs = self.dropout(probs, training=training)
        o = ops.einsum(f"bhqk,{keys}->bqhd", ops.cast(probs, vw.dtype), vw)
        if relative_values is not None:
            o = o + ops.einsum("bhqk,qkd->bqhd", ops.cast(probs, vw.dtype),
                               ops.cast(relative_values, vw.dtype))
        return o, logits

    @staticmethod
    def _visible_keys(scores, allowed, bias):
        """Number of keys each query may attend to, `(batch, heads|1, q_len, 1)` float32."""
        visible = ops.ones_like(scores, dtype="bool")
        if allowed is not None:
            visible = ops.logical_and(visible, allowed)
        if bias is not None:
            visible = ops.logical_and(visible, bias > 0.5 * NEG_INF)
        return ops.sum(ops.cast(visible, scores.dtype), axis=-1, keepdims=True)

    def _linear_attention(self, qw, kw, vw, padding_mask, offset):
        dtype = vw.dtype
        work = at_least_float32(dtype)
        qf = elu_plus_one(ops.cast(qw, work))
        kf = elu_plus_one(ops.cast(kw, work))
        v = ops.cast(vw, work)
        if padding_mask is not None:
            kf = kf * ops.cast(padding_mask, work)[:, :, None, None]
        if self.causal:
            prefix = None
            if not (isinstance(offset, int) and offset == 0):
                # With a KV cache the queries are the last q_len keys; the
                # cached keys enter as one summed state.
                start = ops.shape(kf)[1] - ops.shape(qf)[1]
                prefix = (ops.einsum("bkhd,bkhe->bhde", kf[:, :start], v[:, :start]),
                          ops.sum(kf[:, :start], axis=1))
                kf, v = kf[:, start:], v[:, start:]
            num, den = self._causal_linear(qf, kf, v, prefix)
        else:
            kv = ops.einsum("bkhd,bkhe->bhde", kf, v)
            z = ops.sum(kf, axis=1)
            num = ops.einsum("bqhd,bhde->bqhe", qf, kv)
            den = ops.einsum("bqhd,bhd->bqh", qf, z)
        o = num / (den[..., None] + 1e-6)
        return ops.cast(o, dtype)

    def _causal_linear(self, qf, kf, v, prefix=None):
        """Causal numerator and denominator, computed chunk by chunk.

        Position i needs `sum_{j<=i} phi(k_j) v_j^T`. Materialising that
        prefix sum for every position costs O(n d^2) memory; instead the
        sequence is cut into chunks of `linear_chunk_size` tokens: keys of
        earlier chunks act through one running `(d, d)` state per chunk
        (an exclusive prefix sum over chunks) and keys of the same chunk
        through a masked `chunk x chunk` score block. Memory is
        O(n * chunk + n / chunk * d^2), time O(n * (chunk + d) * d).
        """
        n = ops.shape(qf)[1]
        size = self.linear_chunk_size
        if isinstance(n, int):
            size = max(1, min(size, n))
        pad = (-n) % size
        if not (isinstance(pad, int) and pad == 0):
            widths = [[0, 0], [0, pad], [0, 0], [0, 0]]
            qf, kf, v = (ops.pad(t, widths) for t in (qf, kf, v))

        def chunks(t):
            return ops.reshape(t, (ops.shape(t)[0], -1, size) + tuple(t.shape[2:]))

        qc, kc, vc = chunks(qf), chunks(kf), chunks(v)  # (batch, chunks, size, heads, d)

        def exclusive_cumsum(t):
            total = ops.cumsum(t, axis=1, dtype=keras.backend.standardize_dtype(t.dtype))
            return ops.concatenate([ops.zeros_like(total[:, :1]), total[:, :-1]], axis=1)

        state = exclusive_cumsum(ops.einsum("bmchd,bmche->bmhde", kc, vc))
        z_state = exclusive_cumsum(ops.sum(kc, axis=2))
        if prefix is not None:
            state = state + prefix[0][:, None]
            z_state = z_state + prefix[1][:, None]
        num = ops.einsum("bmchd,bmhde->bmche", qc, state)
        den = ops.einsum("bmchd,bmhd->bmch", qc, z_state)
        scores = ops.einsum("bmchd,bmkhd->bmhck", qc, kc)
        idx = ops.arange(size)
        scores = ops.where(idx[:, None] >= idx[None, :], scores, ops.zeros_like(scores))
        num = num + ops.einsum("bmhck,bmkhe->bmche", scores, vc)
        den = den + ops.transpose(ops.sum(scores, axis=-1), (0, 1, 3, 2))
        batch = ops.shape(qf)[0]
        num = ops.reshape(num, (batch, -1) + tuple(num.shape[3:]))[:, :n]
        den = ops.reshape(den, (batch, -1, den.shape[-1]))[:, :n]
        return num, den

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        return [mask, None] if self.return_attention_scores else mask

    def compute_output_shape(self, input_shape):
        nested = isinstance(input_shape[0], (list, tuple))
        q_shape = input_shape[0] if nested else input_shape
        output = tuple(q_shape[:-1]) + (self.out_dim or q_shape[-1],)
        if not self.return_attention_scores:
            return output
        k_len = input_shape[1][1] if nested else q_shape[1]
        return [output, (q_shape[0], self.heads, q_shape[1], k_len)]

    def get_config(self):
        return {
            **with_sublayer_policies(self, super().get_config()),
            "heads": self.heads,
            "head_size": self.head_size,
            "out_dim": self.out_dim,
            "key_size": self.key_size,
            "use_bias": self.use_bias,
            "scale": self.scale,
            "attention_dropout": self.attention_dropout,
            "position_encoding": self.position_encoding,
            "attention_type": self.attention_type,
            "causal": self.causal,
            "linear_chunk_size": self.linear_chunk_size,
            "return_attention_scores": self.return_attention_scores,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
