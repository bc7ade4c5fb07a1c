"""`TransformerModel`: the `keras.Model` that `build_transformer_model` returns.

An ordinary functional model (compiled, trained, saved and loaded like any
other) that takes what bert4keras models took and checks it before it
reaches the graph:

* nested Python lists of ids, `model.predict([[token_ids], [segment_ids]])`,
  become one int32 array per input (bert4keras's Keras 2 accepted them;
  Keras 3 raises `Unrecognized data type`);
* ids outside an embedding table, sequences longer than the position table,
  zero-length sequences, ragged rows and a wrong number of inputs raise a
  `ValueError` whose first line names the problem, under `predict`, `fit`,
  `evaluate`, the `*_on_batch` methods and direct calls, instead of a graph
  trace with the message at its end;
* for datasets and generators the in-graph checks' errors are re-raised
  with the same first line;
* an empty batch predicts empty outputs of the right trailing shape;
* `verbose="auto"` draws progress bars only on a terminal or in a notebook.
"""

import contextlib
import functools
import re
import sys

import keras
import numpy as np

from kerasnlp4su.layers.embeddings import check_id_bounds
from kerasnlp4su.layers.position import PositionEmbedding, check_max_position
from kerasnlp4su.layers.remat import outside_remat_scope

# The first lines of the project's input checks, as they appear inside an
# error raised from a graph (TF's `InvalidArgumentError: ... assertion
# failed: [message]`) or wrapped by Keras ("Exception encountered when
# calling ...", the message in bold).
_PROJECT_MESSAGE = re.compile(
    r"[^\s\[\]]+: (?:id -?\d+ is out of range: )?ids must lie in \[0, \d+\); does the "
    r"tokenizer's vocabulary \(or segment ids\) match the model's vocab_size\?"
    r"|[^\s\[\]]+: sequence length (?:\d+ )?exceeds the maximum position \d+ of the "
    r"position embedding; truncate inputs \(e\.g\. Tokenizer\.encode\(maxlen=\.\.\.\)\)"
    r"|[^\s\[\]]+ expects \d+ inputs? \[[^\]]*\], got [^\n]*")
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")


def project_message(error):
    """The project's input-check message inside `error`'s text, or None."""
    text = _TERMINAL_CODES.sub("", str(error)).replace("\\'", "'")
    match = _PROJECT_MESSAGE.search(text)
    return match.group(0) if match else None


