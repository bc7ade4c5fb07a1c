"""`Loss`: bert4keras's output layer that adds a loss computed from its inputs."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class Loss(keras.layers.Layer):
    """Base layer whose `compute_loss(inputs, mask)` becomes a training loss.

    Subclass it and override `compute_loss`; the layer adds the returned loss
    with `add_loss` (Keras collects it in `model.losses` and the train step
    minimises it, so `compile` needs no `loss=`) and passes its inputs
    through: `inputs[output_axis]`, a list for a list of axes, or all inputs
    when `output_axis` is None (bert4keras's semantics).

    Differences from bert4keras, both for its scripts' sake:
    - integer and boolean inputs (token and segment ids are int32 model
      inputs here, float32 in bert4keras) reach `compute_loss` cast to the
      layer's variable dtype (float32, also under `mixed_bfloat16`), so
      `K.sum(loss * y_mask)` works unchanged;
      the layer's outputs keep the original dtypes;
    - float inputs are not autocast, so under `mixed_bfloat16` the loss
      sees the dtypes its producers emitted (cast to float32 yourself for
      a float32 loss on bf16 predictions).

    A subclass defined in user code is registered by the user as usual
    (`@keras.saving.register_keras_serializable()`) for `.keras` loading.

    Example:
    >>> class CrossEntropy(Loss):
    ...     def compute_loss(self, inputs, mask=None):
    ...         y_true, y_mask, y_pred = inputs
    ...         y_true, y_mask, y_pred = y_true[:, 1:], y_mask[:, 1:], y_pred[:, :-1]
    ...         loss = ops.sparse_categorical_crossentropy(y_true, y_pred)
    ...         return ops.sum(loss * y_mask) / ops.sum(y_mask)
    >>> ids, segments = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    >>> probs = keras.layers.Dense(9, activation="softmax")(keras.layers.Embedding(9, 4)(ids))
    >>> model = keras.Model([ids, segments], CrossEntropy(2)([ids, segments, probs]))
    >>> model.compile(optimizer="adam")  # no loss=: the layer adds it
    """

    def __init__(self, output_axis=None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.supports_masking = True
        self.output_axis = list(output_axis) if isinstance(output_axis, (list, tuple)) else output_axis

    def call(self, inputs, mask=None):
        self.add_loss(self.compute_loss(_float_inputs(inputs, self.variable_dtype), mask))
        return self._select(inputs)

    def compute_loss(self, inputs, mask=None):
        """The scalar loss of `inputs` (with integer inputs as floats); override it."""
        raise NotImplementedError(
            f"{type(self).__name__}: subclass Loss and override compute_loss(inputs, mask)")

    def _select(self, values):
        if self.output_axis is None:
            return values
        if isinstance(self.output_axis, list):
            return [values[i] for i in self.output_axis]
        return values[self.output_axis]

    def compute_output_shape(self, input_shape):
        return self._select(input_shape)

    def compute_output_spec(self, inputs, mask=None):
        return self._select(keras.tree.map_structure(
            lambda x: keras.KerasTensor(x.shape, dtype=x.dtype), inputs))

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if self.output_axis is not None and not isinstance(mask, (list, tuple)):
            return None
        return self._select(mask)

    def get_config(self):
        return {**super().get_config(), "output_axis": self.output_axis}


def _float_inputs(inputs, float_dtype):
    def to_float(x):
        dtype = keras.backend.standardize_dtype(x.dtype)
        if "int" in dtype or dtype == "bool":
            return ops.cast(x, float_dtype)
        return x

    return keras.tree.map_structure(to_float, inputs)
