"""Tiger, Su Jianlin's "Tight-fisted Optimizer".

Post: "Tiger：一个“抠”到极致的优化器", https://kexue.fm/archives/9512; reference code bojone/tiger.
"""

import re

import keras
from keras import ops

from kerasnlp4su.backend import piecewise_linear
from kerasnlp4su.optimizers._common import densify, leaf_name

# Normalisation scales/offsets and biases: half the learning rate, absolute
# (not RMS-relative) steps, no weight decay -- as in the reference Tiger.
_BIAS_LIKE = re.compile("bias|beta|gamma")
# Scales are shrunk towards 1 (their init) on a non-finite gradient, not towards 0.
_SCALE_LIKE = re.compile("gamma|scale")


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Tiger(keras.optimizers.Optimizer):
    """Tiger: sign of one momentum, learning rate relative to each weight's RMS.

    Per micro-step `t` (the optimizer's iteration counter) and weight `w`:

        m <- b1 * m + (1 - beta) / k * g      b1 = beta on the first micro-step
                                              of a cycle of k, else 1
        w <- w - lr_w * (sign(m) + weight_decay * w)   only on the last micro-step

    `lr_w` is `learning_rate * piecewise_linear(t, lr_schedule)` times
    `max(rms(w), min_rms)`; for embedding tables (leaf name `embeddings`)
    the RMS is taken per row. Biases and normalisation parameters (leaf name
    containing `bias`, `beta` or `gamma`, or any weight with ndim <= 1) use
    `0.5 * learning_rate` directly and no weight decay.

    Gradient accumulation (`grad_accum_steps=k`) needs no buffer: the
    momentum *is* the accumulator, so Tiger keeps exactly one variable per
    weight (plus the iteration counter and learning rate) whatever `k`.
    Keras's own `gradient_accumulation_steps` would add a buffer per weight
    and is therefore refused. `lr_schedule` steps count micro-steps, as in
    the reference implementation.

    Embedding tables (the post's fix for them): a sign update moves every
    coordinate by the same amount, so the step is scaled by the weight's
    RMS; for an embedding table by each row's own RMS, so a small-norm
    token vector takes small steps and a large one large steps, instead of
    one step size set by the whole table. A row absent from the batch has a
    zero gradient, but its momentum only decays, keeping its sign: the row
    keeps moving by its full step (as in bojone/tiger, and in Lion) until
    the sign flips; a row that never had a gradient stays put.
    `tests/test_tiger_embeddings.py` checks both.

    If a weight's gradient has a non-finite entry, its momentum is left
    untouched and the weight is shrunk, `w <- (w - c) * shrink_ratio + c`
    (`c = 1` for `gamma`/`scale`, else 0), instead of being corrupted.

    Differences from the reference (bojone/tiger): `min_rms` floors the RMS
    so zero-initialised matrices can leave zero (set `min_rms=0.0` for the
    original), weights with ndim <= 1 count as bias-like whatever their
    name, and infinities are treated like NaN.

    Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> opt = Tiger(learning_rate=1.76e-3, grad_accum_steps=4,
    ...             lr_schedule={4000: 1, 40000: 0.1})
    >>> model.compile(optimizer=opt, loss="mse", jit_compile=True)
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta=0.965,
        weight_decay=0.01,
        grad_accum_steps=1,
        lr_schedule=None,
        shrink_ratio=0.99,
        min_rms=1e-3,
        name=None,
        **kwargs,
    ):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError(
                "Tiger accumulates gradients in its momentum: pass grad_accum_steps=k, "
                "not gradient_accumulation_steps (which allocates a buffer per weight)."
            )
        kwargs.pop("gradient_accumulation_steps", None)
        # Keras's own decoupled decay runs before the update and ignores the
        # RMS scaling; Tiger's decay lives inside its update instead.
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if int(grad_accum_steps) < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        if not 0.0 <= shrink_ratio <= 1.0:
            raise ValueError(f"shrink_ratio must be in [0, 1], got {shrink_ratio}")
        self.beta = float(beta)
        self.tiger_weight_decay = float(weight_decay or 0.0)
        self.grad_accum_steps = int(grad_accum_steps)
        self.lr_schedule = (
            None if lr_schedule is None else {int(k): float(v) for k, v in lr_schedule.items()}
        )
        self.shrink_ratio = float(shrink_ratio)
        self.min_rms = float(min_rms)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._kinds = [self._kind(v) for v in var_list]

    @staticmethod
    def _kind(variable):
        name = leaf_name(variable)
        if _BIAS_LIKE.search(name) or len(variable.shape) <= 1:
            return "scale" if _SCALE_LIKE.search(name) else "bias"
        if "embeddings" in name and len(variable.shape) == 2:
            return "embedding"
        return "matrix"

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        kind = self._kinds[index]
        m = self._momentums[index]
        dtype = variable.dtype
        gradient = ops.cast(densify(gradient), dtype)

        t = self._iterations
        k = self.grad_accum_steps
        first = ops.equal(t % k, 0)
        last = ops.equal((t + 1) % k, 0)

        lr = ops.cast(learning_rate, dtype)
        if self.lr_schedule is not None:
            lr = lr * ops.cast(piecewise_linear(t, self.lr_schedule), dtype)
        lr = ops.where(last, lr, ops.zeros_like(lr))

        finite = ops.all(ops.isfinite(gradient))
        gradient = ops.where(finite, gradient, ops.zeros_like(gradient))
        decay_m = ops.where(ops.logical_and(first, finite), self.beta, 1.0)
        new_m = ops.cast(decay_m, dtype) * m + ((1.0 - self.beta) / k) * gradient

        w = ops.convert_to_tensor(variable)
        decay = self.tiger_weight_decay
        if kind in ("bias", "scale"):
            lr, decay = 0.5 * lr, 0.0
        elif kind == "embedding":
            lr = lr * ops.maximum(ops.sqrt(ops.mean(w * w, axis=-1, keepdims=True)), self.min_rms)
        else:
            lr = lr * ops.maximum(ops.sqrt(ops.mean(w * w)), self.min_rms)
        step = ops.sign(new_m) + decay * w if decay else ops.sign(new_m)
        center = 1.0 if kind == "scale" else 0.0
        shrunk = (w - center) * self.shrink_ratio + center

        self.assign(m, new_m)
        self.assign(variable, ops.where(finite, w - lr * step, shrunk))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta": self.beta,
                "weight_decay": self.tiger_weight_decay,
                "grad_accum_steps": self.grad_accum_steps,
                "lr_schedule": self.lr_schedule,
                "shrink_ratio": self.shrink_ratio,
                "min_rms": self.min_rms,
            }
        )
        config.pop("gradient_accumulation_steps", None)
        return config
