"""`K` as bert4keras scripts use it: Keras 2's `keras.backend` on Keras 3, every backend.

bert4keras scripts write `from bert4keras.backend import keras, K` and then
call Keras-2 backend functions through `K`: `K.sum(x, axis, keepdims)`,
`K.sparse_categorical_crossentropy(y_true, y_pred)`, `K.eval(v)`,
`K.set_value(v, x)`, `K.int_shape(x)`, `K.in_train_phase(x, alt)`, ...
This module serves those with Keras 2's argument names and defaults
(`K.concatenate` joins the last axis, `K.cumsum` runs along axis 0,
`K.expand_dims` adds the last axis) on TensorFlow, JAX and PyTorch. Any
other name falls through to `keras.backend` (`floatx`, `epsilon`,
`clear_session`, ...) and then to `keras.ops`, so `K.softmax`, `K.relu` and
the rest of the op set work as they did when `K` was `keras.ops`.

bert4keras put its own `reshape`, `flatten` and `where` onto `K`; so does
this module (see `kerasnlp4su.backend`).

Keras-2 calls that build symbolic graphs (`K.gradients`, `K.placeholder`,
`K.get_session`, `K.function` with `updates`) have no Keras 3 meaning and
raise an error saying what to use instead.

Example:
>>> from kerasnlp4su.backend import K
>>> K.int_shape(K.concatenate([K.ones((2, 3)), K.zeros((2, 1))]))
(2, 4)
>>> float(K.eval(K.sum(K.ones((2, 3)), 1, keepdims=True))[0, 0])
3.0
"""

import keras
import numpy as np
from keras import ops
from keras.src.backend.common import global_state  # where Keras 3 keeps the call's `training`

from kerasnlp4su import shape_ops

# ---------------------------------------------------------------- values


def eval(x):  # noqa: A001 - Keras 2's name
    """The value of a tensor or variable as a NumPy array."""
    return ops.convert_to_numpy(x)


def get_value(x):
    """The value of a variable (or tensor) as a NumPy array."""
    return ops.convert_to_numpy(x)


def batch_get_value(tensors):
    """`get_value` of each item."""
    return [get_value(t) for t in tensors]


def set_value(x, value):
    """Assign `value` to the variable `x` in place."""
    x.assign(ops.cast(value, x.dtype))


def batch_set_value(tuples):
    """`set_value(x, value)` for each `(x, value)` pair."""
    for x, value in tuples:
        set_value(x, value)


def update(x, new_x):
    """`x.assign(new_x)`; returns `x`."""
    x.assign(new_x)
    return x


def update_add(x, increment):
    """`x.assign_add(increment)`; returns `x`."""
    x.assign_add(increment)
    return x


def update_sub(x, decrement):
    """`x.assign_sub(decrement)`; returns `x`."""
    x.assign_sub(decrement)
    return x


def variable(value, dtype=None, name=None, constraint=None):
    """A `keras.Variable` holding `value` (`floatx()` by default)."""
    return keras.Variable(value, dtype=dtype or keras.config.floatx(), name=name,
                          constraint=constraint)


def constant(value, dtype=None, shape=None, name=None):
    """A tensor of `value`, broadcast to `shape` when given."""
    del name
    tensor = ops.convert_to_tensor(value, dtype=dtype or keras.config.floatx())
    return tensor if shape is None else ops.broadcast_to(tensor, shape)


def zeros(shape, dtype=None, name=None):
    """A zero tensor (Keras 2 returned a variable; use `variable` for one)."""
    del name
    return ops.zeros(shape, dtype=dtype or keras.config.floatx())


def ones(shape, dtype=None, name=None):
    """A tensor of ones (Keras 2 returned a variable; use `variable` for one)."""
    del name
    return ops.ones(shape, dtype=dtype or keras.config.floatx())


def eye(size, dtype=None, name=None):
    """An identity matrix."""
    del name
    return ops.eye(size, dtype=dtype or keras.config.floatx())


def zeros_like(x, dtype=None, name=None):
    del name
    return ops.zeros_like(x, dtype=dtype)


def ones_like(x, dtype=None, name=None):
    del name
    return ops.ones_like(x, dtype=dtype)


def arange(start, stop=None, step=1, dtype="int32"):
    """`keras.ops.arange` with Keras 2's int32 default."""
    return ops.arange(start, stop, step, dtype=dtype)


