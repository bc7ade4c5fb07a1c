"""bert4keras's extensions that reshape each weight's update: LAMB, lazy updates, lookahead.

Each wraps the base optimizer's `update_step`: it remembers the weight,
lets the base update it, then rescales or masks the step `w_new - w_old`.
"""

import keras
from keras import ops

from kerasnlp4su.optimizers._common import densify, optimizer_extension, variable_path
from kerasnlp4su.snippets import string_matching


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(x)))


def _snapshot(variable):
    """The variable's current value, unaffected by later assignments.

    `ops.convert_to_tensor(variable)` is the variable itself on TensorFlow
    (and shares storage on PyTorch), so it would follow the update.
    """
    return ops.copy(variable)


@optimizer_extension("WithLayerAdaptation")
def extend_with_layer_adaptation(base):
    """A subclass of `base` with LAMB-style layer adaptation (https://arxiv.org/abs/1904.00962).

    Each weight's step `d = w_new - w_old` becomes `d * ||w_old|| / ||d / lr||`
    (unchanged when either norm is 0), so every weight moves by `lr` times
    its own norm whatever its gradient scale. `lr` is the learning rate of
    the update (floored at `epsilon()`); `exclude_from_layer_adaptation`
    lists regular expressions searched in the weight's path.
    `extend_with_layer_adaptation(Adam)` with weight decay is LAMB.

    Example:
    >>> LAMB = extend_with_layer_adaptation(extend_with_weight_decay(keras.optimizers.Adam))
    >>> opt = LAMB(learning_rate=1e-3, exclude_from_layer_adaptation=["Norm", "bias"])
    """

    class LayerAdaptation(base):
        def __init__(self, *args, exclude_from_layer_adaptation=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.exclude_from_layer_adaptation = list(exclude_from_layer_adaptation or [])

        def update_step(self, gradient, variable, learning_rate):
            model_variable = self._trainable_variables[self._get_variable_index(variable)]
            if string_matching(variable_path(model_variable), self.exclude_from_layer_adaptation):
                return super().update_step(gradient, variable, learning_rate)
            old = _snapshot(variable)
            super().update_step(gradient, variable, learning_rate)
            step = _snapshot(variable) - old
            lr = ops.maximum(ops.cast(learning_rate, variable.dtype), keras.config.epsilon())
            w_norm, step_norm = _norm(old), _norm(step / lr)
            usable = ops.logical_and(w_norm > 0, step_norm > 0)
            ratio = ops.where(usable, w_norm / ops.where(usable, step_norm, 1.0), 1.0)
            self.assign(variable, old + step * ratio)

        def get_config(self):
            config = super().get_config()
            config["exclude_from_layer_adaptation"] = list(self.exclude_from_layer_adaptation)
            return config

    return LayerAdaptation


@optimizer_extension("WithLazyOptimization")
def extend_with_lazy_optimization(base):
    """A subclass of `base` that leaves rows with an all-zero gradient untouched.

    For weights whose path matches one of `include_in_lazy_optimization`
    (regular expressions, e.g. `['Embedding']`), a row (last axis) whose
    gradient is all zero keeps its value, so embeddings of tokens absent
    from the batch do not drift with momentum or weight decay. The
    optimizer's own slots (Adam's moments) still update, as in bert4keras.

    Example:
    >>> LazyAdam = extend_with_lazy_optimization(keras.optimizers.Adam)
    >>> opt = LazyAdam(learning_rate=1e-3, include_in_lazy_optimization=["Embedding-Token"])
    """

    class LazyOptimization(base):
        def __init__(self, *args, include_in_lazy_optimization=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.include_in_lazy_optimization = list(include_in_lazy_optimization or [])

        def update_step(self, gradient, variable, learning_rate):
            model_variable = self._trainable_variables[self._get_variable_index(variable)]
            if not string_matching(variable_path(model_variable),
                                   self.include_in_lazy_optimization):
                return super().update_step(gradient, variable, learning_rate)
            gradient = densify(gradient)
            old = _snapshot(variable)
            super().update_step(gradient, variable, learning_rate)
            touched = ops.any(ops.not_equal(gradient, 0), axis=-1, keepdims=True)
            self.assign(variable, ops.where(touched, _snapshot(variable), old))

        def get_config(self):
            config = super().get_config()
            config["include_in_lazy_optimization"] = list(self.include_in_lazy_optimization)
            return config

    return LazyOptimization


@optimizer_extension("WithLookahead")
def extend_with_lookahead(base):
    """A subclass of `base` with Lookahead (https://arxiv.org/abs/1907.08610).

    Slow weights start at the initial weights; after every
    `steps_per_slow_update` (k) updates they move `slow_step_size` (alpha)
    of the way to the fast weights, `slow <- slow + alpha * (fast - slow)`,
    and the fast weights restart from them. bert4keras started the slow
    weights at zero and synchronised on the first step, which multiplied
    every weight by alpha there; this follows the paper instead.

    Example:
    >>> AdamLA = extend_with_lookahead(keras.optimizers.Adam)
    >>> opt = AdamLA(learning_rate=1e-3, steps_per_slow_update=5, slow_step_size=0.5)
    """

    class Lookahead(base):
        def __init__(self, *args, steps_per_slow_update=5, slow_step_size=0.5, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps_per_slow_update = int(steps_per_slow_update)
            self.slow_step_size = float(slow_step_size)

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._slow_weights = []
            for variable in var_list:
                slow = self.add_variable_from_reference(variable, "slow_weight")
                # A copy: on JAX an assigned array would share the weight's
                # buffer, which a jitted step may donate only once.
                slow.assign(ops.copy(variable))
                self._slow_weights.append(slow)

        def update_step(self, gradient, variable, learning_rate):
            super().update_step(gradient, variable, learning_rate)
            slow = self._slow_weights[self._get_variable_index(variable)]
            sync = ops.equal((self.iterations + 1) % self.steps_per_slow_update, 0)
            fast, slow_now = _snapshot(variable), _snapshot(slow)
            moved = slow_now + self.slow_step_size * (fast - slow_now)
            self.assign(slow, ops.where(sync, moved, slow_now))
            self.assign(variable, ops.where(sync, moved, fast))

        def get_config(self):
            config = super().get_config()
            config.update(steps_per_slow_update=self.steps_per_slow_update,
                          slow_step_size=self.slow_step_size)
            return config

    return Lookahead
