"""LoRA on a loaded model in one call, on Keras 3's own `enable_lora`.

Keras's `Dense`, `EinsumDense` and `Embedding` (so the project's `Dense` in
the attention and feed-forward blocks and its token `Embedding`) carry LoRA
themselves: `enable_lora(rank, lora_alpha)` adds `lora_kernel_a` (in x r,
He-uniform) and `lora_kernel_b` (r x out, zeros), freezes the kernel, and the
layer then computes with `W + (alpha / r) * A @ B`. This module picks the
layers by a regular expression on their path, freezes everything else,
folds the update in and out of the base weights, and saves or loads the LoRA
factors alone. Su Jianlin's reading of the method: "梯度视角下的LoRA：简介、分析、猜测及推广"
(https://kexue.fm/archives/9590).
"""

import inspect
import re

import keras
import numpy as np
from keras import ops

# The LoRA paper's choice: the attention's query and value projections.
DEFAULT_TARGETS = r"MultiHeadSelfAttention/(query|value)$"
_FACTORS = {"lora_kernel_a", "lora_kernel_b", "lora_embeddings_a", "lora_embeddings_b"}


def _sublayers(model):
    # Keras's own recursive walk (what `Model.quantize` uses); sublayers
    # inside attention and feed-forward blocks are not in `model.layers`.
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)]


def _layer_path(layer):
    return getattr(layer, "path", None) or layer.name


def lora_layers(model):
    """The layers of `model` (nested ones too) that have LoRA enabled, in order.

    Example:
    >>> [layer.path for layer in lora_layers(model)]  # doctest: +SKIP
    ['Transformer-0-MultiHeadSelfAttention/query', ...]
    """
    return [layer for layer in _sublayers(model) if getattr(layer, "lora_enabled", False)]


def _base_variable(layer):
    return layer._embeddings if hasattr(layer, "_embeddings") else layer._kernel


def _factors(layer):
    if hasattr(layer, "lora_embeddings_a"):
        return layer.lora_embeddings_a, layer.lora_embeddings_b
    return layer.lora_kernel_a, layer.lora_kernel_b


def _delta(layer):
    """`(alpha / r) * A @ B`, shaped as the base weight (EinsumDense kernels may be 3-D)."""
    a, b = _factors(layer)
    base = _base_variable(layer)
    delta = (layer.lora_alpha / layer.lora_rank) * ops.matmul(a, b)
    return ops.cast(ops.reshape(delta, base.shape), base.dtype)


def apply_lora(model, rank=8, alpha=None, targets=DEFAULT_TARGETS, trainable=None):
    """Add LoRA factors to the layers of `model` whose path matches `targets`; freeze the rest.

    `targets` is a regular expression searched in each (nested) layer's path,
    e.g. `'Transformer-0-MultiHeadSelfAttention/query'` or
    `'Transformer-1-FeedForward/intermediate'`; every match must be a layer
    with `enable_lora` (Dense, EinsumDense, Embedding). Each gets rank-`rank`
    factors scaled by `alpha / rank` (`alpha` defaults to `rank`, scale 1).
    Every other weight of the model is frozen except those whose path
    matches the regular expression `trainable` (a freshly added head, say
    `'Classifier'`). Call before `compile()`: the optimizer picks up the
    trainable weights then. Returns the list of LoRA layers.

    Example:
    >>> bert = build_transformer_model(config, checkpoint, with_pool=True)  # doctest: +SKIP
    >>> out = keras.layers.Dense(2, name="Classifier")(bert.output)  # doctest: +SKIP
    >>> model = keras.Model(bert.inputs, out)  # doctest: +SKIP
    >>> apply_lora(model, rank=4, alpha=8, trainable="Classifier")  # doctest: +SKIP
    >>> model.compile("adam", "sparse_categorical_crossentropy")  # doctest: +SKIP
    """
    if int(rank) < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    pattern = re.compile(targets)
    chosen = [layer for layer in _sublayers(model) if pattern.search(_layer_path(layer))]
    if not chosen:
        paths = sorted({_layer_path(layer) for layer in _sublayers(model)})
        raise ValueError(f"targets {targets!r} matches no layer of the model; layer paths are "
                         f"e.g. {paths[:8]}")
    for layer in chosen:
        if not hasattr(layer, "enable_lora"):
            raise ValueError(f"layer {_layer_path(layer)!r} ({type(layer).__name__}) cannot take "
                             "LoRA: only Dense, EinsumDense and Embedding layers can")
        if "lora_alpha" not in inspect.signature(layer.enable_lora).parameters:
            raise RuntimeError(f"keras {keras.__version__} has no lora_alpha: LoRA with alpha "
                               "needs a newer Keras 3")
        layer.enable_lora(int(rank), lora_alpha=float(alpha if alpha is not None else rank))
    keep = re.compile(trainable) if trainable else None
    for variable in model.weights:
        name = variable.path.split("/")[-1]
        if name not in _FACTORS and not (keep and keep.search(variable.path)):
            variable.trainable = False
    return chosen