def cast_to_floatx(x):
    """A NumPy array of `x` in `floatx()`."""
    return np.asarray(x, dtype=keras.config.floatx())


# ---------------------------------------------------------------- shapes


def int_shape(x):
    """The static shape as a tuple (`None` for unknown dimensions)."""
    return tuple(x.shape)


def ndim(x):
    return len(x.shape)


def dtype(x):
    """The dtype name, e.g. `'float32'`."""
    return keras.backend.standardize_dtype(x.dtype)


def count_params(x):
    return int(np.prod(int_shape(x)))


def is_sparse(x):
    """Keras 3 tensors served here are dense."""
    del x
    return False


def to_dense(x):
    return x


def expand_dims(x, axis=-1):
    """Keras 2 added the last axis by default."""
    return ops.expand_dims(x, axis)


def concatenate(tensors, axis=-1):
    """Keras 2 joined along the last axis by default."""
    return ops.concatenate(list(tensors), axis=axis)


def permute_dimensions(x, pattern):
    return ops.transpose(x, pattern)


def repeat_elements(x, rep, axis):
    return ops.repeat(x, rep, axis=axis)


def repeat(x, n):
    """`(batch, dim)` -> `(batch, n, dim)`."""
    return ops.repeat(ops.expand_dims(x, 1), n, axis=1)


def batch_flatten(x):
    """`(batch, ...)` -> `(batch, prod(...))`."""
    return ops.reshape(x, (ops.shape(x)[0], -1))


def gather(reference, indices):
    """Rows `indices` of `reference` (axis 0)."""
    return ops.take(reference, indices, axis=0)


def temporal_padding(x, padding=(1, 1)):
    """Pad axis 1 of a 3D tensor with `padding = (left, right)` zeros."""
    return ops.pad(x, [[0, 0], list(padding), [0, 0]])


def cumsum(x, axis=0):
    """Keras 2 summed along axis 0 by default (`keras.ops` flattens)."""
    return ops.cumsum(x, axis=axis)


def cumprod(x, axis=0):
    return ops.cumprod(x, axis=axis)


def argmax(x, axis=-1):
    """Keras 2 took the last axis by default (`keras.ops` flattens)."""
    return ops.argmax(x, axis=axis)


def argmin(x, axis=-1):
    return ops.argmin(x, axis=axis)


def reverse(x, axes):
    return ops.flip(x, axis=axes)


def map_fn(fn, elems, name=None, dtype=None):
    del name, dtype
    return ops.map(fn, elems)


def bias_add(x, bias, data_format=None):
    del data_format
    return x + bias


# ---------------------------------------------------------------- math


def l2_normalize(x, axis=None):
    """`x / sqrt(max(sum(x**2, axis), 1e-12))` (all axes when `axis=None`)."""
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(square_sum, 1e-12))


def sqrt(x):
    """Square root of `max(x, 0)`, as Keras 2 clipped negatives."""
    return ops.sqrt(ops.maximum(x, 0.0))


def pow(x, a):  # noqa: A001 - Keras 2's name
    return ops.power(x, a)


def relu(x, alpha=0.0, max_value=None, threshold=0.0):
    """Keras 2's relu: `alpha` slope below `threshold`, capped at `max_value`."""
    x = ops.convert_to_tensor(x)
    if threshold != 0:
        out = ops.where(x > threshold, x, alpha * (x - threshold) if alpha else ops.zeros_like(x))
    elif alpha:
        out = ops.where(x > 0, x, alpha * x)
    else:
        out = ops.relu(x)
    return out if max_value is None else ops.minimum(out, max_value)


def dot(x, y):
    """NumPy's `dot`: the last axis of `x` against the second-to-last of `y`.

    `keras.ops.dot` differs on PyTorch for inputs of rank > 2.

    >>> tuple(dot(keras.ops.ones((2, 3)), keras.ops.ones((4, 3, 5))).shape)
    (2, 4, 5)
    """
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    y_axis = len(y.shape) - 2 if len(y.shape) >= 2 else 0
    return ops.tensordot(x, y, axes=[[len(x.shape) - 1], [y_axis]])


