"""Small tensor-selection layers that replace bert4keras's `Lambda` layers."""

import keras
from keras import ops


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
