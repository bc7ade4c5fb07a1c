"""AdaFactor as bert4keras implemented it (https://arxiv.org/abs/1804.04235)."""

import keras
import numpy as np
from keras import ops

from kerasnlp4su.optimizers._common import densify, variable_path
from kerasnlp4su.snippets import string_matching


def _rms(x):
    return ops.sqrt(ops.mean(ops.square(x)))


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class AdaFactor(keras.optimizers.Optimizer):
    """AdaFactor with bert4keras's (mesh-tensorflow's) conventions.

    Per step `t` (from 1) and weight `w` with gradient `g`:

        g2 = g**2 + epsilon1
        v  <- b2 * v + (1 - b2) * g2          b2 = 1 - t**-0.8 when beta2 is None
              (factored for weights whose two largest axes are both
              >= min_dim_size_to_factor: row and column means of g2 are
              averaged instead, and v = vr * vc / mean(vr))
        u  = g / sqrt(v + epsilon1), divided by max(1, rms(u) / clipping_threshold)
        u  <- b1 * m + (1 - b1) * u            only when beta1 > 0 (m keeps it)
        u  *= max(rms(w), epsilon2)            when multiply_by_parameter_scale
        w  <- w - lr * u

    `learning_rate=None` uses the relative step `min(1/sqrt(t), 0.01)`
    (times 0.05 without parameter scaling). `exclude_from_parameter_scale`
    lists regular expressions searched in the weight's path. Keras's own
    `keras.optimizers.Adafactor` differs: it always factors the last two
    axes, has no momentum and clips differently.

    Example:
    >>> opt = AdaFactor(learning_rate=1e-3)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer=opt, loss="mse")
    """

    def __init__(self, learning_rate=1e-3, beta1=0.0, beta2=None, epsilon1=1e-30,
                 epsilon2=1e-3, multiply_by_parameter_scale=True, clipping_threshold=1.0,
                 min_dim_size_to_factor=128, exclude_from_parameter_scale=None,
                 name="AdaFactor", **kwargs):
        super().__init__(learning_rate=1.0 if learning_rate is None else learning_rate,
                         name=name, **kwargs)
        self.relative_step = learning_rate is None
        self.beta1 = float(beta1)
        self.beta2 = None if beta2 is None else float(beta2)
        self.epsilon1 = float(epsilon1)
        self.epsilon2 = float(epsilon2)
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)
        self.clipping_threshold = clipping_threshold
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)
        self.exclude_from_parameter_scale = list(exclude_from_parameter_scale or [])

    def factored_shape(self, shape):
        """`(row_shape, row_axis, col_shape, col_axis)` of the factored second moment, else None.

        The largest axis is averaged out for `vr` and the second largest for `vc`.
        """
        if len(shape) < 2:
            return None
        shape = np.array(shape)
        order = shape.argpartition(-2)
        largest, second = int(order[-1]), int(order[-2])
        if shape[second] < self.min_dim_size_to_factor:
            return None
        row_shape, col_shape = shape.copy(), shape.copy()
        row_shape[largest] = 1
        col_shape[second] = 1
        return tuple(row_shape), largest, tuple(col_shape), second

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._slots, self._factored = [], []
        for variable in var_list:
            slots = {}
            # Decided once here: update steps may be traced (torch.compile,
            # XLA), where NumPy on shapes is not allowed.
            factored = self.factored_shape(tuple(variable.shape))
            self._factored.append(factored)
            name = variable_path(variable).replace("/", "_")
            if factored is None:
                slots["v"] = self.add_variable(variable.shape, dtype=variable.dtype, name=f"{name}_v")
            else:
                slots["vr"] = self.add_variable(factored[0], dtype=variable.dtype, name=f"{name}_vr")
                slots["vc"] = self.add_variable(factored[2], dtype=variable.dtype, name=f"{name}_vc")
            if self.beta1 > 0.0:
                slots["m"] = self.add_variable(variable.shape, dtype=variable.dtype, name=f"{name}_m")
            self._slots.append(slots)

    def _get_current_learning_rate(self):
        if not self.relative_step:
            return super()._get_current_learning_rate()
        step = ops.cast(self.iterations + 1, "float32")
        lr = ops.minimum(1.0 / ops.sqrt(step), 0.01)
        return lr if self.multiply_by_parameter_scale else lr * 0.05

    def _scales_by_parameter(self, variable):
        return self.multiply_by_parameter_scale and not string_matching(
            variable_path(variable), self.exclude_from_parameter_scale)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        slots = self._slots[index]
        dtype = variable.dtype
        gradient = ops.cast(densify(gradient), dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta2 = 1.0 - ops.power(step, -0.8) if self.beta2 is None else self.beta2
        g2 = ops.square(gradient) + self.epsilon1
        factored = self._factored[index]
        if factored is None:
            v = beta2 * slots["v"] + (1.0 - beta2) * g2
            self.assign(slots["v"], v)
        else:
            _, row_axis, _, col_axis = factored
            vr = beta2 * slots["vr"] + (1.0 - beta2) * ops.mean(g2, axis=row_axis, keepdims=True)
            vc = beta2 * slots["vc"] + (1.0 - beta2) * ops.mean(g2, axis=col_axis, keepdims=True)
            self.assign(slots["vr"], vr)
            self.assign(slots["vc"], vc)
            v = vr * vc / ops.mean(vr, axis=col_axis, keepdims=True)
        update = gradient / ops.sqrt(v + self.epsilon1)
        if self.clipping_threshold is not None:
            update = update / ops.maximum(1.0, _rms(update) / self.clipping_threshold)
        if self.beta1 > 0.0:
            update = self.beta1 * slots["m"] + (1.0 - self.beta1) * update
            self.assign(slots["m"], update)
        if self._scales_by_parameter(self._trainable_variables[index]):
            update = update * ops.maximum(_rms(variable), self.epsilon2)
        self.assign_sub(variable, ops.cast(learning_rate, dtype) * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            learning_rate=None if self.relative_step else config["learning_rate"],
            beta1=self.beta1, beta2=self.beta2, epsilon1=self.epsilon1, epsilon2=self.epsilon2,
            multiply_by_parameter_scale=self.multiply_by_parameter_scale,
            clipping_threshold=self.clipping_threshold,
            min_dim_size_to_factor=self.min_dim_size_to_factor,
            exclude_from_parameter_scale=list(self.exclude_from_parameter_scale),
        )
        return config


# bert4keras had a base class plus a Keras and a tf.keras implementation;
# Keras 3 has one optimizer API, so all four names are this class.
AdaFactorBase = AdaFactorV1 = AdaFactorV2 = AdaFactor
