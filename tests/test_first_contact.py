"""What a new user hits first (issue 26): list inputs, bad ids and lengths, empty batches, progress bars.

Every error is checked by its exact first line: the project's message must come
first under `predict`, `fit`, `evaluate`, the `*_on_batch` methods and direct
calls, for NumPy/list inputs (checked before the graph) and for datasets
(the in-graph check's error re-raised).
"""

import io
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from first_contact_messages import CKPT, CONFIG, POSITIONS, SEGMENTS, VOCAB, ids_message, length_message

from kerasnlp4su.layers import PositionEmbedding
from kerasnlp4su.models import TransformerModel, build_transformer_model
from kerasnlp4su.models.transformer_model import progress_verbosity

def first_line(excinfo):
    return str(excinfo.value).splitlines()[0]


@pytest.fixture(scope="module")
def mlm():
    model = build_transformer_model(CONFIG, CKPT, with_mlm=True)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")  # sgd: the cheapest to trace
    return model


def ids(*rows):
    return np.array(rows, "int32")


GOOD = [[[2, 50, 3]], [[0, 0, 1]]]  # a batch of one, as nested lists
BAD_INPUTS = {
    "token id past the vocabulary": (
        [ids([2, VOCAB, 3]), ids([0, 0, 0])], ids_message("Embedding-Token", VOCAB, VOCAB)),
    "negative token id": (
        [[[2, -1, 3]], [[0, 0, 0]]], ids_message("Embedding-Token", VOCAB, -1)),
    "segment id past its table": (
        [ids([2, 5, 3]), ids([0, 2, 0])], ids_message("Embedding-Segment", SEGMENTS, 2)),
    "sequence longer than the position table": (
        [np.full((1, POSITIONS + 1), 5, "int32"), np.zeros((1, POSITIONS + 1), "int32")],
        length_message(POSITIONS + 1)),
    "one input for two": (
        ids([2, 5, 3]), "bert expects 2 inputs [Input-Token, Input-Segment], got one array of "
                        "shape (1, 3); pass a list in that order"),
    "three inputs for two": (
        [ids([2, 5, 3])] * 3, "bert expects 2 inputs [Input-Token, Input-Segment], got 3 inputs; "
                              "pass a list in that order"),
    "a bare sequence, not a batch": (
        [[2, 5, 3], [0, 0, 0]], "Input-Token: expected a batch of rank 2 (batch, length), got "
                                "shape (3,); wrap a single sequence in a list: [ids]"),
    "sequences of length 0": (
        [np.zeros((2, 0), "int32")] * 2, "Input-Token: the sequences have length 0; every sequence "
                                         "needs at least one token (Tokenizer.encode gives [CLS] [SEP])"),
    "ragged rows": (
        [[[2, 5, 3], [2, 3]], [[0, 0, 0], [0, 0]]],
        "Input-Token: the sequences have different lengths [2, 3]; pad them to one length "
        "(kerasnlp4su.snippets.sequence_padding)"),
    "fractional ids": (
        [np.array([[2, 5.5, 3]]), ids([0, 0, 0])],
        "Input-Token: ids must be integers, got float64 values such as 5.5"),
    "token and segment shapes differ": (
        [ids([2, 5, 3]), ids([0, 0])], "Input-Segment has shape (1, 2) but Input-Token has shape "
                                       "(1, 3); they must have the same shape"),
}
METHODS = {
    "predict": lambda m, x: m.predict(x, verbose=0),
    "predict_on_batch": lambda m, x: m.predict_on_batch(x),
    "fit": lambda m, x: m.fit(x, np.zeros((1, 3)), verbose=0),
    "evaluate": lambda m, x: m.evaluate(x, np.zeros((1, 3)), verbose=0),
    "train_on_batch": lambda m, x: m.train_on_batch(x, np.zeros((1, 3))),
    "test_on_batch": lambda m, x: m.test_on_batch(x, np.zeros((1, 3))),
    "call": lambda m, x: m(x),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_numpy_and_list_inputs_fail_with_our_first_line(mlm, case, method):
    x, message = BAD_INPUTS[case]
    with pytest.raises(ValueError) as excinfo:
        METHODS[method](mlm, x)
    assert first_line(excinfo) == message


def test_nested_lists_are_accepted_as_in_bert4keras(mlm):
    arrays = [np.asarray(part, "int32") for part in GOOD]
    expected = mlm.predict(arrays, verbose=0)
    assert expected.shape == (1, 3, VOCAB)
    np.testing.assert_array_equal(mlm.predict(GOOD, verbose=0), expected)
    np.testing.assert_array_equal(mlm.predict(tuple(GOOD), verbose=0), expected)  # not read as (x, y)
    np.testing.assert_allclose(mlm.predict_on_batch(GOOD), expected, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mlm(GOOD)), expected, atol=1e-6)
    by_name = {"Input-Token": GOOD[0], "Input-Segment": GOOD[1]}
    np.testing.assert_array_equal(mlm.predict(by_name, verbose=0), expected)


