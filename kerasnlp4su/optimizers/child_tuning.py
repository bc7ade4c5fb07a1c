"""ChildTuning (Xu et al. 2021): update only a child network of the model, as an optimizer extension.

- ChildTuning-F (task-free): every step, each gradient entry is kept with
  probability `reserve_p` and the kept ones are divided by `reserve_p`
  (an unbiased estimate of the full gradient, like dropout on gradients).
- ChildTuning-D (task-driven): before fine-tuning, the diagonal Fisher
  information `F_i = sum over batches of (d loss / d w_i)^2` is accumulated
  on the task data; the `reserve_p` fraction of weights with the largest
  `F_i` (one threshold over all of them) is the child network, and only its
  gradients reach the update; the others are zeroed, not rescaled.

Su Jianlin's post on it: "ChildTuning：试试把Dropout加到梯度上去？" (kexue.fm).
"""

import keras
import numpy as np
from keras import ops

from kerasnlp4su.optimizers._common import (
    DenseGradients,
    densify,
    matching_patterns,
    optimizer_extension,
    variable_path,
)


@optimizer_extension("WithChildTuning")
def extend_with_child_tuning(base):
    """A subclass of `base` whose updates see ChildTuning-masked gradients.

    Keyword arguments of the class:
    - `child_mode`: `'F'` (random Bernoulli mask each step, kept entries
      scaled by `1 / reserve_p`) or `'D'` (fixed mask from `child_masks`).
    - `reserve_p`: fraction of gradient entries kept in mode F (in (0, 1]).
    - `child_masks`: mode D, `{variable path: 0/1 array}` as returned by
      `child_network_masks`; variables missing from it are not masked.
    - `child_exclude`: substrings of variable paths whose gradients are
      never masked (a freshly initialised head, say `['Classifier']`).
    - `child_seed`: seed of mode F's masks.
    The masks are applied to dense gradients before `base`'s own update
    (and before its gradient accumulation or clipping).

    Example:
    >>> ChildAdam = extend_with_child_tuning(keras.optimizers.Adam)
    >>> opt_f = ChildAdam(learning_rate=2e-5, child_mode="F", reserve_p=0.3)
    >>> fisher = fisher_information(model, x, y, "sparse_categorical_crossentropy")  # doctest: +SKIP
    >>> masks = child_network_masks(fisher, reserve_p=0.3)  # doctest: +SKIP
    >>> opt_d = ChildAdam(learning_rate=2e-5, child_mode="D", child_masks=masks)  # doctest: +SKIP
    """

    class ChildTuning(base):
        def __init__(self, *args, child_mode="F", reserve_p=0.3, child_masks=None,
                     child_exclude=None, child_seed=None, **kwargs):
            super().__init__(*args, **kwargs)
            mode = str(child_mode).upper()
            if mode not in ("F", "D"):
                raise ValueError(f"child_mode must be 'F' or 'D', got {child_mode!r}")
            if not 0.0 < float(reserve_p) <= 1.0:
                raise ValueError(f"reserve_p must lie in (0, 1], got {reserve_p!r}")
            if mode == "D" and child_masks is None:
                raise ValueError("child_mode='D' needs child_masks (see child_network_masks)")
            self.child_mode = mode
            self.reserve_p = float(reserve_p)
            self.child_exclude = list(child_exclude or [])
            self.child_seed = child_seed
            self._child_mask_values = {str(k): np.asarray(v) for k, v in
                                       (child_masks or {}).items()}

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._child_masks = []
            for variable in var_list:
                mask = None
                if not matching_patterns(variable, self.child_exclude):
                    mask = self._build_mask(variable)
                self._child_masks.append(mask)
            if self.child_mode == "F":
                self._child_seed_generator = keras.random.SeedGenerator(self.child_seed)
                # The seed's state must be an optimizer variable, or JAX's
                # stateless update would draw the same mask every step.
                self._track_variable(self._child_seed_generator.state)

        def _build_mask(self, variable):
            if self.child_mode == "F":
                return True
            path = variable_path(variable)
            if path not in self._child_mask_values:
                return None
            value = self._child_mask_values[path]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"child_masks[{path!r}] has shape {value.shape}, the variable "
                                 f"{tuple(variable.shape)}")
            # The value goes in as the initializer: `build` may run in a
            # stateless (symbolic) scope where an `assign` would be dropped.
            return self.add_variable(tuple(variable.shape), dtype=variable.dtype,
                                     initializer=lambda shape, dtype: ops.cast(value, dtype),
                                     name=path.replace("/", "_") + "_child_mask")

        def _masked(self, gradient, mask):
            if gradient is None or mask is None:
                return gradient
            gradient = ops.convert_to_tensor(densify(gradient))
            if self.child_mode == "D":
                return gradient * ops.cast(mask, gradient.dtype)
            draw = keras.random.uniform(ops.shape(gradient), seed=self._child_seed_generator)
            keep = ops.less(draw, self.reserve_p)
            return ops.where(keep, gradient / self.reserve_p, ops.zeros_like(gradient))

        def apply(self, grads, trainable_variables=None):
            if not self.built:
                self.build(trainable_variables)
            if trainable_variables is None:
                masks = self._child_masks
            else:
                masks = [self._child_masks[self._get_variable_index(v)]
                         for v in trainable_variables]
            grads = [self._masked(g, m) for g, m in zip(grads, masks)]
            return super().apply(grads, trainable_variables)

        def get_config(self):
            config = super().get_config()
            # Mode D's masks live in the optimizer's variables (saved with it),
            # not in the config.
            config.update(child_mode=self.child_mode, reserve_p=self.reserve_p,
                          child_exclude=list(self.child_exclude), child_seed=self.child_seed)
            if self.child_mode == "D":
                config["child_masks"] = {}
            return config

    return ChildTuning


