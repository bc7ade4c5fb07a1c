"""bert4keras's composable optimizer extensions as real subclasses.

Each `extend_with_*(Base, name=None)` returns a subclass of `Base` that adds
keyword arguments, serialises them in `get_config`, and composes with the
others, e.g. `extend_with_weight_decay(extend_with_piecewise_linear_lr(Adam))`.
bert4keras patched `K.update` globally while building the update; here the
hooks are `update_step` (per weight, receives the learning rate) and the
learning-rate getter, so nothing outside the class is touched.

When extensions are stacked, the outer one sees the learning rate before
the inner ones rescale it: put `extend_with_parameter_wise_lr` outermost if
weight decay should follow the per-parameter multipliers.
"""

import re

import keras
from keras import ops

from kerasnlp4su.backend import piecewise_linear
from kerasnlp4su.optimizers._common import matching_patterns, optimizer_extension


@optimizer_extension("WithWeightDecay")
def extend_with_weight_decay(base):
    """A subclass of `base` with decoupled weight decay (AdamW-style).

    After the base update, `w <- w - lr * weight_decay_rate * w_old` for
    every weight whose path contains none of `exclude_from_weight_decay`
    (plain substrings matched against `variable.path`, e.g.
    `'Transformer-0-FeedForward-Norm/gamma'`). `lr` is the learning rate
    the update used, schedules included. This is separate from Keras's
    own `weight_decay` argument, which matches only the leaf variable name.

    Example:
    >>> AdamW = extend_with_weight_decay(keras.optimizers.Adam, "AdamW")
    >>> opt = AdamW(learning_rate=1e-4, weight_decay_rate=0.01,
    ...             exclude_from_weight_decay=["Norm", "bias"])
    """

    class WeightDecay(base):
        def __init__(self, *args, weight_decay_rate=0.01, exclude_from_weight_decay=None,
                     **kwargs):
            super().__init__(*args, **kwargs)
            self.weight_decay_rate = float(weight_decay_rate)
            # Not `self.exclude_from_weight_decay`: that is a Keras method.
            self.weight_decay_exclusions = list(exclude_from_weight_decay or [])

        def _decays(self, variable):
            index = self._get_variable_index(variable)
            model_variable = self._trainable_variables[index]
            return self.weight_decay_rate > 0 and not matching_patterns(
                model_variable, self.weight_decay_exclusions
            )

        def update_step(self, gradient, variable, learning_rate):
            if not self._decays(variable):
                return super().update_step(gradient, variable, learning_rate)
            # Decay uses the weight before the update, as bert4keras did.
            lr = ops.cast(learning_rate, variable.dtype)
            decay = lr * self.weight_decay_rate * ops.convert_to_tensor(variable)
            super().update_step(gradient, variable, learning_rate)
            self.assign_sub(variable, decay)

        def get_config(self):
            config = super().get_config()
            config["weight_decay_rate"] = self.weight_decay_rate
            config["exclude_from_weight_decay"] = list(self.weight_decay_exclusions)
            return config

    return WeightDecay


@optimizer_extension("WithPiecewiseLinearLR")
def extend_with_piecewise_linear_lr(base):
    """A subclass of `base` whose learning rate is multiplied by a piecewise-linear schedule.

    `lr_schedule={1000: 1, 2000: 0.1}` ramps the multiplier from 0 to 1 over
    the first 1000 steps, down to 0.1 by step 2000, then holds it (steps are
    the optimizer's micro-step counter, as in bert4keras). Reading
    `optimizer.learning_rate` gives the effective rate; assigning it sets
    the base rate. For a plain Keras optimizer,
    `learning_rate=PiecewiseLinearSchedule(lr, schedule)` does the same.

    Example:
    >>> AdamLR = extend_with_piecewise_linear_lr(keras.optimizers.Adam)
    >>> opt = AdamLR(learning_rate=1e-3, lr_schedule={1000: 1, 2000: 0.1})
    """

    class PiecewiseLinearLR(base):
        def __init__(self, *args, lr_schedule=None, **kwargs):
            super().__init__(*args, **kwargs)
            schedule = lr_schedule or {0: 1.0}
            self.lr_schedule = {int(k): float(v) for k, v in schedule.items()}

        def _get_current_learning_rate(self):
            # The one getter behind `learning_rate`, update steps and decay,
            # so every consumer sees the scheduled rate.
            lr = super()._get_current_learning_rate()
            return lr * piecewise_linear(self._iterations, self.lr_schedule)

        def get_config(self):
            config = super().get_config()  # records the base rate, not the scheduled one
            config["lr_schedule"] = dict(self.lr_schedule)
            return config

    return PiecewiseLinearLR


