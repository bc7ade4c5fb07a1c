"""The layer harness itself: it passes a correct layer and catches a wrong gradient."""

import keras
import numpy as np
import pytest
from keras import ops

from layer_harness import check_layer

X = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")


@keras.saving.register_keras_serializable(package="kerasnlp4su_tests")
class Square(keras.layers.Layer):
    """x * x, optionally with the gradient of one factor stopped (a wrong gradient)."""

    def __init__(self, broken=False, **kwargs):
        super().__init__(**kwargs)
        self.broken = broken

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        other = ops.stop_gradient(x) if self.broken else x
        return x * other * self.scale

    def get_config(self):
        return {**super().get_config(), "broken": self.broken}


def test_layer_harness_passes_a_correct_layer():
    check_layer(Square, {}, X, (2, 3, 4))


def test_harness_catches_a_wrong_gradient():
    with pytest.raises(AssertionError, match="derivative along a random direction of input 0"):
        check_layer(Square, {"broken": True}, X, (2, 3, 4), fit=False, mixed_output_dtype=None)


def test_harness_catches_a_wrong_shape():
    with pytest.raises(AssertionError, match="eager output shapes"):
        check_layer(Square, {}, X, (2, 3, 5))