def test_a_one_input_model_takes_an_array_a_list_or_one_sequence_quietly():
    # GPT-style models have one input: bert4keras users pass the ids array itself.
    # Keras warned "The structure of `inputs` doesn't match" for a bare array.
    model = build_transformer_model(CONFIG, CKPT, segment_vocab_size=0)
    tokens = ids([2, 50, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = keras.ops.convert_to_numpy(model(tokens))
        for x in ([tokens], tokens.tolist(), [tokens.tolist()]):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, atol=1e-6)
        np.testing.assert_allclose(model.predict_on_batch(tokens), expected, atol=1e-6)


def test_fit_and_evaluate_take_lists_and_mask_padding(mlm):
    """The MLM loss skips padding (token id 0), as bert4keras's masks did: checked against NumPy."""
    x = [[[2, 50, 3, 0, 0]], [[0, 0, 0, 0, 0]]]
    y = [[7, 8, 9, 100, 200]]  # labels under padding must not count
    probs = mlm.predict(x, verbose=0)[0]
    expected = -np.mean(np.log([probs[i, label] for i, label in enumerate(y[0][:3])]))
    np.testing.assert_allclose(mlm.evaluate(x, y, verbose=0), expected, rtol=1e-5)
    np.testing.assert_allclose(mlm.test_on_batch(x, y), expected, rtol=1e-5)
    history = mlm.fit(x, y, verbose=0, validation_data=(x, y)).history  # training: dropout on
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])
    assert np.isfinite(mlm.train_on_batch(x, y))


def dataset(tokens, segments, labels=None):
    x = (np.asarray(tokens, "int32"), np.asarray(segments, "int32"))
    return tf.data.Dataset.from_tensor_slices((x,) if labels is None else (x, labels)).batch(1)


@pytest.mark.parametrize("method", ["predict", "fit", "evaluate"])
def test_bad_ids_in_a_dataset_fail_with_our_first_line(mlm, method):
    data = dataset([[2, VOCAB + 5, 3]], [[0, 0, 0]], labels=np.zeros((1, 3)))
    with pytest.raises(ValueError) as excinfo:
        getattr(mlm, method)(data, verbose=0, **({"shuffle": False} if method == "fit" else {}))
    assert first_line(excinfo) == ids_message("Embedding-Token", VOCAB)


def test_bad_segments_lengths_and_counts_in_generators_fail_with_our_first_line(mlm):
    def batches(tokens, segments):
        while True:
            yield (np.asarray(tokens, "int32"), np.asarray(segments, "int32")),

    with pytest.raises(ValueError) as excinfo:
        mlm.predict(batches([[2, 5, 3]], [[0, 0, 7]]), steps=1, verbose=0)
    assert first_line(excinfo) == ids_message("Embedding-Segment", SEGMENTS)
    # A length the graph only learns at run time: the in-graph assertion's error, rewritten.
    spec = (tf.TensorSpec((None, None), tf.int32),) * 2
    long = tf.data.Dataset.from_generator(
        lambda: batches(np.ones((1, POSITIONS + 2)), np.zeros((1, POSITIONS + 2))),
        output_signature=(spec,))
    with pytest.raises(ValueError) as excinfo:
        mlm.predict(long, steps=1, verbose=0)
    assert first_line(excinfo) == length_message()
    one = tf.data.Dataset.from_tensor_slices(((np.ones((1, 3), "int32"),),)).batch(1)
    with pytest.raises(ValueError) as excinfo:
        mlm.predict(one, verbose=0)
    assert first_line(excinfo) == ("bert expects 2 inputs [Input-Token, Input-Segment], got 1 inputs; "
                                   "pass a list in that order")


def test_an_empty_batch_predicts_empty_outputs_of_the_right_shape():
    model = build_transformer_model(CONFIG, CKPT, with_mlm=True, with_pool=True)
    empty = [np.zeros((0, 4), "int32")] * 2
    pooled, probs = model.predict(empty)
    assert pooled.shape == (0, 64) and probs.shape == (0, 4, VOCAB)
    assert probs.dtype == np.float32
    assert keras.ops.shape(model(empty)[1]) == (0, 4, VOCAB)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_an_empty_batch_cannot_be_trained_or_evaluated(mlm, method):
    empty = [np.zeros((0, 3), "int32")] * 2
    with pytest.raises(ValueError) as excinfo:
        getattr(mlm, method)(empty, np.zeros((0, 3)))
    assert first_line(excinfo) == (f"bert.{method}: the batch is empty (x holds 0 samples); "
                                   "there is nothing to compute a loss on")


