"""The first-contact checks that differ by backend, run in-process on each one.

On TensorFlow, ids are checked before the graph for NumPy and list inputs and
inside it for tensors; JAX and PyTorch take the same NumPy path, and PyTorch
also checks tensors eagerly. This file imports no TensorFlow so that the JAX
and PyTorch children of test_backends.py run it cheaply (`backend_core`).
"""

import keras
import numpy as np
import pytest

from kerasnlp4su.models import build_transformer_model
from first_contact_messages import CKPT, CONFIG, POSITIONS, VOCAB, ids_message, length_message


@pytest.fixture(scope="module")
def mlm():
    return build_transformer_model(CONFIG, CKPT, with_mlm=True)


def first_error_line(call, x):
    with pytest.raises(ValueError) as excinfo:
        call(x)
    return str(excinfo.value).splitlines()[0]


@pytest.mark.backend_core
def test_lists_and_empty_batches_predict(mlm):
    assert mlm.predict([[[2, 50, 3]], [[0, 0, 1]]], verbose=0).shape == (1, 3, VOCAB)
    assert mlm.predict([np.zeros((0, 3), "int32")] * 2, verbose=0).shape == (0, 3, VOCAB)


@pytest.mark.backend_core
@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_bad_ids_are_named_first_on_this_backend(mlm, kind):
    tokens, segments = np.array([[2, VOCAB, 3]], "int32"), np.zeros((1, 3), "int32")
    if kind == "tensor":
        tokens, segments = keras.ops.convert_to_tensor(tokens), keras.ops.convert_to_tensor(segments)
    calls = [mlm.predict, mlm]
    if kind == "tensor" and keras.backend.backend() == "jax":
        calls = [mlm]  # inside jax.jit the ids cannot be checked (README, "Bad input")
    for call in calls:
        # TensorFlow's predict checks a tensor inside its graph, which cannot print the id.
        in_graph = kind == "tensor" and call is not mlm and keras.backend.backend() == "tensorflow"
        bad_id = ids_message("Embedding-Token", VOCAB, None if in_graph else VOCAB)
        assert first_error_line(call, [tokens, segments]) == bad_id


@pytest.mark.backend_core
def test_too_long_inputs_are_named_first_on_this_backend(mlm):
    x = [np.ones((1, POSITIONS + 1), "int32")] * 2
    for call in (mlm.predict, mlm):
        assert first_error_line(call, x) == length_message(POSITIONS + 1)
