"""freeze(): the inference pass with the weights baked in equals the model's own."""

import keras
import numpy as np
import pytest

from kerasnlp4su.inference import FrozenModel, freeze
from kerasnlp4su.models import BERT

CONFIG = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=32, max_position=64, hidden_dropout_prob=0.3)


def _inputs(batch, length, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, CONFIG["vocab_size"], (batch, length)).astype("int32")
    ids[0, length // 2:] = 0  # padding reaches the attention mask
    return [ids, (rng.random((batch, length)) < 0.5).astype("int32")]


@pytest.fixture(scope="module")
def bert():
    builder = BERT(**CONFIG, with_pool=True, with_mlm=True)
    builder.build()
    return builder


def _reference(model, x):
    return [keras.ops.convert_to_numpy(o) for o in model(x, training=False)]


@pytest.mark.backend_core
def test_frozen_outputs_equal_the_model_at_any_shape(bert):
    frozen = freeze(bert)  # a builder works as well as its keras.Model
    for batch, length in ((2, 5), (3, 17), (1, 64)):
        x = _inputs(batch, length, seed=batch)
        got = frozen(x)
        want = _reference(bert.model, x)
        assert len(got) == len(want) == 2
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    by_name = dict(zip(frozen.input_names, x))
    np.testing.assert_allclose(frozen(by_name)[0], want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.backend_core
def test_predict_batches_like_keras(bert):
    frozen = FrozenModel(bert.model)
    x = _inputs(7, 9, seed=3)
    got = frozen.predict(x, batch_size=3)
    want = bert.model.predict(x, batch_size=3, verbose=0)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.backend_core
def test_weights_are_copied_when_frozen():
    builder = BERT(**CONFIG)
    builder.build()
    x = _inputs(2, 6)
    frozen = freeze(builder.model)
    before = frozen(x)
    kernel = builder.model.get_layer("Transformer-0-FeedForward").weights[0]
    kernel.assign(kernel.numpy() * 2.0)
    changed = keras.ops.convert_to_numpy(builder.model(x, training=False))
    assert np.abs(changed - before).max() > 1e-3  # the model did change
    if keras.backend.backend() == "tensorflow":
        np.testing.assert_array_equal(frozen(x), before)  # the frozen copy did not
        # ... because its graph holds the weights as constants: no variable is read or captured.
        graph = frozen._fn.graph.as_graph_def()
        ops = {node.op for node in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
        assert "Const" in ops and not ops & {"ReadVariableOp", "VarHandleOp", "ResourceGather"}, ops
        assert not frozen._fn.captured_inputs
    np.testing.assert_allclose(freeze(builder.model)(x), changed, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_named(bert):
    frozen = freeze(bert.model)
    x = _inputs(2, 4)
    with pytest.raises(ValueError, match=r"takes 2 input\(s\) \['Input-Token', 'Input-Segment'\], got 1"):
        frozen(x[0])
    with pytest.raises(ValueError, match=r"input 'Input-Segment' must have shape \(None, None\), got \(2,\)"):
        frozen([x[0], x[1][:, 0]])
    with pytest.raises(ValueError, match=r"missing \['Input-Segment'\], unknown \['segments'\]"):
        frozen({"Input-Token": x[0], "segments": x[1]})
    with pytest.raises(ValueError, match="differ in batch size"):
        frozen.predict([x[0], x[1][:1]])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        frozen.predict(x, batch_size=0)
    with pytest.raises(TypeError, match="needs a keras.Model, got dict"):
        freeze({})
