"""Position-wise feed-forward block."""

import keras

from kerasnlp4su.backend import get_activation
from kerasnlp4su.layers._quantization import with_sublayer_policies
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.remat import Rematerialisable, outside_remat_scope


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class FeedForward(Rematerialisable, keras.layers.Layer):
    """`Dense(units, activation) -> Dense(input_dim)`, the transformer FFN.

    Sub-layers are named `intermediate` and `output` so checkpoint mappings
    can address them by path (`Transformer-0-FeedForward/intermediate/kernel`).
    A list of activations makes a gated unit (GLU, bert4keras semantics):
    one `Dense(units, activation)` per entry (`intermediate`,
    `intermediate_1`, ...), multiplied elementwise; T5 1.1 is
    `["gelu_tanh", "linear"]`.

    Example:
    >>> FeedForward(16, activation="gelu_tanh")(keras.ops.ones((2, 3, 4))).shape
    (2, 3, 4)
    """

    def __init__(self, units, activation="gelu", use_bias=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.units = int(units)
        self.activation = list(activation) if isinstance(activation, (list, tuple)) else activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        for name in self._activations():
            get_activation(name)  # fail early on an unknown name

    def _activations(self):
        return self.activation if isinstance(self.activation, list) else [self.activation]

    def build(self, input_shape):
        common = dict(use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
                      dtype=self.dtype_policy)
        with outside_remat_scope():
            self.gates = []
            for index, activation in enumerate(self._activations()):
                name = "intermediate" if index == 0 else f"intermediate_{index}"
                layer = Dense(self.units, activation=get_activation(activation), name=name,
                              **common)
                layer.build(input_shape)
                self.gates.append(layer)
            self.output_dense = Dense(input_shape[-1], name="output", **common)
        self.intermediate = self.gates[0]
        self.output_dense.build(tuple(input_shape[:-1]) + (self.units,))
        self.built = True

    def call(self, inputs):
        x = self.intermediate(inputs)
        for gate in self.gates[1:]:
            x = x * gate(inputs)
        return self.output_dense(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **with_sublayer_policies(self, super().get_config()),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
