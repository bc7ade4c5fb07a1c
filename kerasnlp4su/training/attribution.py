"""Integrated gradients over a layer's output: which tokens a prediction rests on.

Sundararajan et al. 2017 (https://arxiv.org/abs/1703.01365); Su Jianlin's
"积分梯度：一种新颖的神经网络可视化方法" (https://kexue.fm/archives/7533) and
bert4keras's example `task_sentiment_integrated_gradients.py`, whose
Keras-2 `Gradient` layer (`K.gradients` inside a layer) this replaces.
"""

import keras
import numpy as np
from keras import ops

from kerasnlp4su.backend import no_grad


def _layer_output(model, layer_name):
    """The output tensor of `layer_name`'s first call in `model`'s graph (its token lookup)."""
    try:
        layer = model.get_layer(layer_name)
    except ValueError as error:
        raise ValueError(f"integrated_gradients: the model has no layer {layer_name!r} at its top "
                         f"level (a layer inside a nested model is not reachable)") from error
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        raise ValueError(f"integrated_gradients: layer {layer_name!r} is not called in the model")
    outputs = keras.tree.flatten(nodes[0].output_tensors)
    if len(outputs) != 1:
        raise ValueError(f"integrated_gradients: layer {layer_name!r} has {len(outputs)} outputs; "
                         f"it needs one")
    return outputs[0]


def _value_and_gradient(fn, x):
    """`fn(x)` (a scalar) and its gradient w.r.t. the tensor `x`, on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        return value, tape.gradient(value, x)
    if backend == "jax":
        import jax

        # One compiled program: eager JAX would compile every op of the model separately.
        return jax.jit(jax.value_and_grad(fn))(ops.convert_to_tensor(x))
    if backend == "torch":
        import torch

        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        value = fn(x)
        (grad,) = torch.autograd.grad(value, [x])
        return value.detach(), grad
    raise NotImplementedError(f"integrated_gradients: no gradient for backend {backend!r}")


def integrated_gradients(model, inputs, embedding_name="Embedding-Token", steps=20, target=None,
                         baseline=None):
    """Per-position attributions of `model`'s prediction to the output of layer `embedding_name`.

    With `e` the layer's output for `inputs` and `b` the baseline (zeros, as
    bert4keras's example used), returns `(e - b) * mean_k grad f(b + a_k (e - b))`,
    `a_k = (k + 0.5) / steps` (the midpoint rule of the path integral), a
    NumPy array shaped like `e`, e.g. `(batch, length, hidden)`. `f` is the
    model's output for class `target` (an int, or one per example; default:
    each example's predicted class, as the example did); a model with one
    output unit uses that unit. The attributions of an example add up to
    about `f(inputs) - f(baseline)` (the completeness axiom; more `steps`,
    closer). Per-token scores: `np.linalg.norm(attributions, axis=-1)`.

    bert4keras's example scaled the embedding matrix from 0 to its value,
    which moves the same path, but averaged `grad * a_k e` (the path point)
    instead of `grad * e`; its scores are therefore smaller by a token-wise
    weighting, and its ranking is usually, not always, the same. The whole
    path runs as one batch of `steps` copies of `inputs`, in inference mode.

    Example:
    >>> attributions = integrated_gradients(model, [token_ids, segment_ids])  # doctest: +SKIP
    >>> scores = np.linalg.norm(attributions[0], axis=-1)  # doctest: +SKIP
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps={steps}; it must be at least 1")
    if len(model.outputs) != 1:
        raise ValueError(f"integrated_gradients: the model has {len(model.outputs)} outputs; "
                         f"it needs one")
    embedded = _layer_output(model, embedding_name)
    # One array per model input (`[[token_ids], [segment_ids]]` as bert4keras scripts write it).
    if len(model.inputs) == 1:
        rank = len(model.inputs[0].shape)
        wrapped = isinstance(inputs, (list, tuple)) and len(inputs) == 1
        inputs = [np.asarray(inputs[0] if wrapped and np.ndim(inputs[0]) == rank else inputs)]
    elif isinstance(inputs, (list, tuple)) and len(inputs) == len(model.inputs):
        inputs = [np.asarray(i) for i in inputs]
    else:
        raise ValueError(f"integrated_gradients: the model takes {len(model.inputs)} inputs; "
                         f"pass a list of {len(model.inputs)} arrays")
    # The graph from (model inputs, layer output) to the model output: the layer's
    # output becomes an input, the other inputs still feed masks and other embeddings.
    tail = keras.Model(list(model.inputs) + [embedded], model.outputs[0])
    head = keras.Model(model.inputs, embedded)
    with no_grad():
        values = ops.convert_to_numpy(head(inputs, training=False))
    start = np.zeros_like(values) if baseline is None else np.broadcast_to(
        np.asarray(baseline, values.dtype), values.shape)
    batch = values.shape[0]

    with no_grad():
        probe = ops.convert_to_numpy(tail([ops.convert_to_tensor(i) for i in inputs + [values]],
                                          training=False))
    if probe.ndim != 2:
        raise ValueError(f"integrated_gradients: the model output has shape {probe.shape}; it "
                         f"needs (batch, classes)")
    if target is None:
        target = probe.argmax(-1) if probe.shape[-1] > 1 else np.zeros(batch, "int64")
    target = np.broadcast_to(np.asarray(target, "int64"), (batch,))
    if np.any((target < 0) | (target >= probe.shape[-1])):
        raise ValueError(f"integrated_gradients: target {target.tolist()} is outside the "
                         f"{probe.shape[-1]} outputs")

    alphas = (np.arange(steps, dtype=values.dtype) + 0.5) / steps
    shape = (steps,) + (1,) * values.ndim
    path = (start[None] + alphas.reshape(shape) * (values - start)[None])
    path = path.reshape((steps * batch,) + values.shape[1:])
    repeated = [ops.convert_to_tensor(np.concatenate([i] * steps, axis=0)) for i in inputs]
    picks = np.eye(probe.shape[-1], dtype=values.dtype)[np.tile(target, steps)]
    picks = ops.convert_to_tensor(picks)

    def chosen(embeddings):
        return ops.sum(tail(repeated + [embeddings], training=False) * picks)

    _, grads = _value_and_gradient(chosen, path)
    mean_grad = ops.convert_to_numpy(grads).reshape((steps,) + values.shape).mean(0)
    return (values - start) * mean_grad