def _reset_compiled_functions(model):
    # A traced train/predict function captured the old forward; retrace it.
    for attr in ("train_function", "test_function", "predict_function"):
        if hasattr(model, attr):
            setattr(model, attr, None)


def merge_lora(model):
    """Fold `(alpha / r) * A @ B` into each LoRA layer's base weight and compute with it alone.

    After merging, inference costs what the plain model does and
    `model.save()` / `save_weights()` write plain weights; the factors stay
    so that `unmerge_lora` can undo it (up to float rounding). Returns the
    merged layers.

    Example:
    >>> merge_lora(model)  # doctest: +SKIP
    >>> model.predict(x)  # same outputs as before, without the LoRA branch  # doctest: +SKIP
    """
    layers = lora_layers(model)
    for layer in layers:
        base = _base_variable(layer)
        base.assign(ops.add(base, _delta(layer)))
        # Keras adds the LoRA branch while `lora_enabled` is true.
        layer.lora_enabled = False
        layer._merged_lora = True
    _reset_compiled_functions(model)
    return layers


def unmerge_lora(model):
    """Undo `merge_lora`: subtract the LoRA update again and compute `W + s * A @ B` again.

    Example:
    >>> unmerge_lora(model).fit(x, y)  # doctest: +SKIP
    """
    layers = [layer for layer in _sublayers(model) if getattr(layer, "_merged_lora", False)]
    for layer in layers:
        base = _base_variable(layer)
        base.assign(ops.subtract(base, _delta(layer)))
        layer.lora_enabled = True
        layer._merged_lora = False
    _reset_compiled_functions(model)
    return model


def _factor_variables(model):
    found = {}
    for layer in _sublayers(model):
        if getattr(layer, "lora_rank", None) and (layer.lora_enabled
                                                  or getattr(layer, "_merged_lora", False)):
            for variable in _factors(layer):
                found[variable.path] = variable
    return found


def lora_weights(model):
    """`{variable path: numpy array}` of every LoRA factor in `model`.

    Example:
    >>> sorted(lora_weights(model))[:1]  # doctest: +SKIP
    ['Transformer-0-MultiHeadSelfAttention/query/lora_kernel_a']
    """
    return {path: np.asarray(ops.convert_to_numpy(v)) for path, v in _factor_variables(model).items()}


def save_lora_weights(model, path):
    """Write only the LoRA factors of `model` to a safetensors file at `path`.

    Kilobytes instead of the whole model: the base weights come from the
    original checkpoint. Raises if `model` has no LoRA layers.

    Example:
    >>> save_lora_weights(model, "adapter.safetensors")  # doctest: +SKIP
    """
    from safetensors.numpy import save_file

    weights = lora_weights(model)
    if not weights:
        raise ValueError("the model has no LoRA layers to save; call apply_lora first")
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(path))


def load_lora_weights(model, path):
    """Load factors written by `save_lora_weights` into `model` (LoRA applied with the same layers).

    Every saved factor must match one of the model's by path and shape, and
    every factor of the model must be in the file; otherwise a `ValueError`
    names the difference.

    Example:
    >>> apply_lora(model, rank=4, alpha=8)  # doctest: +SKIP
    >>> load_lora_weights(model, "adapter.safetensors")  # doctest: +SKIP
    """
    from safetensors.numpy import load_file

    saved = load_file(str(path))
    variables = _factor_variables(model)
    missing, unused = sorted(set(variables) - set(saved)), sorted(set(saved) - set(variables))
    if missing or unused:
        raise ValueError(f"{path}: LoRA factors do not match the model: missing from the file "
                         f"{missing[:5]}, not in the model {unused[:5]}")
    for name, variable in variables.items():
        if tuple(saved[name].shape) != tuple(variable.shape):
            raise ValueError(f"{path}: LoRA factor {name!r} has shape {saved[name].shape} in "
                             f"the file but {tuple(variable.shape)} in the model")
    for name, variable in variables.items():
        variable.assign(saved[name])
    return model