def batch_dot(x, y, axes=None):
    """Keras 2's `batch_dot`: per sample, contract axis `axes[0]` of x with `axes[1]` of y.

    The result keeps x's remaining axes, then y's; two 2D inputs give
    `(batch, 1)`. By default the last axis of `x` meets the second-to-last
    of `y` (the last one when `y` is 2D).

    >>> tuple(batch_dot(keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 4, 5))).shape)
    (2, 3, 5)
    """
    x_ndim, y_ndim = len(x.shape), len(y.shape)
    if x_ndim < 2 or y_ndim < 2:
        raise ValueError(f"batch_dot needs inputs of rank >= 2, got ranks {x_ndim} and {y_ndim}")
    if axes is None:
        axes = (x_ndim - 1, y_ndim - 1 if y_ndim == 2 else y_ndim - 2)
    elif isinstance(axes, int):
        axes = (axes, axes)
    ax, ay = axes[0] % x_ndim, axes[1] % y_ndim
    if ax == 0 or ay == 0:
        raise ValueError(f"batch_dot cannot contract the batch axis 0, got axes={tuple(axes)}")
    letters = iter("bcdefghijklmnopqrstuvwxyz")
    x_sub = ["a"] + [next(letters) for _ in range(x_ndim - 1)]
    y_sub = ["a"] + [next(letters) for _ in range(y_ndim - 1)]
    y_sub[ay] = x_sub[ax]
    out = [s for i, s in enumerate(x_sub) if i != ax] + [s for i, s in enumerate(y_sub)
                                                         if i not in (0, ay)]
    result = ops.einsum(f"{''.join(x_sub)},{''.join(y_sub)}->{''.join(out)}", x, y)
    return ops.expand_dims(result, -1) if x_ndim == y_ndim == 2 else result


def switch(condition, then_expression, else_expression):
    """`then_expression` where `condition`, else `else_expression` (callables are called)."""
    then_value = then_expression() if callable(then_expression) else then_expression
    else_value = else_expression() if callable(else_expression) else else_expression
    if isinstance(condition, (bool, int)):
        return then_value if condition else else_value
    return ops.where(ops.cast(condition, "bool"), then_value, else_value)


def pool2d(x, pool_size, strides=(1, 1), padding="valid", data_format=None, pool_mode="max"):
    """Keras 2's 2D pooling (`pool_mode` 'max' or 'avg'); bert4keras's `pool1d` calls it."""
    pools = {"max": ops.max_pool, "avg": ops.average_pool}
    if pool_mode not in pools:
        raise ValueError(f"K.pool2d: pool_mode={pool_mode!r}; use 'max' or 'avg'")
    return pools[pool_mode](x, pool_size, strides, padding,
                            data_format or keras.config.image_data_format())


def rnn(step_function, inputs, initial_states, go_backwards=False, mask=None, constants=None,
        unroll=False, input_length=None, time_major=False, zero_output_for_mask=False,
        return_all_outputs=True):
    """Keras 2's `K.rnn`: `(last_output, outputs, new_states)` of `step_function` over axis 1.

    `step_function(inputs_t, states) -> (output_t, new_states)`, as in Keras 2
    (bert4keras's CRF used it for the partition function). Keras 3 keeps the
    same loop per backend; `keras.ops.scan` is the public op for new code.

    >>> last, _, _ = rnn(lambda x, s: (s[0] + x, [s[0] + x]), keras.ops.ones((2, 3, 1)),
    ...                  [keras.ops.zeros((2, 1))])
    >>> float(last[0, 0])
    3.0
    """
    from keras.src import backend as keras_backend  # the per-backend loop behind keras.layers.RNN

    inputs = keras.tree.map_structure(ops.convert_to_tensor, inputs)
    initial_states = [ops.convert_to_tensor(state) for state in initial_states]
    return keras_backend.rnn(step_function, inputs, initial_states,
                             go_backwards=go_backwards, mask=mask, constants=constants,
                             unroll=unroll, input_length=input_length, time_major=time_major,
                             zero_output_for_mask=zero_output_for_mask,
                             return_all_outputs=return_all_outputs)


# ---------------------------------------------------------------- losses


def _squeeze_sparse_target(target, output):
    target = ops.convert_to_tensor(target)
    if len(target.shape) == len(output.shape) and target.shape[-1] == 1:
        target = ops.squeeze(target, -1)
    return ops.cast(target, "int32")


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Keras 2's order `(target, output)`; integer targets may carry a trailing 1 axis."""
    output = ops.convert_to_tensor(output)
    return ops.sparse_categorical_crossentropy(_squeeze_sparse_target(target, output), output,
                                               from_logits=from_logits, axis=axis)


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    output = ops.convert_to_tensor(output)
    return ops.categorical_crossentropy(ops.cast(target, output.dtype), output,
                                        from_logits=from_logits, axis=axis)


