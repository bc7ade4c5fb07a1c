"""Rematerialisation (bert4keras's `RECOMPUTE=1`) of this library's layers, on every backend.

Keras 3 rematerialises a layer built inside `keras.RematScope`: its
`rematerialized_call` wraps `call` in `keras.remat`. Keras 3.15.1 passes the
whole call through, Python arguments included, which `tf.recompute_grad`
refuses inside `tf.function` and `jax.checkpoint` turns into abstract
values. `Rematerialisable` keeps Keras's choice of *which* calls are
rematerialised (the scope's mode, layer names, output-size threshold) and
changes *how*: only tensors go through `keras.remat`
(`kerasnlp4su.backend.remat_tensor_arguments`). Output masks are unaffected:
Keras attaches them after the call from the layer's `compute_mask`.

bert4keras recomputed the layers its `recompute_grad` decorated: attention,
feed-forward, layer norms, GAU, scale-offset and the GlobalPointer heads.
The same layers here take the mixin; `Transformer` builds every other layer
(embeddings, dropout, residual adds, the model itself) outside the scope.
"""

import contextlib

import keras

from kerasnlp4su.backend import remat_tensor_arguments

__all__ = ["Rematerialisable", "outside_remat_scope"]


class Rematerialisable:
    """Layer mixin: under `keras.RematScope`, rematerialise with only tensors through `keras.remat`.

    Put it before `keras.layers.Layer` in the bases. Create sub-layers inside
    `outside_remat_scope()`: they run within the parent's rematerialised
    call already.

    Example:
    >>> class Scale(Rematerialisable, keras.layers.Layer):
    ...     def call(self, inputs, training=None):
    ...         return inputs * (2.0 if training else 1.0)
    >>> with keras.RematScope(mode="full"):
    ...     layer = Scale()
    >>> float(layer(keras.ops.ones((1,)), training=True)[0])
    2.0
    """

    def rematerialized_call(self, layer_call, *args, **kwargs):
        # Keras decides whether this call is rematerialised; it returns the
        # call itself when not. Its "activations" mode wraps only activation
        # functions (tensor in, tensor out), which needs no change.
        chosen = super().rematerialized_call(layer_call, *args, **kwargs)
        if chosen is layer_call or self._remat_mode.mode == "activations":
            return chosen
        return remat_tensor_arguments(layer_call, self)


def outside_remat_scope():
    """The context to create a layer's sub-layers (or glue layers) in: no rematerialisation.

    A sub-layer runs inside its parent's call, so rematerialising it as well
    would recompute it twice; and Keras's own rematerialisation of a layer
    with a `training` argument (`Dropout`) fails on TensorFlow and JAX.

    Example:
    >>> with keras.RematScope(mode="full"), outside_remat_scope():
    ...     dropout = keras.layers.Dropout(0.1)
    """
    scope = getattr(keras, "RematScope", None)  # Keras >= 3.9
    return scope(mode=None) if scope is not None else contextlib.nullcontext()
