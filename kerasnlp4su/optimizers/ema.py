"""bert4keras's EMA interface (`apply_ema_weights` / `reset_old_weights`) on Keras's EMA."""

import numpy as np

from kerasnlp4su.optimizers._common import optimizer_extension


@optimizer_extension("WithEMA")
def extend_with_exponential_moving_average(base):
    """A subclass of `base` keeping an exponential moving average of the weights.

    The average is Keras's own (`use_ema=True`): after each update
    `avg <- ema_momentum * avg + (1 - ema_momentum) * w`, starting from the
    weights after the first update, so unlike bert4keras's zero-initialised
    average it needs no bias correction. `apply_ema_weights()` backs the
    current weights up and loads the average into the model;
    `reset_old_weights()` puts the backed-up weights back exactly.

    Unlike a plain Keras optimizer with `use_ema=True`, `fit()` does not
    overwrite the model with the average when it ends (bert4keras never
    did): the raw weights stay in place until you call `apply_ema_weights()`.
    Set `swap_on_fit_end=True` for Keras's behaviour.

    Combined with gradient accumulation (`grad_accum_steps=k`), the average
    moves on every micro-batch, as in Keras and bert4keras, and the weights
    only on every k-th: per weight update its effective momentum is
    `ema_momentum ** k`.

    Example:
    >>> AdamEMA = extend_with_exponential_moving_average(keras.optimizers.Adam)
    >>> opt = AdamEMA(learning_rate=1e-4, ema_momentum=0.999)
    >>> # after training:
    >>> opt.apply_ema_weights()   # doctest: +SKIP
    >>> model.evaluate(...)       # doctest: +SKIP
    >>> opt.reset_old_weights()   # doctest: +SKIP
    """

    class ExponentialMovingAverage(base):
        def __init__(self, *args, ema_momentum=0.999, swap_on_fit_end=False, **kwargs):
            kwargs["use_ema"] = True
            super().__init__(*args, ema_momentum=ema_momentum, **kwargs)
            self.swap_on_fit_end = bool(swap_on_fit_end)
            self._old_weights = None

        @property
        def model_weights(self):
            """The model variables this optimizer updates (and averages)."""
            return list(self._trainable_variables)

        def finalize_variable_values(self, var_list):
            # Called by fit() at the end of training.
            if self.swap_on_fit_end:
                super().finalize_variable_values(var_list)

        def apply_ema_weights(self, bias_correction=True):
            """Back up the model weights, then load their moving average.

            `bias_correction` is accepted for bert4keras compatibility and
            has nothing to correct: Keras's average starts from real weights.
            """
            del bias_correction
            if not self.built:
                raise ValueError("the optimizer has not been built; train before applying EMA")
            variables = self.model_weights
            self._old_weights = [np.array(v.numpy(), copy=True) for v in variables]
            super().finalize_variable_values(variables)

        def reset_old_weights(self):
            """Restore the weights backed up by the last `apply_ema_weights()`."""
            if self._old_weights is None:
                raise ValueError("apply_ema_weights() has not been called")
            for variable, value in zip(self.model_weights, self._old_weights):
                variable.assign(value)

        def get_config(self):
            config = super().get_config()
            config.pop("use_ema", None)
            config["swap_on_fit_end"] = self.swap_on_fit_end
            return config

    return ExponentialMovingAverage
