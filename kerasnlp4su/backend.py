"""Small `keras.ops` helpers shared by layers and models, and bert4keras's `backend` names.

Everything here is backend-neutral: it uses `keras.ops` only, so the same code
runs on TensorFlow, JAX and PyTorch. `from kerasnlp4su.backend import keras, K`
works as in bert4keras: `K` serves Keras 2's backend functions
(see `kerasnlp4su.legacy_backend`).
"""

import contextlib
import functools
import math

import keras
import numpy as np
from keras import ops

from kerasnlp4su import legacy_backend as K  # noqa: F401 - bert4keras's `K`
from kerasnlp4su.shape_ops import _dims, dtype, flatten, reshape, where  # noqa: F401

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
    if name == "gelu" and _GELU_CHOICE:
        return _ACTIVATIONS[_GELU_CHOICE]
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name]
    try:
        return keras.activations.get(name)
    except ValueError as e:
        raise ValueError(
            f"Unknown activation {name!r}. Known transformer aliases: "
            f"{sorted(_ACTIVATIONS)}, or any Keras activation name."
        ) from e


def sequence_masking(x, mask=None, value=0, axis=None, bias=None, return_mask=False):
    """Set positions of `x` where `mask` is False/0 to `value` (bert4keras's signature).

    `mask` has shape `(batch, length)` and is aligned with axis 0 and with
    `axis` of `x` (default 1); a list of axes masks each of them (e.g.
    `[2, 3]` for a `(batch, heads, L, L)` score matrix). `value` may be
    `'-inf'`/`'inf'`, which here are dtype-aware large finite numbers, so a
    fully masked row gives zeros after softmax instead of NaN. `bias` is
    added to `x` where unmasked, or, when boolean, combined with the mask.
    With `return_mask=True` the aligned boolean mask is returned too.

    >>> x = keras.ops.ones((1, 3, 2))
    >>> masked = sequence_masking(x, keras.ops.convert_to_tensor([[1, 1, 0]]))
    >>> keras.ops.convert_to_numpy(masked)[0, :, 0].tolist()
    [1.0, 1.0, 0.0]
    """
    if mask is None and bias is None:
        return (x, None) if return_mask else x
    x = ops.convert_to_tensor(x)
    if value == "-inf":
        value = -large_value(x.dtype)
    elif value == "inf":
        value = large_value(x.dtype)
    bias_is_mask = bias is not None and keras.backend.standardize_dtype(bias.dtype) == "bool"
    if mask is not None:
        axes = [1] if axis is None else (list(axis) if isinstance(axis, (list, tuple)) else [axis])
        rank = len(x.shape)
        mask = ops.cast(mask, "bool")
        full_mask = None
        for a in axes:
            aligned = align(mask, [0, a % rank], rank)
            full_mask = aligned if full_mask is None else ops.logical_and(full_mask, aligned)
        mask = full_mask
        if bias_is_mask:
            mask = ops.logical_and(mask, bias)
        elif bias is not None:
            x = x + ops.cast(bias, x.dtype)
    elif bias_is_mask:
        mask = bias
    else:
        x = x + ops.cast(bias, x.dtype)
    if mask is not None:
        x = ops.where(mask, x, ops.cast(value, x.dtype))
    return (x, mask) if return_mask else x


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


# Layers write masked cells (padding, impossible spans) as -large_value(dtype),
# at most -6e4 in any float dtype; real scores never come near half of that,
# so losses and metrics read a cell at or below this as masked.
MASKED_BELOW = -0.5 * large_value("float16")


def piecewise_linear(t, schedule, from_zero=True):
    """Piecewise-linear function of `t` given `{t_i: value_i}`.

    With `from_zero` (bert4keras's default), before the first knot the value
    ramps linearly from 0 (warmup); otherwise it holds the first value.
    After the last knot it stays constant.

    >>> float(piecewise_linear(500, {1000: 1, 2000: 0.1}))
    0.5
    """
    points = sorted((int(k), float(v)) for k, v in schedule.items())
    if from_zero and points[0][0] != 0:
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
    >>> tuple(densify(keras.ops.ones((2, 3))).shape)
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


