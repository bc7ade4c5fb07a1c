"""Ladder Side-Tuning and BERT-of-Theseus against re-derivations.

Gates, down-projections and the Theseus choice are recomputed in NumPy from
the models' weights; the JAX and PyTorch runs of the cheap tests share the
subprocess of test_techniques.py (`test_techniques_on_backend`).
"""

import os
import warnings

import keras
import numpy as np
import pytest

from backend_utils import to_np
from kerasnlp4su.layers import TokenSelect
from kerasnlp4su.models import TransformerModel
from kerasnlp4su.training import (
    LadderGate,
    TheseusReplacementSchedule,
    ladder_side_model,
    theseus_model,
    theseus_successor,
)

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")


def tiny_bert(seed=1, **build):
    from kerasnlp4su.models import build_transformer_model

    keras.utils.set_random_seed(seed)
    return build_transformer_model(os.path.join(TINY, "bert_config.json"),
                                   os.path.join(TINY, "bert_model.ckpt"), **build)


def tiny_classifier(**build):
    bert = tiny_bert(with_pool=True, **build)
    out = keras.layers.Dense(2, activation="softmax", name="Classifier")(bert.output)
    return TransformerModel(bert.inputs, out)


def token_batch(batch=4, length=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(100, 2000, size=(batch, length)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3
    ids[1, 5:] = 0  # padding
    return [ids, np.zeros_like(ids)], (np.arange(batch) % 2).astype("int32")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


# ------------------------------------------------------- Ladder Side-Tuning
@pytest.mark.backend_core
def test_ladder_gate_mixes_with_sigmoid_of_alpha_over_temperature():
    gate = LadderGate(temperature=0.1)
    side, backbone = np.random.default_rng(0).standard_normal((2, 3, 5)).astype("float32")
    gate([side, backbone])
    gate.alpha.assign(0.03)
    mu = sigmoid(0.03 / 0.1)
    np.testing.assert_allclose(to_np(gate([side, backbone])), mu * backbone + (1 - mu) * side,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        LadderGate(temperature=0)


def test_ladder_side_model_reads_every_hidden_state_and_trains_only_the_side():
    bert = tiny_bert(with_pool=True)
    side = ladder_side_model(bert, reduction=8)
    x, y = token_batch()
    # Rung i reads block i's output: Side-Down-i == hidden_i @ W + b.
    for i in range(2):
        hidden = to_np(keras.Model(bert.inputs, bert.get_layer(
            f"Transformer-{i}-FeedForward-Norm").output)(x))
        kernel, bias = (to_np(w) for w in side.get_layer(f"Side-Down-{i}").weights)
        down = to_np(keras.Model(side.inputs, side.get_layer(f"Side-Down-{i}").output)(x))
        np.testing.assert_allclose(down, hidden @ kernel + bias, rtol=1e-4, atol=1e-5)
    assert side.output.shape[-1] == 64 // 8
    backbone = [to_np(w).copy() for w in bert.weights]
    assert not bert.trainable_weights
    pooled = TokenSelect()(side.output)
    model = TransformerModel(side.inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    before = [to_np(w).copy() for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  run_eagerly=True)  # two steps: tracing would cost more
    model.fit(x, y, epochs=2, verbose=0)
    for old, new in zip(backbone, bert.weights):
        np.testing.assert_array_equal(old, to_np(new))
    assert all(not np.array_equal(a, to_np(b)) for a, b in zip(before, model.trainable_weights))
    with pytest.raises(ValueError, match="multiple of heads"):
        ladder_side_model(tiny_bert(), reduction=64, heads=2)


# ---------------------------------------------------------- BERT-of-Theseus
def head_by_hand(model, hidden):
    """Pooler (first token, tanh Dense) and softmax classifier in NumPy."""
    w, b = (to_np(v) for v in model.get_layer("Pooler-Dense").weights)
    wc, bc = (to_np(v) for v in model.get_layer("Classifier").weights)
    return softmax(np.tanh(hidden[:, 0] @ w + b) @ wc + bc)


@pytest.mark.backend_core
def test_theseus_rate_zero_is_the_predecessor_and_rate_one_the_successor():
    predecessor = tiny_classifier(dropout_rate=0.0, attention_dropout_rate=0.0)
    x, _ = token_batch()
    expected = to_np(predecessor(x))
    block0 = to_np(keras.Model(predecessor.inputs, predecessor.get_layer(
        "Transformer-0-FeedForward-Norm").output)(x))
    mixed = theseus_model(predecessor, successor_layers=1, replace_rate=0.0)
    np.testing.assert_allclose(to_np(mixed(x, training=True)), expected, rtol=1e-5, atol=1e-6)
    # The successor starts as a copy of block 0 and replaces both blocks.
    successor = head_by_hand(predecessor, block0)
    np.testing.assert_allclose(to_np(mixed(x, training=False)), successor, rtol=1e-4, atol=1e-6)
    mixed.get_layer("Theseus-Choice-0").replace_rate.assign(1.0)
    np.testing.assert_allclose(to_np(mixed(x, training=True)), successor, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_np(theseus_successor(mixed)(x)), successor, rtol=1e-4, atol=1e-6)
    # p = 0.5: each batch is exactly one of the two, and both occur.
    mixed.get_layer("Theseus-Choice-0").replace_rate.assign(0.5)
    picks = set()
    for _ in range(12):
        out = to_np(mixed(x, training=True))
        picks.add("successor" if np.allclose(out, successor, atol=1e-5) else "predecessor")
        assert np.allclose(out, successor, atol=1e-5) or np.allclose(out, expected, atol=1e-5)
    assert picks == {"successor", "predecessor"}


def test_theseus_trains_the_successor_with_a_linear_schedule_and_exports_it(tmp_path):
    predecessor = tiny_classifier()
    frozen = [to_np(w).copy() for w in predecessor.get_layer("Transformer-1-FeedForward").weights]
    mixed = theseus_model(predecessor, successor_layers=1, replace_rate=0.5, seed=3)
    successor_before = [to_np(w).copy() for w in mixed.get_layer("Successor-0").weights]
    schedule = TheseusReplacementSchedule(base_rate=0.2, slope=0.25)
    assert [schedule.rate(t) for t in (0, 2, 4, 9)] == [0.2, 0.7, 1.0, 1.0]
    x, y = token_batch(batch=8)
    mixed.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  run_eagerly=True)  # two steps: tracing would cost more
    mixed.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[schedule])
    # Two batches: the second ran at 0.2 + 0.25.
    assert float(to_np(mixed.get_layer("Theseus-Choice-0").replace_rate)) == pytest.approx(0.45)
    for old, new in zip(frozen, predecessor.get_layer("Transformer-1-FeedForward").weights):
        np.testing.assert_array_equal(old, to_np(new))
    successor = theseus_successor(mixed)
    assert any(not np.array_equal(a, to_np(b))
               for a, b in zip(successor_before, mixed.get_layer("Successor-0").weights))
    assert successor.count_params() < predecessor.count_params()
    path = str(tmp_path / "successor.keras")
    successor.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_np(reloaded(x)), to_np(successor(x)), rtol=1e-5, atol=1e-6)


def test_theseus_keeps_the_padding_mask_of_a_token_level_head():
    # A tagger's output carries the padding mask, so Keras leaves padding out
    # of the loss; the mixed model and the successor must keep it (they once
    # dropped it, with a "will destroy the mask" warning).
    bert = tiny_bert(dropout_rate=0.0, attention_dropout_rate=0.0)
    tagger = TransformerModel(bert.inputs, keras.layers.Dense(2, name="Tagger")(bert.output))
    x, _ = token_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = theseus_model(tagger, successor_layers=1, replace_rate=0.0)
        successor = theseus_successor(mixed)
        outputs = {"predecessor": tagger(x), "mixed": mixed(x, training=True),
                   "mixed, inference": mixed(x), "successor": successor(x)}
    for name, output in outputs.items():
        mask = getattr(output, "_keras_mask", None)
        assert mask is not None, name
        np.testing.assert_array_equal(to_np(mask), x[0] != 0, err_msg=name)
    np.testing.assert_allclose(to_np(outputs["mixed"]), to_np(outputs["predecessor"]),
                               rtol=1e-5, atol=1e-6)


def test_theseus_rejects_a_successor_size_that_does_not_divide():
    with pytest.raises(ValueError, match="successor_layers=3 must divide"):
        theseus_model(tiny_classifier(), successor_layers=3)
    with pytest.raises(ValueError, match="replace_rate"):
        TheseusReplacementSchedule(base_rate=1.5)
    with pytest.raises(ValueError, match="not a theseus_model"):
        theseus_successor(tiny_classifier())


@pytest.mark.parametrize("module", ["kerasnlp4su.training.side_tuning",
                                    "kerasnlp4su.training.theseus"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), extraglobs={"keras": keras, "np": np},
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, result
