"""A `keras.layers.Dense` that multiplies a 2-D view of its input."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` (same weights, options and config) for `(..., features)` inputs.

    Keras multiplies a rank-3 input through a generic tensor contraction,
    which on TensorFlow puts reshapes between the matmul, the bias add and
    the activation. Folding the leading axes into one first hands the
    backend a plain 2-D matmul followed directly by its bias add and
    activation; TensorFlow's oneDNN graph rewrite then fuses the three into
    one kernel (for BERT-base at batch 8 x 128 the forward pass got about
    8% faster on a 2-core CPU). The arithmetic is the same; on JAX and
    PyTorch the extra reshapes cost nothing. Quantized and LoRA modes are
    Keras's own.

    Example:
    >>> Dense(3, activation="gelu")(keras.ops.ones((2, 5, 4))).shape
    (2, 5, 3)
    """

    def call(self, inputs, training=None):
        if len(inputs.shape) <= 2:
            return super().call(inputs, training=training)
        leading = ops.shape(inputs)[:-1]
        flat = ops.reshape(inputs, (-1, inputs.shape[-1]))
        outputs = super().call(flat, training=training)
        return ops.reshape(outputs, (*leading, self.units))