# ---------------------------------------------------------------------------
# bert4keras 0.11.5's `backend` names. Where Keras 2 or TF1 gave a name its
# meaning, the Keras 3 counterpart is named in the docstring or the error.
# ---------------------------------------------------------------------------

# Keras 3 is one package, neither `keras` 2 nor `tf.keras`.
is_tf_keras = False

# bert4keras switched recomputation on with RECOMPUTE=1. Keras 3's switch is
# `keras.RematScope(mode="full")` around model building (its attention,
# feed-forward and norm layers are then rematerialised on every backend, see
# `kerasnlp4su.layers.remat`), or `recompute_grad` on a call; there is no
# environment switch, so this stays False.
do_recompute = False


def strtobool(value):
    """1 for 'y', 'yes', 't', 'true', 'on', '1'; 0 for their negatives (case-insensitive).

    `distutils.util.strtobool`, which bert4keras imported and Python 3.12 removed.

    >>> strtobool("Yes"), strtobool("0")
    (1, 0)
    """
    text = str(value).lower()
    if text in ("y", "yes", "t", "true", "on", "1"):
        return 1
    if text in ("n", "no", "f", "false", "off", "0"):
        return 0
    raise ValueError(f"strtobool: {value!r} is not a truth value such as 'yes' or 'no'")


def get_available_gpus():
    """Names of the GPUs the backend sees (e.g. `['gpu:0']`); `[]` on a CPU-only machine."""
    if keras.backend.backend() == "torch":  # Keras's device listing has no PyTorch support
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    try:
        return list(keras.distribution.list_devices("gpu"))
    except (RuntimeError, ValueError):
        return []


def set_gelu(version):
    """Choose what a plain `'gelu'` means from now on: `'erf'` (exact) or `'tanh'`.

    bert4keras made `'gelu'` the erf form unless `set_gelu('tanh')` was
    called. Here every model already resolves `hidden_act='gelu'` to its
    official form (tanh for BERT and ALBERT, erf for ELECTRA and RoFormer);
    `set_gelu` overrides that for models and layers built afterwards, as in
    bert4keras. `set_gelu(None)` restores the per-model defaults.

    >>> set_gelu("tanh"); get_activation("gelu") is gelu_tanh
    True
    >>> set_gelu(None)
    """
    global _GELU_CHOICE
    if version is None:
        _GELU_CHOICE = None
        return
    version = str(version).lower()
    if version not in ("erf", "tanh"):
        raise ValueError(f"set_gelu: version must be 'erf' or 'tanh', got {version!r}")
    _GELU_CHOICE = "gelu_" + version


_GELU_CHOICE = None


def resolve_gelu(official):
    """The activation name a model uses for config `'gelu'`: `set_gelu`'s choice, else `official`."""
    return _GELU_CHOICE or official


def search_layer(inputs, name, exclude_from=None):
    """The layer called `name` upstream of `inputs` (a layer or a Keras tensor), else None.

    Walks the functional graph backwards from `inputs`, looking inside
    nested models too, as bert4keras did (e.g. to find `'Embedding-Token'`
    from a model's output for adversarial training).

    >>> search_layer(model.output, "Embedding-Token")  # doctest: +SKIP
    <Embedding name=Embedding-Token, built=True>
    """
    exclude_from = set() if exclude_from is None else exclude_from
    layer = inputs if isinstance(inputs, keras.Operation) else inputs._keras_history[0]
    if layer.name == name:
        return layer
    if id(layer) in exclude_from:
        return None
    exclude_from.add(id(layer))
    if isinstance(layer, keras.Model):
        for inner in layer.layers:
            if inner.name == name:
                return inner
    parents = [p.operation for node in layer._inbound_nodes[:1] for p in node.parent_nodes]
    for parent in parents:
        found = search_layer(parent, name, exclude_from)
        if found is not None:
            return found
    return None


