"""Layer normalization with optional conditioning (bert4keras semantics)."""

import keras
from keras import ops

from kerasnlp4su.layers._precision import at_least_float32
from kerasnlp4su.layers._quantization import with_sublayer_policies
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.remat import Rematerialisable, outside_remat_scope


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class LayerNormalization(Rematerialisable, keras.layers.Layer):
    """LayerNorm / RMSNorm whose gain and bias can be driven by a condition vector.

    With `conditional=True` the layer takes `[x, cond]`: `cond` of shape
    `(batch, c)` or `(batch, length, c)` goes through an optional hidden Dense
    and then two zero-initialised, bias-free Dense layers whose outputs are
    added to `gamma` and `beta`. Zero initialisation means a freshly built
    conditional model reproduces the unconditioned one exactly (the trick of
    Su's conditional LayerNorm post).

    `zero_mean=False` gives RMS normalisation; `center=False, scale=False`
    drops the parameters (RoFormer-v2).

    Example:
    >>> ln = LayerNormalization(epsilon=1e-12)
    >>> ln(keras.ops.ones((2, 3, 4))).shape
    (2, 3, 4)
    >>> cln = LayerNormalization(conditional=True)
    >>> cln([keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 6))]).shape
    (2, 3, 4)
    """

    def __init__(self, epsilon=1e-12, center=True, scale=True, zero_mean=True,
                 unit_variance=True, conditional=False, hidden_units=None,
                 hidden_activation="linear", hidden_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.zero_mean = bool(zero_mean)
        self.unit_variance = bool(unit_variance)
        self.conditional = bool(conditional)
        self.hidden_units = hidden_units
        self.hidden_activation = keras.activations.get(hidden_activation)
        self.hidden_initializer = keras.initializers.get(hidden_initializer)

    def build(self, input_shape):
        x_shape = input_shape[0] if self.conditional else input_shape
        dim = x_shape[-1]
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        with outside_remat_scope():  # the Dense layers run inside this layer's call
            if self.conditional:
                cond_shape = tuple(input_shape[1])
                if self.hidden_units:
                    self.hidden_dense = Dense(
                        self.hidden_units, activation=self.hidden_activation, use_bias=False,
                        kernel_initializer=self.hidden_initializer, name="hidden_dense",
                        dtype=self.dtype_policy)
                    self.hidden_dense.build(cond_shape)
                    cond_shape = cond_shape[:-1] + (self.hidden_units,)
                if self.center:
                    self.beta_dense = Dense(
                        dim, use_bias=False, kernel_initializer="zeros", name="beta_dense",
                        dtype=self.dtype_policy)
                    self.beta_dense.build(cond_shape)
                if self.scale:
                    self.gamma_dense = Dense(
                        dim, use_bias=False, kernel_initializer="zeros", name="gamma_dense",
                        dtype=self.dtype_policy)
                    self.gamma_dense.build(cond_shape)
        self.built = True

    def call(self, inputs):
        if self.conditional:
            x, cond = inputs
            if self.hidden_units:
                cond = self.hidden_dense(cond)
            # (batch, c) conditions broadcast over every position.
            while len(cond.shape) < len(x.shape):
                cond = ops.expand_dims(cond, 1)
        else:
            x = inputs
            if (self.zero_mean and self.unit_variance and self.scale and self.center
                    and keras.backend.backend() == "torch"):
                # PyTorch has a fused kernel (F.layer_norm) behind this op,
                # one pass instead of seven; it also computes in float32.
                return ops.layer_normalization(x, self.gamma, self.beta, epsilon=self.epsilon)
        # Normalise in float32 even under mixed precision: variance of bf16
        # activations loses too many bits (float64 stays float64).
        dtype = x.dtype
        x = ops.cast(x, at_least_float32(dtype))
        if self.zero_mean:
            x = x - ops.mean(x, axis=-1, keepdims=True)
        if self.unit_variance:
            variance = ops.mean(ops.square(x), axis=-1, keepdims=True)
            x = x * ops.rsqrt(variance + self.epsilon)
        x = ops.cast(x, dtype)
        if self.scale:
            gamma = ops.cast(self.gamma, dtype)
            if self.conditional:
                gamma = gamma + self.gamma_dense(cond)
            x = x * gamma
        if self.center:
            beta = ops.cast(self.beta, dtype)
            if self.conditional:
                beta = beta + self.beta_dense(cond)
            x = x + beta
        return x

    def compute_mask(self, inputs, mask=None):
        if self.conditional and isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.conditional else input_shape

    def get_config(self):
        return {
            **with_sublayer_policies(self, super().get_config()),
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "zero_mean": self.zero_mean,
            "unit_variance": self.unit_variance,
            "conditional": self.conditional,
            "hidden_units": self.hidden_units,
            "hidden_activation": keras.activations.serialize(self.hidden_activation),
            "hidden_initializer": keras.initializers.serialize(self.hidden_initializer),
        }