def test_empty_keep_tokens_is_refused_by_name():
    with pytest.raises(ValueError) as excinfo:
        build_transformer_model(CONFIG, CKPT, keep_tokens=[], with_mlm=True)
    assert first_line(excinfo) == (f"config {CONFIG!r}: 'keep_tokens' is empty; it must list the ids "
                                   "of the vocabulary rows to keep (at least one)")


def test_saved_models_load_as_the_same_checking_class(mlm, tmp_path):
    expected = mlm.predict(GOOD, verbose=0)
    mlm.save(tmp_path / "mlm.keras")
    loaded = keras.models.load_model(tmp_path / "mlm.keras", safe_mode=True)
    assert type(loaded) is TransformerModel
    np.testing.assert_array_equal(loaded.predict(GOOD, verbose=0), expected)
    with pytest.raises(ValueError) as excinfo:
        loaded.predict([[[2, VOCAB, 3]], [[0, 0, 0]]])
    assert first_line(excinfo) == ids_message("Embedding-Token", VOCAB, VOCAB)
    mlm.save_weights(tmp_path / "mlm.weights.h5")
    fresh = build_transformer_model(CONFIG, None, with_mlm=True)
    fresh.load_weights(tmp_path / "mlm.weights.h5")
    np.testing.assert_array_equal(fresh.predict(GOOD, verbose=0), expected)


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream, verbose, shown", [
    (io.StringIO, "auto", False), (Terminal, "auto", True), (io.StringIO, 1, True),
    (Terminal, 0, False),
])
def test_predict_draws_progress_bars_only_on_a_terminal(mlm, monkeypatch, stream, verbose, shown):
    out = stream()
    monkeypatch.setattr(sys, "stdout", out)
    mlm.predict(GOOD, verbose=verbose)
    mlm.evaluate(GOOD, [[1, 1, 1]], verbose=verbose)
    assert ("1/1" in out.getvalue()) == shown, repr(out.getvalue())


def test_fit_prints_one_plain_line_per_epoch_off_a_terminal(mlm, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    mlm.fit(GOOD, [[1, 1, 1]], epochs=2)
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.startswith("1/1 - ")] != [], lines
    assert "\b" not in out.getvalue() and "\r" not in out.getvalue()
    assert progress_verbosity("auto", 2) == 2 and progress_verbosity(1, 2) == 1


def test_docstring_examples():
    import doctest

    from kerasnlp4su.layers import embeddings
    from kerasnlp4su.models import transformer_model

    result = doctest.testmod(transformer_model)
    assert result.attempted and not result.failed
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(embeddings.ids_out_of_range_message):
        runner.run(test)
    assert runner.tries and not runner.failures


@keras.saving.register_keras_serializable(package="tests")
class CountCalls(keras.layers.Layer):
    """Identity that counts the traces of a training step it is called in (a traced step runs Python
    only while tracing; Keras's shape-only build pass calls it with training=False)."""

    calls = 0

    def call(self, x, training=None):
        if training:
            type(self).calls += 1
        return x


@pytest.mark.parametrize("cls", [keras.Model, TransformerModel])
def test_first_training_step_is_traced_once(cls):
    # A one-layer model: the count does not depend on depth, the tracing time does.
    bert = build_transformer_model(vocab_size=60, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, max_position_embeddings=8, type_vocab_size=2,
                                   with_pool=True)
    probs = keras.layers.Dense(2, activation="softmax")(CountCalls()(bert.output))
    model = cls(bert.inputs, probs)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = [ids([2, 50, 3], [2, 51, 3]), ids([0, 0, 0], [0, 0, 0])], ids(0, 1)
    CountCalls.calls = 0
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    # Keras alone creates the optimizer's and the accuracy's variables inside the first traced step,
    # which TensorFlow then traces a second time; TransformerModel builds them first, symbolically.
    assert CountCalls.calls == (1 if cls is TransformerModel else 2), CountCalls.calls


def test_the_position_lookup_waits_for_the_length_check_in_a_graph():
    # Without the dependency TensorFlow's executor chose which failing op reported first, and now
    # and then `predict` on a too-long batch died in the gather with a 50-line trace.
    layer = PositionEmbedding(input_dim=8, output_dim=4)
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec((None, None, 4), tf.float32)).graph
    gathers = [op for op in graph.get_operations() if op.type in ("ResourceGather", "GatherV2")]
    assert gathers, [op.type for op in graph.get_operations()]
    for gather in gathers:
        seen, todo = set(), [gather]
        while todo:
            op = todo.pop()
            for parent in [t.op for t in op.inputs] + list(op.control_inputs):
                if parent.name not in seen:
                    seen.add(parent.name)
                    todo.append(parent)
        assert any(graph.get_operation_by_name(name).type == "Assert" for name in seen), gather.name
