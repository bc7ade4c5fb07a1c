"""Relative position tables: NEZHA's clipped offsets and T5's log buckets.

Both layers take `[queries, keys]` (any tensors whose axis 1 is the
length) and return a `(query_length, key_length, output_dim)` tensor
gathered from a `(input_dim, output_dim)` table, with no batch axis
(bert4keras's convention: the attention layer broadcasts it).
"""

import math

import keras
import numpy as np
from keras import ops


def relative_offsets(query_length, key_length, query_offset=0):
    """`key_position - query_position` as an int32 `(query_length, key_length)` grid.

    Queries sit at positions `query_offset, query_offset + 1, ...` (a cached
    decoding step's new tokens), keys at `0, 1, ...`.
    """
    q = ops.arange(query_length, dtype="int32")[:, None] + ops.cast(query_offset, "int32")
    k = ops.arange(key_length, dtype="int32")[None, :]
    return k - q


def clipped_relative_ids(query_length, key_length, max_distance):
    """NEZHA's table rows: `clip(key - query, -max_distance, max_distance) + max_distance`.

    Example:
    >>> keras.ops.convert_to_numpy(clipped_relative_ids(2, 3, 1)).tolist()
    [[1, 2, 2], [0, 1, 2]]
    """
    offsets = ops.clip(relative_offsets(query_length, key_length), -max_distance, max_distance)
    return offsets + max_distance


def t5_relative_buckets(query_length, key_length, num_buckets=32, max_distance=128,
                        bidirectional=True, query_offset=0):
    """T5's bucket of each `(query, key)` pair, an int32 `(query_length, key_length)` grid.

    Offsets below half the buckets (of each direction when bidirectional)
    get their own bucket; larger ones share log-spaced buckets up to
    `max_distance`, beyond which all land in the last bucket. Bidirectional:
    keys after the query use the upper half of the buckets. Causal
    (`bidirectional=False`): keys after the query all map to bucket 0.
    Same numbers as mesh-TF T5 and `transformers`' `T5Attention._relative_position_bucket`.

    Example:
    >>> keras.ops.convert_to_numpy(t5_relative_buckets(1, 3, 8, 16)).tolist()
    [[0, 5, 6]]
    """
    distance = -relative_offsets(query_length, key_length, query_offset)  # query - key
    buckets = ops.zeros_like(distance)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + ops.cast(distance < 0, "int32") * num_buckets
        distance = ops.abs(distance)
    else:
        distance = ops.maximum(distance, 0)
    max_exact = num_buckets // 2
    scaled = ops.log(ops.cast(ops.maximum(distance, 1), "float32") / max_exact) / math.log(
        max_distance / max_exact) * (num_buckets - max_exact)
    large = ops.minimum(max_exact + ops.cast(scaled, "int32"), num_buckets - 1)
    return buckets + ops.where(distance < max_exact, distance, large)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Sinusoidal(keras.initializers.Initializer):
    """Row `p` of a `(rows, dim)` table is `[sin(p w_0), cos(p w_0), sin(p w_1), ...]`,
    `w_i = 10000**(-2i/dim)` (sin/cos interleaved, as NEZHA's relative table and bert4keras's
    `Sinusoidal` initializer).

    Example:
    >>> Sinusoidal()((3, 4)).shape
    (3, 4)
    """

    def __call__(self, shape, dtype=None):
        rows, dim = shape
        if dim % 2:
            raise ValueError(f"Sinusoidal table needs an even width, got shape {tuple(shape)}")
        angles = np.arange(rows)[:, None] * np.power(10000.0, -2 * np.arange(dim // 2) / dim)[None]
        table = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(rows, dim)
        return ops.convert_to_tensor(table, dtype=dtype or keras.config.floatx())


def _initializer(name):
    if isinstance(name, str) and name.lower() == "sinusoidal":
        return Sinusoidal()
    return keras.initializers.get(name)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class RelativePositionEmbedding(keras.layers.Layer):
    """Table row per clipped relative offset (Shaw et al. 2018; NEZHA).

    Called on `[queries, keys]`, returns `table[clip(k - q, -m, m) + m]` of
    shape `(query_length, key_length, output_dim)` with
    `m = (input_dim - 1) // 2`. NEZHA uses `input_dim = 2 * 64 + 1`,
    `output_dim = head_size`, `embeddings_initializer="sinusoidal"` and
    `trainable=False` (a fixed sinusoid of the shifted index); bert4keras's
    default initializer is `"zeros"` (a trainable table).

    Example:
    >>> rel = RelativePositionEmbedding(2 * 64 + 1, 16, "sinusoidal", trainable=False)
    >>> x = keras.ops.ones((2, 5, 8))
    >>> rel([x, x]).shape
    (5, 5, 16)
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = _initializer(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer)
        self.built = True

    def position_ids(self, query_length, key_length, query_offset=0):
        """The table row of each `(query, key)` pair, int32 `(query_length, key_length)`."""
        offsets = ops.clip(relative_offsets(query_length, key_length, query_offset),
                           -((self.input_dim - 1) // 2), (self.input_dim - 1) // 2)
        return offsets + (self.input_dim - 1) // 2

    def call(self, inputs, query_offset=0):
        """`query_offset`: position of the first query (a cached decoding step's new tokens)."""
        queries, keys = inputs
        ids = self.position_ids(ops.shape(queries)[1], ops.shape(keys)[1], query_offset)
        return ops.take(ops.cast(self.embeddings, self.compute_dtype), ids, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][1], input_shape[1][1], self.output_dim)

    def compute_mask(self, inputs, mask=None):
        return None  # no batch axis: a (batch, length) mask does not apply

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer)}


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class RelativePositionEmbeddingT5(RelativePositionEmbedding):
    """T5's relative attention bias: a table row per log-spaced offset bucket.

    `input_dim` is the number of buckets (32 in T5), `output_dim` the number
    of heads; called on `[queries, keys]` it returns
    `(query_length, key_length, output_dim)`, the bias to add to each head's
    scores after moving the head axis first. `bidirectional=True` for the
    encoder, `False` for the decoder's causal self-attention; see
    `t5_relative_buckets` for the bucketing.

    Example:
    >>> bias = RelativePositionEmbeddingT5(32, 4, max_distance=128, bidirectional=False)
    >>> x = keras.ops.ones((2, 5, 8))
    >>> bias([x, x]).shape
    (5, 5, 4)
    """

    def __init__(self, input_dim, output_dim, max_distance=128, bidirectional=True,
                 embeddings_initializer="zeros", **kwargs):
        super().__init__(input_dim, output_dim, embeddings_initializer, **kwargs)
        self.max_distance = int(max_distance)
        self.bidirectional = bool(bidirectional)

    def position_ids(self, query_length, key_length, query_offset=0):
        return t5_relative_buckets(query_length, key_length, self.input_dim, self.max_distance,
                                   self.bidirectional, query_offset)

    def get_config(self):
        return {**super().get_config(), "max_distance": self.max_distance,
                "bidirectional": self.bidirectional}
