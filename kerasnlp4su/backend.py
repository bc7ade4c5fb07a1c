"""Small `keras.ops` helpers shared by layers and models.

Everything here is backend-neutral: it uses `keras.ops` only, so the same code
runs on TensorFlow, JAX and PyTorch.
"""

import contextlib
import math

import keras
from keras import ops

# A large negative number used for additive masks. Not -inf: -inf minus -inf
# gives NaN when a whole row is masked, and float16 overflows past ~6.5e4.
NEG_INF = -1e9


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def gelu_erf(x):
    """Exact GELU, `x * Phi(x)` with the Gaussian CDF (ELECTRA, bert4keras default)."""
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def gelu_tanh(x):
    """Tanh approximation of GELU (official BERT and ALBERT code)."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def squared_relu(x):
    """`relu(x) ** 2`, the GAU activation."""
    return ops.square(ops.relu(x))


_ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_erf": gelu_erf,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "squared_relu": squared_relu,
    "swish": keras.activations.silu,
    "silu": keras.activations.silu,
}


def get_activation(name):
    """Resolve an activation by name, with the transformer-specific aliases.

    `'gelu'` means the exact erf form (as in bert4keras and HF); use
    `'gelu_tanh'` for the approximation the official BERT code uses.
    """
    if name is None:
        return keras.activations.linear
    if callable(name):
        return name
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name]
    try:
        return keras.activations.get(name)
    except ValueError as e:
        raise ValueError(
            f"Unknown activation {name!r}. Known transformer aliases: "
            f"{sorted(_ACTIVATIONS)}, or any Keras activation name."
        ) from e


def sequence_masking(x, mask, value=NEG_INF, axis=1):
    """Set positions of `x` where `mask` is False/0 to `value` along `axis`.

    `mask` has shape `(batch, length)`; it is broadcast onto `x` at `axis`.
    `value` may be `'-inf'`/`'inf'` to use a dtype-aware large number.
    """
    if mask is None:
        return x
    if value == "-inf":
        value = -large_value(x.dtype)
    elif value == "inf":
        value = large_value(x.dtype)
    mask = ops.cast(mask, x.dtype)
    axis = axis % len(x.shape)
    for _ in range(axis - 1):
        mask = ops.expand_dims(mask, 1)
    for _ in range(len(x.shape) - axis - 1):
        mask = ops.expand_dims(mask, -1)
    return x * mask + value * (1 - mask)


def write_at(buffer, updates, index, axis):
    """`buffer` with `updates` written at `index` along `axis` (the rest kept).

    A fixed-capacity KV cache takes each decoding step's keys and values this
    way. On TensorFlow, `ops.slice_update` runs XLA's dynamic-update-slice as
    a compiled cluster of its own, ~0.25 ms a call and 25 calls per BERT-base
    step, so there the update is a scatter of whole rows (`ops.scatter_update`,
    ~0.06 ms), which also fails loudly on a position past the capacity.
    Elsewhere `slice_update` is kept: under `jax.jit` it updates in place.

    >>> write_at(keras.ops.zeros((1, 4)), keras.ops.ones((1, 2)), 1, axis=1)  # doctest: +SKIP
    [[0., 1., 1., 0.]]
    """
    if keras.backend.backend() != "tensorflow":
        start = [0] * len(buffer.shape)
        start[axis] = index
        return ops.slice_update(buffer, start, ops.cast(updates, buffer.dtype))
    # Index every slice of `updates` (all dims up to `axis`): each row of
    # `indices` addresses one trailing block, so the scatter moves whole rows.
    lead = ops.shape(updates)[:axis + 1]
    grids = [ops.arange(size, dtype="int32") for size in lead]
    grids[axis] = grids[axis] + ops.cast(index, "int32")
    indices = ops.stack(ops.meshgrid(*grids, indexing="ij"), axis=-1)
    indices = ops.reshape(indices, (-1, axis + 1))
    rows = ops.reshape(ops.cast(updates, buffer.dtype), (-1,) + tuple(updates.shape[axis + 1:]))
    return ops.scatter_update(buffer, indices, rows)


def large_value(dtype):
    """A finite 'infinity' safe for `dtype` (float16 cannot hold 1e9)."""
    return 6e4 if "float16" in str(dtype) else 1e12


def piecewise_linear(t, schedule):
    """Piecewise-linear function of `t` given `{t_i: value_i}`.

    Before the first knot the value ramps linearly from 0 (warmup, as in
    bert4keras); after the last knot it stays constant.
    """
    points = sorted((int(k), float(v)) for k, v in schedule.items())
    if points[0][0] != 0:
        points.insert(0, (0, 0.0))
    t = ops.cast(t, "float32")
    out = ops.convert_to_tensor(points[0][1], "float32")
    for (t0, v0), (t1, v1) in zip(points[:-1], points[1:]):
        slope = (v1 - v0) / max(t1 - t0, 1)
        segment = v0 + (t - t0) * slope
        out = ops.where(t >= t0, segment, out)
    return ops.where(t >= points[-1][0], points[-1][1], out)


def attention_scale(head_size, length=None, scale_type="standard", base_length=512):
    """Score scale factor: `1/sqrt(d)`, or entropy-invariant `log(n)/log(512)/sqrt(d)`."""
    if scale_type == "standard":
        return 1.0 / math.sqrt(head_size)
    if scale_type == "entropy_invariant":
        n = ops.cast(length, "float32")
        return ops.log(ops.maximum(n, 2.0)) / math.log(base_length) / math.sqrt(head_size)
    raise ValueError(
        f"attention scale type must be 'standard' or 'entropy_invariant', got {scale_type!r}"
    )


def densify(gradient):
    """A dense gradient: TensorFlow hands embedding gradients over as `IndexedSlices`.

    Example:
    >>> densify(keras.ops.ones((2, 3))).shape
    (2, 3)
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


@contextlib.contextmanager
def no_grad():
    """Run eager inference without recording gradients (matters on PyTorch)."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield


# bert4keras users write `from bert4keras.backend import keras, K`. Here `K` is
# `keras.ops`, the backend-neutral op set (most `K.*` names exist there).
K = ops