def align(tensor, axes, ndim=None):
    """Insert size-1 axes so that axis `i` of `tensor` lands at `axes[i]` of an `ndim`-D result.

    A batched `expand_dims`: `align(mask, [0, 3], 4)` turns `(batch, L)`
    into `(batch, 1, 1, L)`.

    >>> tuple(align(keras.ops.ones((2, 5)), [0, -1], 4).shape)
    (2, 1, 1, 5)
    """
    if len(axes) != len(tensor.shape):
        raise ValueError(f"align: {len(axes)} axes given for a tensor of rank {len(tensor.shape)}")
    if ndim is None:
        if min(axes) < 0:
            raise ValueError("align: negative axes need ndim")
        ndim = max(axes) + 1
    kept = sorted(a % ndim for a in axes)
    for position in range(ndim):
        if position not in kept:
            tensor = ops.expand_dims(tensor, position)
    return tensor


def batch_gather(params, indices):
    """`tf.gather(params, indices, batch_dims=rank(indices) - 1)` on every backend.

    `params` `(b..., n, rest...)`, integer `indices` `(b..., m)` ->
    `(b..., m, rest...)`.

    >>> batch_gather(keras.ops.convert_to_tensor([[1., 2., 3.]]), [[2, 0]]).tolist()  # doctest: +SKIP
    [[3.0, 1.0]]
    """
    indices = ops.convert_to_tensor(indices)
    if not keras.backend.is_int_dtype(indices.dtype):
        indices = ops.cast(indices, "int32")
    axis = len(indices.shape) - 1
    trailing = _dims(params)[axis + 1:]
    for _ in trailing:
        indices = ops.expand_dims(indices, -1)
    indices = ops.broadcast_to(indices, _dims(indices)[:axis + 1] + trailing)
    return ops.take_along_axis(params, indices, axis=axis)


def pool1d(x, pool_size, strides=1, padding="valid", data_format=None, pool_mode="max"):
    """Max or average pooling over the steps of `(batch, steps, channels)`.

    >>> tuple(pool1d(keras.ops.ones((1, 6, 2)), 2, 2).shape)
    (1, 3, 2)
    """
    if pool_mode not in ("max", "avg"):
        raise ValueError(f"pool1d: pool_mode must be 'max' or 'avg', got {pool_mode!r}")
    pool = ops.max_pool if pool_mode == "max" else ops.average_pool
    return pool(x, pool_size, strides, padding=padding, data_format=data_format)


def divisible_temporal_padding(x, n):
    """Right-pad axis 1 with zeros to a multiple of `n`.

    >>> tuple(divisible_temporal_padding(keras.ops.ones((1, 5, 2)), 4).shape)
    (1, 8, 2)
    """
    length = _dims(x)[1]
    pad = (n - length % n) % n
    widths = [[0, 0] for _ in x.shape]
    widths[1] = [0, pad]
    return ops.pad(x, widths)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def root_mean_square(x, axis=None, keepdims=False):
    """`sqrt(mean(x**2, axis))`."""
    return ops.sqrt(ops.mean(ops.square(x), axis=axis, keepdims=keepdims))


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def swish(x):
    """`x * sigmoid(x)` (a named function, so it serialises by name)."""
    return ops.silu(x)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def leaky_relu(x, alpha=0.2):
    """`x` where positive, else `alpha * x` (bert4keras's default slope 0.2)."""
    return ops.leaky_relu(x, negative_slope=alpha)


