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
"""

from kerasnlp4su.optimizers.accumulation import extend_with_gradient_accumulation
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

__all__ = [
    "AdamW", "Lion", "PiecewiseLinearSchedule", "Tiger",
    "child_network_masks", "extend_with_child_tuning", "fisher_information",
    "extend_with_compiled_update", "extend_with_dense_gradients",
    "extend_with_exponential_moving_average", "extend_with_gradient_accumulation",
    "extend_with_parameter_wise_lr", "extend_with_piecewise_linear_lr",
    "extend_with_weight_decay", "layerwise_lr_decay",
]
