"""Gradient accumulation for any Keras optimizer (bert4keras's factory name)."""

from kerasnlp4su.optimizers._common import optimizer_extension


@optimizer_extension("WithGradientAccumulation")
def extend_with_gradient_accumulation(base):
    """A subclass of `base` that updates once every `grad_accum_steps` batches.

    Built on Keras's own `gradient_accumulation_steps`: gradients are summed
    in one buffer per weight and their mean is applied on the last
    micro-batch, so `k` micro-batches of size `b` give the update of one
    batch of size `k * b` (for losses that average over the batch).
    `optimizer.iterations` counts updates; learning-rate schedules see
    micro-steps, as in bert4keras. For Tiger use its own `grad_accum_steps`,
    which needs no buffer.

    Example:
    >>> AdamGA = extend_with_gradient_accumulation(keras.optimizers.Adam)
    >>> opt = AdamGA(learning_rate=1e-4, grad_accum_steps=4)
    """

    class Accumulating(base):
        def __init__(self, *args, grad_accum_steps=2, **kwargs):
            steps = kwargs.pop("gradient_accumulation_steps", None) or grad_accum_steps
            steps = int(steps)
            if steps < 1:
                raise ValueError(f"grad_accum_steps must be >= 1, got {steps}")
            # Keras refuses 1; one step means no accumulation at all.
            super().__init__(*args, gradient_accumulation_steps=steps if steps > 1 else None,
                             **kwargs)
            self.grad_accum_steps = steps

        def get_config(self):
            config = super().get_config()
            config.pop("gradient_accumulation_steps", None)
            config["grad_accum_steps"] = self.grad_accum_steps
            return config

    return Accumulating