def attention_normalize(a, mask=None, axis=-1, method="softmax", bias=None):
    """Normalise attention scores `a` along `axis`, masked positions excluded.

    `'softmax'`; `'squared_relu'`, `relu(a)**2 / n` (https://arxiv.org/abs/2202.10447);
    `'softmax_plus'`, softmax of `a * log(n) / log(512)` with `n >= 16`
    (https://kexue.fm/archives/8823), `n` being the number of unmasked keys.
    `mask` and `bias` as in `sequence_masking`.
    """
    a, mask = sequence_masking(a, mask, "-inf", axis, bias, True)
    if method == "softmax":
        return ops.softmax(a, axis=axis)
    if mask is None:
        n = ops.cast(ops.shape(a)[axis], a.dtype)
    else:
        n = ops.sum(ops.cast(mask, a.dtype), axis=axis, keepdims=True)
    if method == "squared_relu":
        return ops.square(ops.relu(a)) / n
    if method == "softmax_plus":
        n = ops.maximum(n, 16.0)  # very short sequences scale badly
        return ops.softmax(a * ops.log(n) / np.log(512.0), axis=axis)
    raise ValueError(f"attention_normalize: unknown method {method!r}; "
                     "use 'softmax', 'squared_relu' or 'softmax_plus'")


def sinusoidal_embeddings(pos, dim, base=10000):
    """Sinusoidal encodings of positions `pos`, interleaved `[sin0, cos0, sin1, cos1, ...]`.

    Output shape `pos.shape + (dim,)`.

    >>> tuple(sinusoidal_embeddings(keras.ops.arange(4, dtype="float32"), 6).shape)
    (4, 6)
    """
    from kerasnlp4su.layers.position import sinusoidal_angles

    angles = sinusoidal_angles(pos, dim, base)
    embeddings = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return flatten(embeddings, len(embeddings.shape) - 2)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Sinusoidal(keras.initializers.Initializer):
    """Initializer: a `(positions, dim)` table of sinusoidal encodings (Transformer paper).

    >>> tuple(Sinusoidal()((4, 6)).shape)
    (4, 6)
    """

    def __call__(self, shape, dtype=None):
        size, dim = shape
        table = sinusoidal_embeddings(ops.arange(size, dtype="float32"), dim)
        return ops.cast(table, dtype or keras.config.floatx())


def apply_rotary_position_embeddings(sinusoidal, *tensors):
    """Rotate each tensor's interleaved feature pairs by RoPE angles.

    `sinusoidal` is `(batch, length, dim)` from `sinusoidal_embeddings`
    (sin at even features, cos at odd ones); each tensor is
    `(batch, length, ..., dim)`. Returns one tensor or a list.
    """
    from kerasnlp4su.layers.position import apply_rotary

    if not tensors:
        raise ValueError("apply_rotary_position_embeddings: give at least one tensor")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"apply_rotary_position_embeddings: tensors differ in shape: {shapes}")
    rank = len(tensors[0].shape)
    sinusoidal = align(sinusoidal, [0, 1, -1], rank)
    sin = ops.repeat(sinusoidal[..., ::2], 2, axis=-1)
    cos = ops.repeat(sinusoidal[..., 1::2], 2, axis=-1)
    outputs = [apply_rotary(t, sin, cos) for t in tensors]
    return outputs[0] if len(outputs) == 1 else outputs


def symbolic(f):
    """Identity decorator (bert4keras's shim for old Keras)."""
    return f


def graph_mode_decorator(f, *args, **kwargs):
    """TF1 graph-mode custom gradients: no Keras 3 meaning; raises."""
    raise NotImplementedError(
        "graph_mode_decorator wraps TF1 graph-mode custom gradients, which Keras 3 does not use. "
        "Use keras.ops.custom_gradient for a custom gradient, or recompute_grad / keras.remat "
        "for recomputation."
    )


def recompute_grad(call):
    """Decorate a layer's `call` so its activations are recomputed in the backward pass.

    Runs the call through `keras.remat` (tf.recompute_grad, jax.checkpoint,
    torch checkpointing): outputs and gradients are unchanged, memory drops,
    time grows, dropout draws the same mask in the recomputation. bert4keras
    only did this under `RECOMPUTE=1`; here the decorator is the switch. For
    a model of this library, build it inside `keras.RematScope(mode="full")`
    instead: the layers bert4keras recomputed are then rematerialised.

    Example:
    >>> class Block(keras.layers.Layer):
    ...     @recompute_grad
    ...     def call(self, inputs):
    ...         return keras.ops.tanh(inputs) * 2
    """

    @functools.wraps(call)
    def rematerialised_call(self, inputs, **kwargs):
        return remat_tensor_arguments(functools.partial(call, self), self)(inputs, **kwargs)

    return rematerialised_call


