"""Position encodings: learned absolute, sinusoidal, and rotary (RoPE)."""

import keras
from keras import ops

from kerasnlp4su.layers.embeddings import check_ids_in_range


def check_max_position(layer_name, length, offset, max_position):
    """Fail loudly when positions run past a learned table.

    Out-of-range gathers are an error on CPU but silently read zeros on some
    accelerators, so lengths unknown at trace time get a runtime assertion
    on TensorFlow as well. Returns `length`; in a TensorFlow graph it waits
    for that assertion, so positions computed from it cannot reach the
    lookup first (without the dependency, which op fails first was up to
    the executor: now and then the gather's own error won).
    """
    message = (f"{layer_name}: sequence length exceeds the maximum position {max_position} "
               "of the position embedding; truncate inputs (e.g. Tokenizer.encode(maxlen=...))")
    end = length + offset
    if isinstance(end, int):
        if end > max_position:
            raise ValueError(message.replace("sequence length", f"sequence length {end}"))
        return length
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        check = tf.debugging.assert_less_equal(end, max_position, message=message)
        if check is not None:  # None when executing eagerly: it has already passed
            with tf.control_dependencies([check]):
                return tf.identity(length)
    return length


def sinusoidal_angles(positions, dim, base=10000.0):
    """Angles `p * base**(-2i/dim)` for each position, shape `(..., dim // 2)`."""
    if dim % 2:
        raise ValueError(f"sinusoidal/rotary dimension must be even, got {dim}")
    inv_freq = ops.power(
        ops.convert_to_tensor(base, "float32"),
        -ops.arange(0, dim // 2, dtype="float32") * 2.0 / dim,
    )
    positions = ops.cast(positions, "float32")
    return ops.expand_dims(positions, -1) * inv_freq


def rotary_sin_cos(positions, dim, base=10000.0):
    """`(sin, cos)` of shape `(..., dim)` with each angle repeated for an interleaved pair.

    RoFormer pairs adjacent features `(x0, x1), (x2, x3), ...`, so angle `i`
    is used at features `2i` and `2i + 1`.
    """
    angles = sinusoidal_angles(positions, dim, base)
    angles = ops.repeat(angles, 2, axis=-1)
    return ops.sin(angles), ops.cos(angles)


def apply_rotary(x, sin, cos):
    """Rotate interleaved feature pairs of `x` by the given angles.

    `x` has features on the last axis; `sin`/`cos` must broadcast to `x`.
    For a pair `(a, b)` at angle t the result is `(a cos t - b sin t, b cos t + a sin t)`.
    """
    dtype = x.dtype
    sin = ops.cast(sin, dtype)
    cos = ops.cast(cos, dtype)
    pairs = ops.reshape(x, ops.shape(x)[:-1] + (-1, 2))
    swapped = ops.stack([-pairs[..., 1], pairs[..., 0]], axis=-1)
    swapped = ops.reshape(swapped, ops.shape(x))
    return x * cos + swapped * sin


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding added to (or returned for) its input.

    Input `(batch, length, dim)`; the first `length` rows of the table are
    used, so `length` may not exceed `input_dim`.

    Example:
    >>> layer = PositionEmbedding(input_dim=512, output_dim=8, name="Embedding-Position")
    >>> layer(keras.ops.zeros((2, 5, 8))).shape
    (2, 5, 8)

    Args:
        input_dim: maximum sequence length (rows of the table).
        output_dim: embedding width.
        merge_mode: `'add'` returns `inputs + embeddings`, `'zero'` returns the
            embeddings alone broadcast over the batch.
        hierarchical: bert4keras's hierarchical decomposition
            (https://kexue.fm/archives/7947), for texts longer than the table:
            position `p` reads `alpha * u[p // input_dim] + (1 - alpha) *
            u[p % input_dim]` with `u = (table - alpha * table[0]) / (1 - alpha)`,
            so positions below `input_dim` are the trained rows and
            `input_dim ** 2` positions are reachable. `True` means alpha 0.4,
            a float is alpha itself.
        custom_position_ids: the input is `[x, position_ids]` (ids of shape
            `(batch, length)`) instead of positions `0, 1, ...`.
        offset: first position index (decoding with a KV cache passes the
            cache length here at call time, or a `(batch, 1)` tensor of them
            when rows sit at different positions; ignored with custom
            position ids).
    """

    def __init__(self, input_dim, output_dim, merge_mode="add",
                 embeddings_initializer="zeros", hierarchical=None, custom_position_ids=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        if merge_mode not in ("add", "zero"):
            raise ValueError(f"merge_mode must be 'add' or 'zero', got {merge_mode!r}")
        if hierarchical is not None and not isinstance(hierarchical, bool) \
                and not 0 < float(hierarchical) < 1:
            raise ValueError(
                f"hierarchical must be True or an alpha in (0, 1), got {hierarchical!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.merge_mode = merge_mode
        self.hierarchical = hierarchical
        self.custom_position_ids = bool(custom_position_ids)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    @property
    def max_positions(self):
        """How many positions the layer can encode (`input_dim`, squared when hierarchical)."""
        return self.input_dim ** 2 if self.hierarchical else self.input_dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
        )

    def call(self, inputs, offset=0):
        if self.custom_position_ids:
            inputs, positions = inputs
            if "int" not in keras.backend.standardize_dtype(positions.dtype):
                positions = ops.cast(positions, "int32")
            positions = check_ids_in_range(self.name, positions, self.max_positions)
        else:
            length = check_max_position(self.name, ops.shape(inputs)[1], offset, self.max_positions)
            # `offset` is an int, a scalar, or `(batch, 1)` (rows at different positions).
            positions = ops.arange(length) + offset
            if len(ops.shape(positions)) == 1:
                positions = ops.expand_dims(positions, 0)
        if self.hierarchical:
            alpha = 0.4 if self.hierarchical is True else float(self.hierarchical)
            base = (self.embeddings - alpha * self.embeddings[:1]) / (1.0 - alpha)
            emb = (alpha * ops.take(base, positions // self.input_dim, axis=0)
                   + (1.0 - alpha) * ops.take(base, positions % self.input_dim, axis=0))
        else:
            emb = ops.take(self.embeddings, positions, axis=0)
        emb = ops.cast(emb, inputs.dtype)
        if self.merge_mode == "add":
            return inputs + emb
        return ops.zeros_like(inputs) + emb

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.custom_position_ids else input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "merge_mode": self.merge_mode,
            "hierarchical": self.hierarchical,
            "custom_position_ids": self.custom_position_ids,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sinusoidal position features, interleaved `[sin0, cos0, sin1, cos1, ...]`.

    Input `(batch, length, ...)`; output `(1, length, output_dim)` (or added to
    the input when `merge_mode='add'`).

    Example:
    >>> SinusoidalPositionEmbedding(8)(keras.ops.zeros((2, 5, 8))).shape
    (1, 5, 8)
    """

    def __init__(self, output_dim, merge_mode="zero", base=10000.0, **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in ("add", "zero"):
            raise ValueError(f"merge_mode must be 'add' or 'zero', got {merge_mode!r}")
        self.output_dim = int(output_dim)
        self.merge_mode = merge_mode
        self.base = float(base)

    def call(self, inputs, offset=0):
        positions = ops.arange(ops.shape(inputs)[1]) + offset
        angles = sinusoidal_angles(positions, self.output_dim, self.base)
        emb = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
        emb = ops.reshape(emb, (1, -1, self.output_dim))
        emb = ops.cast(emb, self.compute_dtype)
        return inputs + emb if self.merge_mode == "add" else emb

    def compute_output_shape(self, input_shape):
        if self.merge_mode == "add":
            return input_shape
        return (1, input_shape[1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim,
                "merge_mode": self.merge_mode, "base": self.base}


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class RotaryEmbedding(keras.layers.Layer):
    """Apply RoPE (interleaved pairs, as RoFormer) to one or more tensors.

    Each input has shape `(batch, length, ..., dim)`; positions run along
    axis 1 starting at `offset`. A list input returns a list.

    Example:
    >>> q = keras.ops.ones((1, 4, 2, 8))   # (batch, length, heads, head_size)
    >>> RotaryEmbedding()(q).shape
    (1, 4, 2, 8)
    """

    def __init__(self, base=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.base = float(base)
        # No weights, and attention layers call `rotate` directly (never `__call__`):
        # built from the start, or `Model.quantize` refuses the model as unbuilt.
        self.built = True

    def call(self, inputs, offset=0):
        tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = [self.rotate(x, offset) for x in tensors]
        return outputs if isinstance(inputs, (list, tuple)) else outputs[0]

    def rotate(self, x, offset=0):
        positions = ops.arange(ops.shape(x)[1]) + offset
        sin, cos = rotary_sin_cos(positions, x.shape[-1], self.base)
        # (length, dim) -> (1, length, 1, ..., dim) to broadcast over middle axes.
        extra = len(x.shape) - 3
        sin = ops.reshape(sin, (1, -1) + (1,) * extra + (x.shape[-1],))
        cos = ops.reshape(cos, (1, -1) + (1,) * extra + (x.shape[-1],))
        return apply_rotary(x, sin, cos)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "base": self.base}