@optimizer_extension("WithParameterWiseLR")
def extend_with_parameter_wise_lr(base):
    """A subclass of `base` with per-parameter learning-rate multipliers.

    `paramwise_lr_schedule={pattern: multiplier}`: every pattern found (as a
    substring) in a weight's path multiplies its learning rate, so
    `{'Transformer-': 0.5, 'FeedForward': 2}` gives feed-forward weights
    of the blocks 1x. `layerwise_lr_decay(model, decay)` builds such a dict.

    Example:
    >>> AdamPW = extend_with_parameter_wise_lr(keras.optimizers.Adam)
    >>> opt = AdamPW(learning_rate=1e-4,
    ...              paramwise_lr_schedule={"Embedding-": 0.1, "Pooler": 2.0})
    """

    class ParameterWiseLR(base):
        def __init__(self, *args, paramwise_lr_schedule=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.paramwise_lr_schedule = {
                str(k): float(v) for k, v in (paramwise_lr_schedule or {}).items()
            }

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._lr_multipliers = []
            for variable in var_list:
                multiplier = 1.0
                for pattern in matching_patterns(variable, self.paramwise_lr_schedule):
                    multiplier *= self.paramwise_lr_schedule[pattern]
                self._lr_multipliers.append(multiplier)

        def update_step(self, gradient, variable, learning_rate):
            multiplier = self._lr_multipliers[self._get_variable_index(variable)]
            if multiplier != 1.0:
                learning_rate = learning_rate * multiplier
            return super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            config = super().get_config()
            config["paramwise_lr_schedule"] = dict(self.paramwise_lr_schedule)
            return config

    return ParameterWiseLR


@optimizer_extension("WithDenseGradients")
def extend_with_dense_gradients(base):
    """A subclass of `base` that merges embedding gradients before updating.

    On TensorFlow an embedding's gradient arrives as one row per token, and
    Keras 3's own optimizers square those rows before summing repeated tokens,
    so Adam-family updates of frequent tokens' embeddings come out too large
    (two equal rows at lr 0.1: a step of 0.14 instead of 0.1). This class
    changes nothing else; every other `extend_with_*` class, Tiger and
    `AdamW` here already do the same. No effect on JAX and PyTorch, whose
    gradients are dense.

    Example:
    >>> KerasAdamW = extend_with_dense_gradients(keras.optimizers.AdamW)
    >>> opt = KerasAdamW(learning_rate=2e-5, weight_decay=0.01)
    """

    class DenseGradientUpdates(base):
        pass

    return DenseGradientUpdates


_BLOCK = re.compile(r"Transformer-(\d+)-")


def layerwise_lr_decay(model, decay, embedding_prefix="Embedding-"):
    """Layer-wise learning-rate decay multipliers for `extend_with_parameter_wise_lr`.

    With `L` blocks named `Transformer-{i}-...`, block `i` gets
    `decay ** (L - i)`, the embeddings (`Embedding-...` weights)
    `decay ** (L + 1)` and everything else (pooler, heads) 1, so learning
    rates shrink geometrically from the output down to the input, as in
    ELECTRA's fine-tuning recipe. ALBERT's shared block (no index in its
    name) keeps multiplier 1. Returns `{pattern: multiplier}`.

    Example:
    >>> schedule = layerwise_lr_decay(model, 0.8)  # doctest: +SKIP
    >>> schedule["Transformer-11-"], schedule["Embedding-"]  # doctest: +SKIP
    (0.8, 0.0549...)
    >>> AdamPW = extend_with_parameter_wise_lr(keras.optimizers.Adam)
    >>> opt = AdamPW(1e-4, paramwise_lr_schedule=schedule)  # doctest: +SKIP
    """
    names = [w.path for w in model.weights] + [layer.name for layer in model.layers]
    indices = sorted({int(m.group(1)) for n in names for m in [_BLOCK.search(n)] if m})
    if not indices:
        raise ValueError("the model has no 'Transformer-{i}-' weights to decay")
    num_layers = indices[-1] + 1
    schedule = {f"Transformer-{i}-": float(decay) ** (num_layers - i) for i in indices}
    schedule[embedding_prefix] = float(decay) ** (num_layers + 1)
    return schedule


AdamW = extend_with_weight_decay(keras.optimizers.Adam, "AdamW")
AdamW.__doc__ = """`keras.optimizers.Adam` with bert4keras-style decoupled weight decay.

Unlike `keras.optimizers.AdamW`, exclusions are substrings of the weight
*path*, so `exclude_from_weight_decay=["Norm", "bias"]` works on
kerasnlp4su models as it did on bert4keras ones, and embedding gradients
are merged before the update (see `extend_with_dense_gradients`).

Example:
>>> opt = AdamW(learning_rate=2e-5, weight_decay_rate=0.01,
...             exclude_from_weight_decay=["Norm", "bias"])
"""
