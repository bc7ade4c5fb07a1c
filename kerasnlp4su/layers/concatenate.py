"""`Concatenate1D`: join sequences along the length axis, masks included."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Concatenate1D(keras.layers.Layer):
    """Concatenate `(batch, length_i, dim)` sequences along axis 1.

    The output mask concatenates the inputs' masks, an input without a mask
    counting as all kept (Keras's `Concatenate` drops or rejects such mixes).

    Example:
    >>> a, b = keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 5, 4))
    >>> Concatenate1D()([a, b]).shape
    (2, 8, 4)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        return ops.concatenate([
            ops.ones(ops.shape(x)[:2], dtype="bool") if m is None else ops.cast(m, "bool")
            for x, m in zip(inputs, mask)], axis=1)

    def compute_output_shape(self, input_shape):
        lengths = [shape[1] for shape in input_shape]
        length = None if None in lengths else sum(lengths)
        return (input_shape[0][0], length, input_shape[0][-1])