def remat_tensor_arguments(fn, layer=None):
    """`keras.remat(fn)` where only the floating-point tensor arguments of `fn` pass through it.

    Floating-point tensors anywhere in `args`/`kwargs` (hidden states,
    additive masks) become positional inputs of the rematerialised function,
    so gradients reach them. Everything else stays in a closure: Python
    values (`training=True`, a mode string, a `None` mask), which
    `tf.recompute_grad` refuses as keyword arguments inside `tf.function`
    and `jax.checkpoint` would turn into abstract values Python cannot
    branch on; and integer or boolean tensors (ids, keep-masks), which have
    no gradient (TensorFlow's remat fails on a boolean input).

    With `layer` (the layer `fn` is the call of), its random-seed states
    (those of its `Dropout` sub-layers) are inputs of the rematerialised
    function too and their updates outputs, applied once afterwards: the
    recomputation in the backward pass then draws the same dropout mask as
    the forward pass (a second draw would give wrong gradients).

    Example:
    >>> scaled = remat_tensor_arguments(lambda x, factor=1.0: keras.ops.tanh(x) * factor)
    >>> tuple(scaled(keras.ops.ones((2, 3)), factor=2.0).shape)
    (2, 3)
    """

    @functools.wraps(fn)
    def call(*args, **kwargs):
        leaves = keras.tree.flatten((args, kwargs))
        where = [i for i, leaf in enumerate(leaves)
                 if ops.is_tensor(leaf) and keras.backend.is_float_dtype(leaf.dtype)]
        weights = layer.weights if layer is not None else []
        weight_ids = {id(w) for w in weights}
        seeds = [v for v in (layer.variables if layer is not None else []) if id(v) not in weight_ids]

        def forward(*tensors):
            filled = list(leaves)
            for i, tensor in zip(where, tensors):
                filled[i] = tensor
            inner_args, inner_kwargs = keras.tree.pack_sequence_as((args, kwargs), filled)
            if not seeds:
                return fn(*inner_args, **inner_kwargs)
            # A StatelessScope does not fall back to an enclosing one (JAX's
            # trainer runs in one), so the weights are mapped to the values
            # they have here; reading them in here keeps TensorFlow's
            # gradients for the variables.
            mapping = [(w, w.value) for w in weights] + list(zip(seeds, tensors[len(where):]))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                outputs = fn(*inner_args, **inner_kwargs)
            return outputs, [scope.get_current_value(v) for v in seeds]

        tensors = [leaves[i] for i in where]
        if not seeds:
            return keras.remat(forward)(*tensors)
        # Copies: the seed variables are assigned below, while the backward
        # pass still needs the values the forward pass read.
        outputs, states = keras.remat(forward)(*tensors, *(ops.copy(v.value) for v in seeds))
        for seed, state in zip(seeds, states):
            seed.assign(state)
        return outputs

    return call


def __getattr__(name):
    # `tf` as bert4keras exposed it, imported only when asked for: on JAX or
    # PyTorch nothing else here needs TensorFlow.
    if name == "tf":
        import tensorflow

        return tensorflow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Su Jianlin's multilabel categorical cross-entropy (https://kexue.fm/archives/7359):
# bert4keras's backend names; `kerasnlp4su.training.losses` builds the
# GlobalPointer losses on them.
# Stands in for infinity inside logsumexp: exp(-1e12) is exactly 0 in float32
# while keeping every value and gradient finite.
_BIG = 1e12