class _SquaredGradientSum(DenseGradients, keras.optimizers.Optimizer):
    """An 'optimizer' that leaves the weights alone and sums each gradient's square."""

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.squares = [self.add_variable_from_reference(v, "fisher") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        self.assign_add(self.squares[index], ops.square(ops.cast(gradient, variable.dtype)))


def fisher_information(model, x, y, loss, batch_size=32, include=None):
    """Diagonal Fisher information of `model`'s trainable weights on `(x, y)`: `{path: array}`.

    For each batch the gradient of `loss` (any Keras loss, as in `compile`)
    is taken in training mode, and its square is summed over the batches,
    as ChildTuning-D does. `include`: substrings of variable paths to keep
    (default: every trainable weight). `model` itself is not compiled or
    changed: a functional view of it is.

    Example:
    >>> fisher = fisher_information(model, x, y, "sparse_categorical_crossentropy")  # doctest: +SKIP
    >>> fisher["Transformer-0-FeedForward/output/kernel"].shape  # doctest: +SKIP
    (3072, 768)
    """
    if not getattr(model, "inputs", None):
        raise ValueError("fisher_information needs a functional keras.Model (with model.inputs)")
    view = keras.Model(model.inputs, model.outputs)
    accumulator = _SquaredGradientSum(learning_rate=0.0, name="fisher_information")
    view.compile(optimizer=accumulator, loss=loss)
    view.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    result = {}
    for variable, square in zip(view.trainable_weights, accumulator.squares):
        path = variable_path(variable)
        if include is None or matching_patterns(variable, include):
            result[path] = np.asarray(ops.convert_to_numpy(square))
    return result


def child_network_masks(fisher, reserve_p=0.3):
    """The ChildTuning-D child network: 1 for the top `reserve_p` fraction of Fisher values, else 0.

    One threshold over all the given weights together (the `1 - reserve_p`
    quantile), so layers that matter more to the task keep more entries.
    Returns `{path: float32 array}` for `extend_with_child_tuning`'s
    `child_masks`.

    Example:
    >>> masks = child_network_masks({"w": np.array([0.1, 4.0, 2.0, 0.3])}, reserve_p=0.5)
    >>> masks["w"].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    if not 0.0 < float(reserve_p) <= 1.0:
        raise ValueError(f"reserve_p must lie in (0, 1], got {reserve_p!r}")
    if not fisher:
        raise ValueError("fisher is empty: no weights to choose a child network from")
    values = np.concatenate([np.ravel(v) for v in fisher.values()])
    keep = max(1, int(round(reserve_p * values.size)))
    threshold = np.partition(values, values.size - keep)[values.size - keep]
    return {path: (np.asarray(v) >= threshold).astype("float32") for path, v in fisher.items()}
