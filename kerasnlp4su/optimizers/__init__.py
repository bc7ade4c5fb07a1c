"""Optimizers and optimizer extensions (bert4keras's `optimizers` module, Keras 3 style).

- `Tiger`: Su Jianlin's tight-fisted optimizer, buffer-free gradient accumulation.
- `Lion`: Keras's Lion with bert4keras's defaults.
- `extend_with_*`: factories returning real subclasses that add weight decay,
  piecewise-linear LR, parameter-wise LR, gradient accumulation or EMA to any
  Keras optimizer; they compose and serialise. `extend_with_compiled_update`
  runs any optimizer's update as one XLA program on TensorFlow;
  `extend_with_dense_gradients` fixes Keras's Adam-family updates of
  embeddings on TensorFlow (all the other extensions include it).
  `extend_with_child_tuning` masks gradients to a child network
  (ChildTuning-F and -D; `fisher_information`, `child_network_masks`).
- `PiecewiseLinearSchedule`, `layerwise_lr_decay`, `AdamW`.
- bert4keras's own: `Adam` (its epsilon placement), `AdaFactor`,
  `extend_with_layer_adaptation` (LAMB), `extend_with_lazy_optimization`,
  `extend_with_lookahead`, `export_to_custom_objects`. Each `*_v2` name
  and `LionV2`/`AdaFactorV1`/`AdaFactorV2`/`AdaFactorBase` is the same
  object as its plain form: Keras 3 has one optimizer API.
"""

# Names bert4keras's optimizers module exposed (scripts import some of them from here).
import keras  # noqa: F401
import numpy as np  # noqa: F401

from kerasnlp4su.backend import K, is_tf_keras, piecewise_linear  # noqa: F401
from kerasnlp4su.backend import root_mean_square as rms  # noqa: F401
from kerasnlp4su.optimizers._common import export_to_custom_objects
from kerasnlp4su.optimizers.accumulation import extend_with_gradient_accumulation
from kerasnlp4su.optimizers.adafactor import AdaFactor, AdaFactorBase, AdaFactorV1, AdaFactorV2
from kerasnlp4su.optimizers.adam import Adam
from kerasnlp4su.optimizers.child_tuning import (
    child_network_masks,
    extend_with_child_tuning,
    fisher_information,
)
from kerasnlp4su.optimizers.compiled import extend_with_compiled_update
from kerasnlp4su.optimizers.ema import extend_with_exponential_moving_average
from kerasnlp4su.optimizers.extensions import (
    AdamW,
    extend_with_dense_gradients,
    extend_with_parameter_wise_lr,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
    layerwise_lr_decay,
)
from kerasnlp4su.optimizers.lion import Lion
from kerasnlp4su.optimizers.schedules import PiecewiseLinearSchedule
from kerasnlp4su.optimizers.tiger import Tiger
from kerasnlp4su.optimizers.update_rules import (
    extend_with_layer_adaptation,
    extend_with_lazy_optimization,
    extend_with_lookahead,
)
from kerasnlp4su.snippets import (  # noqa: F401
    insert_arguments,
    is_one_of,
    is_string,
    string_matching,
)

# bert4keras's tf.keras (`_v2`) forms: the same classes in Keras 3.
LionV2 = Lion
extend_with_weight_decay_v2 = extend_with_weight_decay
extend_with_layer_adaptation_v2 = extend_with_layer_adaptation
extend_with_piecewise_linear_lr_v2 = extend_with_piecewise_linear_lr
extend_with_gradient_accumulation_v2 = extend_with_gradient_accumulation
extend_with_lookahead_v2 = extend_with_lookahead
extend_with_lazy_optimization_v2 = extend_with_lazy_optimization
extend_with_exponential_moving_average_v2 = extend_with_exponential_moving_average
extend_with_parameter_wise_lr_v2 = extend_with_parameter_wise_lr

# As bert4keras: for `custom_objects=` of loading calls (both are registered
# with Keras already, so Keras 3 loading finds them without it).
custom_objects = {"Adam": Adam, "AdaFactor": AdaFactor}

__all__ = [
    "AdaFactor", "Adam", "AdamW", "Lion", "PiecewiseLinearSchedule", "Tiger",
    "child_network_masks", "export_to_custom_objects", "extend_with_child_tuning",
    "extend_with_layer_adaptation", "extend_with_lazy_optimization", "extend_with_lookahead",
    "fisher_information",
    "extend_with_compiled_update", "extend_with_dense_gradients",
    "extend_with_exponential_moving_average", "extend_with_gradient_accumulation",
    "extend_with_parameter_wise_lr", "extend_with_piecewise_linear_lr",
    "extend_with_weight_decay", "layerwise_lr_decay",
]


def __getattr__(name):
    if name == "tf":  # bert4keras exposed TensorFlow here; only loaded when asked for
        from kerasnlp4su import backend

        return backend.tf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
