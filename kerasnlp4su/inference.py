"""Inference with a model's weights frozen into the graph.

On TensorFlow's CPU path, oneDNN re-packs every variable weight matrix into
its blocked layout on each matmul. When the weights are graph constants it
packs them once and keeps the packed copy, which makes a BERT-base forward
about 10% faster on CPU (`benchmarks/bench_peers.py`, peer `kerasnlp4su_frozen`).
"""

import keras
import numpy as np


class FrozenModel:
    """A Keras model's inference forward pass with its current weights baked in.

    The outputs equal `model(inputs, training=False)` (dropout off); batch
    size and sequence length may change from call to call. The weights are
    copied when the model is frozen: later training or weight loading is not
    seen, so freeze again afterwards. On TensorFlow the model becomes one
    graph of constants; on JAX and PyTorch the call runs the model's own
    compiled `predict_on_batch` (same outputs, no extra speed).

    Example:
    >>> model = build_transformer_model(config_path, checkpoint_path)
    >>> frozen = freeze(model)
    >>> hidden = frozen([token_ids, segment_ids])          # numpy arrays in and out
    >>> hidden = frozen.predict([token_ids, segment_ids], batch_size=32)
    """

    def __init__(self, model):
        model = getattr(model, "model", model)  # a Transformer builder works too
        if not isinstance(model, keras.Model):
            raise TypeError(f"freeze() needs a keras.Model, got {type(model).__name__}")
        self.model = model
        self.input_names = [t.name for t in model.inputs]
        self._specs = [(tuple(t.shape), t.dtype) for t in model.inputs]
        self._single_output = len(model.outputs) == 1
        self._fn = self._freeze_tf() if keras.backend.backend() == "tensorflow" else None

    def _freeze_tf(self):
        import tensorflow as tf

        model = self.model
        many = len(model.inputs) > 1
        # Every weight, read once now: the graph embeds these copies.
        values = [(v, np.asarray(keras.ops.convert_to_numpy(v.value))) for v in model.weights]

        def forward(*inputs):
            # `tf.constant` inside the traced function makes each weight a Const node, and the
            # StatelessScope makes every read of a variable return it: the weights end up as graph
            # constants, as with TensorFlow's convert_variables_to_constants_v2, for 40% of its
            # cost (MiniLM-L6: 2.8 s of CPU against 6.6 s; that function re-imports and prunes the
            # whole graph). Outputs were identical on MiniLM, float32 and int8.
            with keras.StatelessScope(state_mapping=[(v, tf.constant(a)) for v, a in values]):
                return model(list(inputs) if many else inputs[0], training=False)

        signature = [tf.TensorSpec(shape, dtype) for shape, dtype in self._specs]
        return tf.function(forward, autograph=False).get_concrete_function(*signature)

    def _arrays(self, inputs):
        """The inputs as a list of arrays in the model's input order, checked."""
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            unknown = sorted(set(inputs) - set(self.input_names))
            if missing or unknown:
                raise ValueError(f"inputs by name need exactly {self.input_names}; "
                                 f"missing {missing}, unknown {unknown}")
            inputs = [inputs[n] for n in self.input_names]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(self._specs):
            raise ValueError(f"the model takes {len(self._specs)} input(s) {self.input_names}, "
                             f"got {len(inputs)}")
        arrays = []
        for x, (shape, dtype), name in zip(inputs, self._specs, self.input_names):
            if not isinstance(x, np.ndarray):
                x = np.asarray(keras.ops.convert_to_numpy(x))
            if x.ndim != len(shape) or any(
                    want is not None and got != want for got, want in zip(x.shape, shape)):
                raise ValueError(f"input {name!r} must have shape {shape}, got {x.shape}")
            arrays.append(x.astype(dtype, copy=False))
        return arrays

    def __call__(self, inputs):
        """Outputs for one batch, as numpy (a list when the model has several)."""
        arrays = self._arrays(inputs)
        if self._fn is None:
            return self.model.predict_on_batch(arrays if len(arrays) > 1 else arrays[0])
        tensors = [keras.ops.convert_to_tensor(a) for a in arrays]
        outputs = [o.numpy() for o in keras.tree.flatten(self._fn(*tensors))]
        return outputs[0] if self._single_output else outputs

    def predict(self, inputs, batch_size=32):
        """Like `model.predict`: runs `batch_size` rows at a time and concatenates."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        arrays = self._arrays(inputs)
        total = len(arrays[0])
        if any(len(a) != total for a in arrays):
            raise ValueError(f"inputs {self.input_names} differ in batch size: "
                             f"{[len(a) for a in arrays]}")
        parts = [self(list(a[i:i + batch_size] for a in arrays))
                 for i in range(0, total, int(batch_size))]
        if not parts:
            raise ValueError("predict() got an empty batch")
        if self._single_output:
            return np.concatenate(parts)
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def freeze(model):
    """`FrozenModel(model)`: the model's inference pass with its weights baked in."""
    return FrozenModel(model)