@contextlib.contextmanager
def project_message_first():
    """Re-raise an error that carries a project input-check message as a `ValueError` with it first."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - only errors carrying our message are replaced
        message = project_message(error)
        if message is None or (isinstance(error, ValueError)
                               and str(error).splitlines()[0] == message):
            raise
        raise ValueError(message) from None


def progress_verbosity(verbose, elsewhere):
    """Keras's `verbose`, except that `"auto"` becomes `elsewhere` when stdout is no terminal.

    A progress bar redraws itself with `\\r` and `\\b`; written to a file or a
    pipe that is a wall of escape codes. Notebooks draw it, so they count as
    terminals (as in Keras's own `Progbar`).
    """
    if verbose != "auto":
        return verbose
    try:
        interactive = sys.stdout.isatty()
    except (AttributeError, ValueError):  # no stdout, or a closed one
        interactive = False
    return "auto" if interactive or "ipykernel" in sys.modules else elsewhere


class _InputSpec:
    """What one model input accepts: rank, fixed sizes, dtype and the tables its ids index."""

    def __init__(self, tensor, tables):
        self.name = tensor.name
        self.shape = tuple(tensor.shape)
        self.integer = "int" in str(tensor.dtype)
        self.tables = tables  # [(embedding layer name, input_dim)] read by this input's ids


def _depth(value):
    """How many axes `value` has (nested lists counted through their first items)."""
    if isinstance(value, (list, tuple)):
        return 1 + (_depth(value[0]) if len(value) else 0)
    shape = getattr(value, "shape", None)
    return len(shape) if shape is not None else 0


def _describe(x):
    if isinstance(x, (list, tuple)):
        try:
            return f"one array of shape {np.shape(x)}" if _depth(x) <= 2 else f"{len(x)} inputs"
        except ValueError:
            return f"{len(x)} inputs"
    shape = getattr(x, "shape", None)
    return f"one array of shape {tuple(shape)}" if shape is not None else repr(type(x).__name__)


def _as_labels(y):
    """Targets given as nested Python lists -> one array (lists of arrays pass)."""
    if isinstance(y, (list, tuple)) and not any(hasattr(item, "shape") for item in y):
        try:
            return np.asarray(y)
        except ValueError:
            return y
    return y


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class TransformerModel(keras.Model):
    """A functional `keras.Model` that accepts bert4keras-style inputs and checks them first.

    `Transformer.build()` (and so `build_transformer_model`) returns one. It
    saves to `.keras` / `.weights.h5` and loads back as this class
    (`safe_mode=True` works: it holds no Python code).

    Example:
    >>> from kerasnlp4su.models import BERT
    >>> model = BERT(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...              num_attention_heads=2, intermediate_size=16).build()
    >>> model.predict([[[2, 17, 3]], [[0, 0, 0]]], verbose=0).shape
    (1, 3, 8)
    >>> model.predict([[[2, 170, 3]], [[0, 0, 0]]])
    Traceback (most recent call last):
    ValueError: Embedding-Token: id 170 is out of range: ids must lie in [0, 100); does the tokenizer's vocabulary (or segment ids) match the model's vocab_size?
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        # Under a keras.RematScope the blocks' layers are rematerialised; the
        # model's own call is not (it would recompute the whole forward).
        with outside_remat_scope():
            super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

    # ------------------------------------------------------------ the checks
    @functools.cached_property
    def _input_specs(self):
        positions = {id(t): i for i, t in enumerate(self.inputs)}
        tables = [[] for _ in self.inputs]
        for layer in self.layers:
            if not isinstance(layer, keras.layers.Embedding):
                continue
            for node in layer._inbound_nodes:
                for tensor in node.input_tensors:
                    if id(tensor) in positions:
                        tables[positions[id(tensor)]].append((layer.name, layer.input_dim))
        return [_InputSpec(t, ts) for t, ts in zip(self.inputs, tables)]

    @functools.cached_property
    def _position_limit(self):
        """(layer name, rows) of the smallest learned position table, or None (RoPE has none)."""
        # Custom position ids are checked against the table in the layer.
        limits = [(layer.max_positions, layer.name) for layer in self.layers
                  if isinstance(layer, PositionEmbedding) and not layer.custom_position_ids]
        if not limits:
            return None
        rows, name = min(limits)
        return name, rows

    def _count_error(self, got):
        names = ", ".join(spec.name for spec in self._input_specs)
        count = len(self._input_specs)
        return ValueError(f"{self.name} expects {count} input{'s' if count > 1 else ''} "
                          f"[{names}], got {got}; pass a list in that order")

    def _split(self, x):
        """`x` as a list with one entry per model input (None where `x` is another kind of data)."""
        specs = self._input_specs
        if isinstance(x, dict):
            return [x.get(spec.name) for spec in specs] if set(x) == {s.name for s in specs} \
                else None
        if len(specs) == 1:
            if isinstance(x, (list, tuple)) and len(x) == 1 and _depth(x) > len(specs[0].shape):
                return [x[0]]
            return [x]
        if isinstance(x, (list, tuple)):
            if len(x) != len(specs):
                raise self._count_error(_describe(x))
            return list(x)
        if isinstance(x, np.ndarray) or keras.ops.is_tensor(x):
            raise self._count_error(_describe(x))
        return None  # a dataset, generator or PyDataset: checked in the graph

    def _as_array(self, value, spec):
        """Python lists -> an array of the input's dtype; arrays are checked; other data pass."""
        converted = isinstance(value, (list, tuple))
        if converted:
            try:
                array = np.asarray(value)
            except ValueError:
                lengths = sorted({len(row) for row in value if hasattr(row, "__len__")})
                raise ValueError(
                    f"{spec.name}: the sequences have different lengths {lengths[:5]}; pad them "
                    "to one length (kerasnlp4su.snippets.sequence_padding)") from None
        elif isinstance(value, np.ndarray):
            array = value
        else:
            return value
        if not spec.integer:
            return array.astype("float32") if converted else array
        if array.dtype.kind == "f" and array.size and not np.all(np.mod(array, 1) == 0):
            raise ValueError(f"{spec.name}: ids must be integers, got {array.dtype} values "
                             f"such as {array[np.mod(array, 1) != 0].flat[0]}")
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{spec.name}: ids must be integers, got an array of {array.dtype}")
        return array.astype("int32") if converted else array

    def _check(self, arrays):
        """Raise on the first input problem; returns the batch size (None if unknown)."""
        batch = first = token_like = None
        for spec, array in zip(self._input_specs, arrays):
            if not isinstance(array, np.ndarray):
                continue
            if array.ndim != len(spec.shape):
                hint = "; wrap a single sequence in a list: [ids]" if array.ndim == 1 else ""
                raise ValueError(f"{spec.name}: expected a batch of rank {len(spec.shape)} "
                                 f"(batch, length), got shape {array.shape}{hint}")
            for axis, (got, want) in enumerate(zip(array.shape, spec.shape)):
                if axis and want is not None and got != want:
                    raise ValueError(f"{spec.name}: expected size {want} on axis {axis} (the model "
                                     f"was built for it), got shape {array.shape}")
            if first is None:
                batch, first = array.shape[0], spec
            elif array.shape[0] != batch:
                raise ValueError(f"{spec.name} holds {array.shape[0]} samples but {first.name} "
                                 f"holds {batch}; every input needs one row per sample")
            if not spec.tables or array.ndim != 2:
                continue
            # Float inputs feeding an embedding are extra inputs (a condition's
            # label, bert4keras's additional_input_layers), not sequences.
            if spec.integer:
                if token_like is None:
                    token_like = spec, array.shape
                elif array.shape != token_like[1]:
                    raise ValueError(f"{spec.name} has shape {array.shape} but "
                                     f"{token_like[0].name} has shape {token_like[1]}; they "
                                     "must have the same shape")
                if array.shape[1] == 0 and batch:
                    raise ValueError(f"{spec.name}: the sequences have length 0; every sequence "
                                     "needs at least one token (Tokenizer.encode gives [CLS] "
                                     "[SEP])")
                if self._position_limit is not None:
                    table, rows = self._position_limit
                    check_max_position(table, array.shape[1], 0, rows)
            if array.size:
                low, high = int(array.min()), int(array.max())
                for table, rows in spec.tables:
                    check_id_bounds(table, low, high, rows)
        return batch

    def checked_inputs(self, x):
        """`(x, batch_size)`: `x` with Python lists made arrays and every array checked.

        Datasets, generators and backend tensors pass unchanged (their ids are
        checked in the graph; batch size None).
        """
        parts = self._split(x)
        if parts is None:
            return x, None
        arrays = [self._as_array(part, spec) for part, spec in zip(parts, self._input_specs)]
        batch = self._check(arrays)
        if isinstance(x, dict):
            return {spec.name: a for spec, a in zip(self._input_specs, arrays)}, batch
        # A list, never a tuple: Keras reads a tuple `x` as `(x, y)`. A one-input model
        # built on `[Input]` gets `[array]`: Keras warns when the structure differs.
        as_list = len(arrays) > 1 or isinstance(getattr(self, "_inputs_struct", None), (list, tuple))
        return (arrays if as_list else arrays[0]), batch

    def _checked_training_inputs(self, x, method):
        x, batch = self.checked_inputs(x)
        if batch == 0:
            raise ValueError(f"{self.name}.{method}: the batch is empty (x holds 0 samples); "
                             "there is nothing to compute a loss on")
        return x

    def _build_training_state(self, x, y, sample_weight):
        """Create the optimizer's and the compiled metrics' variables before the first traced step.

        On TensorFlow without a distribution strategy, Keras 3 creates them inside the first traced
        train step, and `tf.function` traces a function that creates variables twice: for a tiny BERT
        with AdamW the first `train_on_batch` took 38.5 s instead of 6.5 s on a busy 2-core machine
        (`benchmarks/bench_first_step.py`). Keras's own build step (the one it runs under a strategy)
        does it here, from the arrays' shapes; datasets and generators keep Keras's way.
        """
        if keras.backend.backend() != "tensorflow" or getattr(self, "optimizer", None) is None:
            return
        metrics, loss = getattr(self, "_compile_metrics", None), getattr(self, "_compile_loss", None)
        unbuilt = (not self.optimizer.built or (metrics is not None and not metrics.built)
                   or (loss is not None and not loss.built))
        arrays = [a for a in keras.tree.flatten((x, y, sample_weight)) if a is not None]
        if not unbuilt or not arrays or not all(isinstance(a, np.ndarray) for a in arrays):
            return
        build = getattr(self, "_symbolic_build", None)  # Keras's; absent in another version: only slower
        if build is not None:
            build(data_batch=(x, y, sample_weight))

    # ------------------------------------------------------ Keras entry points
    def __call__(self, *args, **kwargs):
        if args:
            args = (self.checked_inputs(args[0])[0],) + args[1:]
        elif "inputs" in kwargs:
            kwargs["inputs"] = self.checked_inputs(kwargs["inputs"])[0]
        with project_message_first():
            return super().__call__(*args, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras's `predict`, after the input checks; an empty batch gives empty outputs."""
        x, batch = self.checked_inputs(x)
        with project_message_first():
            if batch == 0:
                return super().predict_on_batch(x)
            return super().predict(x, batch_size=batch_size, steps=steps, callbacks=callbacks,
                                   verbose=progress_verbosity(verbose, 0))

    def predict_on_batch(self, x):
        x, _ = self.checked_inputs(x)
        with project_message_first():
            return super().predict_on_batch(x)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Keras's `fit`; off a terminal `verbose="auto"` prints one line per epoch (2)."""
        x = self._checked_training_inputs(x, "fit")
        if isinstance(validation_data, (list, tuple)) and len(validation_data) in (2, 3):
            validation_data = (self._checked_training_inputs(validation_data[0], "fit"),
                               *map(_as_labels, validation_data[1:]))
        y, sample_weight = _as_labels(y), _as_labels(sample_weight)
        with project_message_first():
            self._build_training_state(x, y, sample_weight)
            return super().fit(
                x, y, batch_size=batch_size, epochs=epochs,
                verbose=progress_verbosity(verbose, 2), callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data,
                shuffle=shuffle, class_weight=class_weight,
                sample_weight=sample_weight, initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                validation_batch_size=validation_batch_size, validation_freq=validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Keras's `evaluate`; off a terminal `verbose="auto"` prints nothing."""
        x = self._checked_training_inputs(x, "evaluate")
        y, sample_weight = _as_labels(y), _as_labels(sample_weight)
        with project_message_first():
            self._build_training_state(x, y, sample_weight)
            return super().evaluate(
                x, y, batch_size=batch_size, verbose=progress_verbosity(verbose, 0),
                sample_weight=sample_weight, steps=steps, callbacks=callbacks,
                return_dict=return_dict, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        x = self._checked_training_inputs(x, "train_on_batch")
        y, sample_weight = _as_labels(y), _as_labels(sample_weight)
        with project_message_first():
            self._build_training_state(x, y, sample_weight)
            return super().train_on_batch(x, y, sample_weight=sample_weight,
                                          class_weight=class_weight, return_dict=return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        x = self._checked_training_inputs(x, "test_on_batch")
        y, sample_weight = _as_labels(y), _as_labels(sample_weight)
        with project_message_first():
            self._build_training_state(x, y, sample_weight)
            return super().test_on_batch(x, y, sample_weight=sample_weight,
                                         return_dict=return_dict)