def binary_crossentropy(target, output, from_logits=False):
    output = ops.convert_to_tensor(output)
    return ops.binary_crossentropy(ops.cast(target, output.dtype), output,
                                   from_logits=from_logits)


# ---------------------------------------------------------------- randomness


def random_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return keras.random.uniform(shape, minval, maxval, dtype=dtype, seed=seed)


def random_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return keras.random.normal(shape, mean, stddev, dtype=dtype, seed=seed)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return keras.random.truncated_normal(shape, mean, stddev, dtype=dtype, seed=seed)


def random_binomial(shape, p=0.0, dtype=None, seed=None):
    """1 with probability `p`, else 0 (Keras 2's Bernoulli draw)."""
    draw = keras.random.uniform(shape, dtype="float32", seed=seed)
    return ops.cast(draw < p, dtype or keras.config.floatx())


random_bernoulli = random_binomial


def dropout(x, level, noise_shape=None, seed=None):
    return keras.random.dropout(x, level, noise_shape=noise_shape, seed=seed)


# ---------------------------------------------------------------- training phase


def learning_phase():
    """1 inside a layer called in training (e.g. by `fit`), else 0.

    Keras 3 has no global learning phase: a layer call inherits `training`
    from the outermost call, which is what this reads.
    """
    context = global_state.get_global_attribute("current_call_ctx")
    training = getattr(context, "training", None)
    if training is None:
        return 0
    return int(training) if isinstance(training, (bool, int)) else training  # a tensor flag


def set_learning_phase(value):
    raise RuntimeError(
        "K.set_learning_phase: Keras 3 has no global learning phase. Pass training=True/False "
        "to the model or layer call (fit() and predict() do it for you)."
    )


def in_train_phase(x, alt, training=None):
    """`x` when training, else `alt` (callables are called).

    `training=None` takes the training flag of the enclosing layer call,
    as Keras 2 took its learning phase.
    """
    if training is None:
        training = learning_phase()
    return switch(training, x, alt)


def in_test_phase(x, alt, training=None):
    """`x` outside training, else `alt`."""
    return in_train_phase(alt, x, training=training)


# ---------------------------------------------------------------- graphs


def function(inputs, outputs, updates=None, name=None):
    """A callable computing `outputs` from `inputs` (Keras tensors of a functional model).

    Returns NumPy arrays, a list when `outputs` is a list, as Keras 2 did.
    Graph updates have no Keras 3 meaning.
    """
    del name
    if updates:
        raise ValueError("K.function(updates=...) has no Keras 3 meaning; "
                         "run the updates eagerly or in a custom train_step")
    model = keras.Model(inputs, outputs)

    def run(values):
        result = model(values, training=False)
        if isinstance(outputs, (list, tuple)):
            return [ops.convert_to_numpy(r) for r in keras.tree.flatten(result)]
        return ops.convert_to_numpy(result)

    return run


def gradients(loss, variables):
    raise RuntimeError(
        "K.gradients(loss, variables) differentiates a Keras 2 symbolic graph, which Keras 3 does "
        "not build. Compute gradients in a training step (tf.GradientTape, jax.grad, "
        "torch.autograd), or use kerasnlp4su.training.gradient_penalty / adversarial_training, "
        "which wrap the model's train step."
    )


def placeholder(*args, **kwargs):
    raise RuntimeError("K.placeholder: Keras 3 has no placeholders; use keras.Input(shape=...)")


def get_session(*args, **kwargs):
    raise RuntimeError("K.get_session: Keras 3 has no TF1 session; models run eagerly or "
                       "compiled by fit/predict")


set_session = get_session


def symbolic(f):
    """Identity decorator (Keras 2 marked graph-building functions with it)."""
    return f


def name_scope(name):
    return keras.name_scope(name)


# bert4keras put its own reshape, flatten and where onto K.
_PATCHED = {"reshape": shape_ops.reshape, "flatten": shape_ops.flatten, "where": shape_ops.where,
            "logsumexp": ops.logsumexp}


def __getattr__(name):
    if name in _PATCHED:
        return _PATCHED[name]
    for namespace in (keras.backend, keras.config, ops):
        if hasattr(namespace, name):
            return getattr(namespace, name)
    raise AttributeError(
        f"K.{name}: neither Keras 2's backend as served by kerasnlp4su nor keras.ops has it"
    )
