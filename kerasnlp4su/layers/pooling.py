"""Selection and pooling over the sequence axis (mask-aware), replacing bert4keras's `Lambda`s."""

import keras
from keras import ops

from kerasnlp4su.backend import large_value


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class TokenSelect(keras.layers.Layer):
    """Select one position of a sequence: `x[:, index]` (the `[CLS]` pooler input).

    Example:
    >>> tuple(TokenSelect(0)(keras.ops.ones((2, 5, 8))).shape)
    (2, 8)
    """

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, inputs):
        return inputs[:, self.index]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class LastToken(TokenSelect):
    """`TokenSelect(-1)` under the name earlier releases saved it as (`x[:, -1]`).

    Kept so `.keras` files holding a `LastToken` still load; new code
    writes `TokenSelect(-1)`.

    Example:
    >>> tuple(LastToken()(keras.ops.ones((2, 5, 8))).shape)
    (2, 8)
    """

    def __init__(self, **kwargs):
        super().__init__(index=-1, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["index"]  # always -1; saved configs never held it
        return config


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class MaskedGlobalAveragePooling(keras.layers.Layer):
    """Mean over positions whose token id is not 0 (sentence embeddings).

    Takes `[hidden_states, token_ids]`.

    Example:
    >>> h = keras.ops.ones((1, 3, 4)); ids = keras.ops.array([[5, 6, 0]])
    >>> tuple(MaskedGlobalAveragePooling()([h, ids]).shape)
    (1, 4)
    """

    def call(self, inputs):
        x, token_ids = inputs
        keep = ops.cast(ops.not_equal(token_ids, 0), x.dtype)[..., None]
        return ops.sum(x * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], shape[-1])


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class GlobalAveragePooling1D(keras.layers.GlobalAveragePooling1D):
    """Mean over the steps the Keras mask keeps (all steps without a mask).

    Keras 3's own layer already averages over kept steps; this registered
    subclass keeps bert4keras's name importable from `kerasnlp4su.layers`.

    Example:
    >>> x = keras.ops.convert_to_tensor([[[1.0], [3.0], [9.0]]])
    >>> GlobalAveragePooling1D()(x, mask=keras.ops.convert_to_tensor([[True, True, False]]))
    ... # doctest: +SKIP
    [[2.0]]
    """


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class GlobalMaxPooling1D(keras.layers.GlobalMaxPooling1D):
    """Max over the steps the Keras mask keeps (Keras 3's layer ignores masks).

    A sequence whose steps are all masked gives `-large_value(dtype)`.

    Example:
    >>> x = keras.ops.convert_to_tensor([[[1.0], [3.0], [9.0]]])
    >>> keep = keras.ops.convert_to_tensor([[True, True, False]])
    >>> float(GlobalMaxPooling1D()(x, mask=keep)[0, 0])
    3.0
    """

    def __init__(self, data_format="channels_last", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        axis = 1 if self.data_format == "channels_last" else 2
        if mask is not None:
            keep = ops.cast(mask, "bool")
            keep = keep[:, :, None] if axis == 1 else keep[:, None, :]
            inputs = ops.where(keep, inputs, ops.cast(-large_value(inputs.dtype), inputs.dtype))
        return ops.max(inputs, axis=axis, keepdims=self.keepdims)

    def compute_mask(self, inputs, mask=None):
        return None
