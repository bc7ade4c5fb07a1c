"""bert4keras's `Adam`: epsilon outside the bias-corrected root, and a switch for bias correction."""

import keras
from keras import ops

from kerasnlp4su.optimizers._common import densify


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Adam(keras.optimizers.Optimizer):
    """Adam as bert4keras (and the BERT/TF1 recipes) computed it.

    Per step `t` (from 1):

        m <- b1 * m + (1 - b1) * g        v <- b2 * v + (1 - b2) * g**2
        w <- w - lr * m_hat / (sqrt(v_hat) + epsilon)

    with `m_hat = m / (1 - b1**t)`, `v_hat = v / (1 - b2**t)`, or
    `m_hat = m`, `v_hat = v` when `bias_correction=False`. Differences
    from `keras.optimizers.Adam`: `epsilon` defaults to 1e-6 and is added to
    the bias-corrected root (Keras adds its 1e-7 before the correction),
    bias correction can be switched off, and embedding gradients are summed
    per row before the update (see `extend_with_dense_gradients`).
    Every `extend_with_*` factory accepts it.

    Example:
    >>> opt = Adam(learning_rate=2e-5)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer=opt, loss="mse")
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 bias_correction=True, name="Adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon if epsilon is not None else keras.config.epsilon())
        self.bias_correction = bool(bias_correction)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        dtype = variable.dtype
        gradient = ops.cast(densify(gradient), dtype)
        lr = ops.cast(learning_rate, dtype)
        new_m = self.beta_1 * m + (1.0 - self.beta_1) * gradient
        new_v = self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient)
        self.assign(m, new_m)
        self.assign(v, new_v)
        if self.bias_correction:
            step = ops.cast(self.iterations + 1, dtype)
            new_m = new_m / (1.0 - ops.power(ops.cast(self.beta_1, dtype), step))
            new_v = new_v / (1.0 - ops.power(ops.cast(self.beta_2, dtype), step))
        self.assign_sub(variable, lr * new_m / (ops.sqrt(new_v) + self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      bias_correction=self.bias_correction)
        return config
