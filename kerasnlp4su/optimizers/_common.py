"""Helpers shared by the optimizers: variable naming, pattern matching, factories."""

import functools

import keras

from kerasnlp4su.backend import densify

PACKAGE = "kerasnlp4su"


def variable_path(variable):
    """The variable's full path (`'Transformer-0-FeedForward/output/kernel'`), else its name.

    bert4keras matched patterns against TF1 names, which carried the layer
    name; in Keras 3 `variable.name` is only the leaf (`'kernel'`), so
    patterns must be matched against the path to mean the same thing.
    """
    return getattr(variable, "path", None) or variable.name


def leaf_name(variable):
    """The last path component without a `:0` suffix (`'gamma'`, `'embeddings'`)."""
    return variable_path(variable).split("/")[-1].split(":")[0]


def matching_patterns(variable, patterns):
    """Patterns (plain substrings, as in bert4keras) found in the variable's path."""
    path = variable_path(variable)
    return [p for p in patterns if p in path]


class DenseGradients:
    """Mixin: `apply` hands the update dense gradients (see `with_dense_gradients`)."""

    def apply(self, grads, trainable_variables=None):
        return super().apply([densify(g) for g in grads], trainable_variables)


@functools.lru_cache(maxsize=None)
def with_dense_gradients(base):
    """`base`, or a subclass of it whose updates see dense gradients on TensorFlow.

    An embedding's gradient reaches a TensorFlow optimizer as `IndexedSlices`
    with one row per token, so a token that occurs twice has two rows. Keras
    3's sparse-aware ops square those rows before they are summed, so Adam's
    second moment for that embedding row becomes the sum of squares instead
    of the square of the sum: an update of 0.14 instead of 0.1 for two equal
    rows at lr 0.1. Any update that is not linear in the gradient (Adam,
    AdamW, RMSprop, Adagrad, ...) is affected; summing the rows first, as
    TF1's optimizers, bert4keras and PyTorch do, restores the dense result.
    """
    if issubclass(base, DenseGradients):
        return base
    # Only ever a base of an extension class, which carries the registered name.
    return type(f"Dense{base.__name__}", (DenseGradients, base), {"__module__": __name__})


def optimizer_extension(suffix):
    """Turn `build(Base) -> class` into a bert4keras-style `extend_with_*(Base, name=None)`.

    The factory is memoised per `(Base, name)`, so calling it twice gives the
    same class (isinstance checks and deserialisation keep working), and the
    class is registered with Keras under `'kerasnlp4su>{name}'` so saved
    models find it again once the factory has been called in the loading
    process -- the registry is Keras's own mechanism, nothing is patched.
    Every extension sees dense gradients (`with_dense_gradients`).
    """

    def decorate(build):
        @functools.lru_cache(maxsize=None)
        def cached(base, name):
            cls = build(with_dense_gradients(base))
            cls.__name__ = cls.__qualname__ = name or f"{base.__name__}{suffix}"
            cls.__module__ = build.__module__
            return keras.saving.register_keras_serializable(package=PACKAGE)(cls)

        @functools.wraps(build)
        def factory(base, name=None):
            if not (isinstance(base, type) and issubclass(base, keras.optimizers.Optimizer)):
                raise TypeError(f"expected a keras.optimizers.Optimizer subclass, got {base!r}")
            return cached(base, name)

        return factory

    return decorate


def export_to_custom_objects(extend_with):
    """Turn a plain `extend_with(Base) -> class` into `factory(Base, name=None)`.

    bert4keras's decorator for user-written extensions: the class gets
    `name` (else its own `__name__`) and is registered with Keras under
    `'kerasnlp4su>{name}'`, so saved models find it again once the factory
    has been called. Calls with the same arguments give the same class.

    Example:
    >>> @export_to_custom_objects
    ... def extend_with_nothing(base):
    ...     class Nothing(base):
    ...         pass
    ...     return Nothing
    >>> AdamNothing = extend_with_nothing(keras.optimizers.Adam, "AdamNothing")
    """

    @functools.lru_cache(maxsize=None)
    def cached(base, name):
        cls = extend_with(base)
        if name:
            cls.__name__ = cls.__qualname__ = name
        return keras.saving.register_keras_serializable(package=PACKAGE)(cls)

    @functools.wraps(extend_with)
    def factory(base, name=None):
        return cached(base, name)

    return factory
