"""Token embedding that doubles as the tied MLM output projection."""

import keras
from keras import ops

from kerasnlp4su.layers._quantization import quantizing_cheaply


def ids_out_of_range_message(layer_name, input_dim, bad_id=None):
    """The message of every id-range check (in-graph, eager, and before `predict`).

    Example:
    >>> ids_out_of_range_message("Embedding-Token", 100, bad_id=120).split(":")[:2]
    ['Embedding-Token', ' id 120 is out of range']
    """
    found = "" if bad_id is None else f"id {bad_id} is out of range: "
    return (f"{layer_name}: {found}ids must lie in [0, {input_dim}); does the tokenizer's "
            "vocabulary (or segment ids) match the model's vocab_size?")


def check_id_bounds(layer_name, low, high, input_dim):
    """Raise `ValueError` naming the offending id when `[low, high]` leaves `[0, input_dim)`."""
    if low < 0 or high >= input_dim:
        bad = low if low < 0 else high
        raise ValueError(ids_out_of_range_message(layer_name, input_dim, bad))


def check_ids_in_range(layer_name, ids, input_dim):
    """Fail loudly on ids outside `[0, input_dim)` instead of reading a wrong row.

    Keras wraps negative ids around (-1 reads the last row) and accelerators
    read zeros past the end, both silently; a vocabulary that does not match
    the checkpoint is the usual cause. Concrete tensors are checked here; in
    a TensorFlow graph an assertion runs before the lookup. (XLA-compiled
    code, `jit_compile=True` or a JAX `jit`, cannot raise: ids are not
    checked there; JAX's lookup then gives NaN.) Returns `ids`.
    """
    message = ids_out_of_range_message(layer_name, input_dim)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            # The lookup must wait for the assertions, or it fails first.
            ids = tf.convert_to_tensor(ids)
            checks = [tf.debugging.assert_non_negative(ids, message=message),
                      tf.debugging.assert_less(ids, tf.cast(input_dim, ids.dtype),
                                               message=message)]
            with tf.control_dependencies(checks):
                return tf.identity(ids)
    elif keras.backend.backend() == "jax":
        import jax

        if isinstance(ids, jax.core.Tracer):
            return ids
    if keras.backend.backend() == "torch":
        import torch

        if not isinstance(ids, torch.Tensor) or ids.numel() == 0:
            return ids
        low, high = int(ids.min()), int(ids.max())
    else:
        values = ops.convert_to_numpy(ids)
        if values.size == 0:
            return ids
        low, high = int(values.min()), int(values.max())
    check_id_bounds(layer_name, low, high, input_dim)
    return ids


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Embedding(keras.layers.Embedding):
    """`keras.layers.Embedding` that can also project back onto the vocabulary.

    Called normally it looks up ids; called with `mode='dense'` it multiplies
    hidden states by the transposed table, which ties the MLM output weights
    to the input embeddings (BERT, ALBERT, RoFormer all do this).

    Example:
    >>> emb = Embedding(100, 8, name="Embedding-Token")
    >>> h = emb(keras.ops.array([[5, 6, 0]]))
    >>> emb(h, mode="dense").shape
    (1, 3, 100)
    """

    def call(self, inputs, mode="embedding"):
        if mode == "dense":
            kernel = ops.cast(self.embeddings, inputs.dtype)
            return ops.matmul(inputs, ops.transpose(kernel))
        if mode != "embedding":
            raise ValueError(f"{self.name}: mode must be 'embedding' or 'dense', got {mode!r}")
        return super().call(check_ids_in_range(self.name, inputs, self.input_dim))

    def quantize(self, mode=None, type_check=True, config=None):
        # Allowed on this subclass: the table and the lookup are Embedding's; the tied
        # projection below reads the quantized table itself.
        with quantizing_cheaply():
            super().quantize(mode, type_check=False, config=config)

    def quantized_call(self, inputs, mode="embedding"):
        if mode == "embedding":
            return super().quantized_call(check_ids_in_range(self.name, inputs, self.input_dim))
        if mode != "dense":
            raise ValueError(f"{self.name}: mode must be 'embedding' or 'dense', got {mode!r}")
        if self.quantization_mode not in ("int8", "int4") or \
                len(self.embeddings_scale.shape) != 1:
            raise NotImplementedError(
                f"{self.name}: the tied output projection (mode='dense') supports int8 and "
                f"per-row int4 tables, not {self.dtype_policy.name!r}")
        # Row v of the table is q[v] / scale[v], so h @ table.T = (h @ q.T) / scale.
        kernel = ops.cast(self.embeddings, inputs.dtype)
        return ops.matmul(inputs, ops.transpose(kernel)) / ops.cast(self.embeddings_scale,
                                                                    inputs.dtype)

    def compute_mask(self, inputs, mask=None, mode="embedding"):
        # Keras's __call__ passes no `mode` here: float inputs are hidden states
        # (the tied MLM projection), whose mask is the incoming padding mask.
        if mode == "dense" or "int" not in keras.backend.standardize_dtype(inputs.dtype):
            return mask
        return super().compute_mask(inputs, mask)

    def compute_output_shape(self, input_shape, mode="embedding"):
        if mode == "dense":
            return tuple(input_shape[:-1]) + (self.input_dim,)
        return super().compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, mode="embedding"):
        shape = self.compute_output_shape(inputs.shape, mode=mode)
        dtype = inputs.dtype if mode == "dense" else self.compute_dtype
        return keras.KerasTensor(shape, dtype=dtype)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class BiasAdd(keras.layers.Layer):
    """Adds a learned bias vector on the last axis (the MLM output bias).

    Example:
    >>> BiasAdd(name="MLM-Bias")(keras.ops.zeros((1, 3, 10))).shape
    (1, 3, 10)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class MaskedAdd(keras.layers.Add):
    """`keras.layers.Add` whose output keeps the padding mask of any masked input.

    Keras's `Add` drops the mask when one input has none (token embeddings
    carry the padding mask, segment embeddings do not); this one ANDs the
    masks that exist, so downstream layers (GlobalPointer, CRF, pooling)
    still see which positions are padding. `mask_inputs` (indices) limits
    the masks taken to those inputs: segment ids looked up in the token
    table (CDial-GPT) carry a mask that marks no padding.

    Example:
    >>> MaskedAdd()([keras.ops.ones((1, 2, 4)), keras.ops.ones((1, 2, 4))]).shape
    (1, 2, 4)
    """

    def __init__(self, mask_inputs=None, **kwargs):
        super().__init__(**kwargs)
        self.mask_inputs = None if mask_inputs is None else tuple(mask_inputs)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if self.mask_inputs is not None:
            mask = [mask[i] for i in self.mask_inputs]
        masks = [m for m in mask if m is not None]
        if not masks:
            return None
        output = masks[0]
        for m in masks[1:]:
            output = ops.logical_and(output, m)
        return output

    def get_config(self):
        config = super().get_config()
        if self.mask_inputs is not None:
            config["mask_inputs"] = list(self.mask_inputs)
        return config