def _logsumexp_with_zero(x):
    """`log(1 + sum(exp(x), -1))`: logsumexp with the threshold class appended."""
    zeros = ops.zeros_like(x[..., :1])
    return ops.logsumexp(ops.concatenate([x, zeros], axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def multilabel_categorical_crossentropy(y_true, y_pred):
    """Dense form: `y_true` has the shape of `y_pred`, values in [0, 1].

    1 marks a target class and 0 a non-target; a value in between is a soft
    label (the class counts as positive with weight `y` and negative with
    weight `1 - y`, inside the log-sum-exp). Cells of `y_pred` at or below
    the masked value written by the pointer/CRF layers are ignored.
    Returns the loss per row, shape `y_pred.shape[:-1]`.

    Example:
    >>> float(multilabel_categorical_crossentropy([[1.0, 0.0]], [[2.0, -1.0]])[0])  # doctest: +ELLIPSIS
    0.44...
    """
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    # bert4keras wrote masked cells as -inf and left them out of the loss, so
    # labels sitting on them are ignored here too.
    valid = y_pred > MASKED_BELOW
    tiny = 1e-30  # only keeps log() finite on the branch `where` discards
    y_neg = ops.where(ops.logical_and(valid, y_true < 1),
                      y_pred + ops.log(ops.maximum(1.0 - y_true, tiny)), -_BIG)
    y_pos = ops.where(ops.logical_and(valid, y_true > 0),
                      -y_pred + ops.log(ops.maximum(y_true, tiny)), -_BIG)
    return _logsumexp_with_zero(y_neg) + _logsumexp_with_zero(y_pos)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """Sparse form: `y_true` holds the indices of the positive classes.

    `y_true` is `(..., num_positive)` integers, `y_pred` `(..., num_classes)`.
    Indices in a row must be distinct. Rows with fewer positives need
    `mask_zero=True`: index 0 is then the padding (repeat it freely) and
    class 0 is dropped from the loss altogether (GlobalPointer gives up the
    (0, 0) [CLS] cell that way).
    The negative part is `log(1 + sum_all exp(s) - sum_pos exp(s))`,
    evaluated stably in log space; its inner factor is clipped at
    `keras.config.epsilon()` as bert4keras did, so it equals the dense form
    except when the positives hold nearly all the mass.

    Example:
    >>> y_pred = keras.ops.convert_to_tensor([[2.0, -1.0, 0.5]])
    >>> loss = sparse_multilabel_categorical_crossentropy([[0, 2]], y_pred)
    """
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "int32")
    zeros = ops.zeros_like(y_pred[..., :1])
    y_pred = ops.concatenate([y_pred, zeros], axis=-1)
    if mask_zero:
        # +BIG at index 0 makes a padded positive contribute exp(-BIG) = 0.
        y_pred = ops.concatenate([zeros + _BIG, y_pred[..., 1:]], axis=-1)
    y_pos = ops.take_along_axis(y_pred, y_true, axis=-1)
    pos_loss = _logsumexp_with_zero(-y_pos)
    if mask_zero:
        # ... and -BIG removes class 0 (and the padding) from the negatives.
        y_pred = ops.concatenate([zeros - _BIG, y_pred[..., 1:]], axis=-1)
        y_pos = ops.take_along_axis(y_pred, y_true, axis=-1)
    all_loss = ops.logsumexp(y_pred, axis=-1)  # includes the appended 0 logit
    pos_share = ops.logsumexp(y_pos, axis=-1) - all_loss
    neg_share = ops.clip(-ops.expm1(pos_share), keras.config.epsilon(), 1.0)
    return pos_loss + all_loss + ops.log(neg_share)



# Custom objects as bert4keras registered them, for `custom_objects=` of
# loading calls (Keras 3 finds the registered ones without it).
custom_objects = {
    "gelu_erf": gelu_erf,
    "gelu_tanh": gelu_tanh,
    "gelu": gelu_erf,
    "root_mean_square": root_mean_square,
    "swish": swish,
    "leaky_relu": leaky_relu,
    "Sinusoidal": Sinusoidal,
    "multilabel_categorical_crossentropy": multilabel_categorical_crossentropy,
    "initializer": keras.initializers.GlorotUniform,
}
