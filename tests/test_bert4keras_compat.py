"""Behaviour of the bert4keras names that have no bert4keras number to compare with.

Keras-3-only meanings (`K` and the training phase, `recompute_grad` as
rematerialisation, `search_layer` on Keras 3 graphs, lookahead from the
initial weights), the refusals that name the Keras 3 way, and the
stdlib-level snippets (`open`, `parallel_apply`, `WebServing`).
"""

import json
import os
import urllib.request

import keras
import numpy as np
import pytest

from backend_utils import gradient, to_np
from kerasnlp4su import backend as B
from kerasnlp4su import optimizers as O
from kerasnlp4su import snippets as S
from kerasnlp4su.backend import K


def test_K_values_variables_and_errors():
    v = K.variable(np.ones((2, 3)))
    assert K.dtype(v) == K.floatx() == "float32"
    K.set_value(v, np.full((2, 3), 2.0))
    np.testing.assert_array_equal(K.eval(v), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(K.get_value(K.update_add(v, np.ones((2, 3)))), 3.0)
    assert K.int_shape(v) == (2, 3) and K.ndim(v) == 2 and K.count_params(v) == 6
    assert K.epsilon() == keras.config.epsilon()
    np.testing.assert_allclose(to_np(K.softmax(K.constant([0.0, 0.0]))), [0.5, 0.5])
    np.testing.assert_array_equal(to_np(K.switch(K.constant([1.0, 0.0]) > 0.5, 1.0, -1.0)),
                                  [1.0, -1.0])
    with pytest.raises(RuntimeError, match="GradientTape|gradient_penalty"):
        K.gradients(None, [])
    with pytest.raises(RuntimeError, match="keras.Input"):
        K.placeholder(shape=(None, 3))
    with pytest.raises(AttributeError, match="K.no_such_function"):
        K.no_such_function  # noqa: B018


def test_K_function_runs_a_graph_slice():
    x = keras.Input((3,))
    y = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")(x)
    run = K.function([x], [y])
    np.testing.assert_allclose(run([np.ones((1, 3), "float32")])[0], [[3.0, 3.0]])
    with pytest.raises(ValueError, match="updates"):
        K.function([x], [y], updates=[1])


class _TrainOnlyNoise(keras.layers.Layer):
    """bert4keras's BERT-of-Theseus pattern: `K.in_train_phase` with no training argument."""

    def call(self, inputs):
        return K.in_train_phase(inputs + 1.0, inputs)


def test_K_in_train_phase_follows_the_enclosing_call():
    x = keras.Input((2,))
    model = keras.Model(x, _TrainOnlyNoise()(x))
    data = np.zeros((1, 2), "float32")
    np.testing.assert_array_equal(to_np(model(data, training=True)), [[1.0, 1.0]])
    np.testing.assert_array_equal(to_np(model(data, training=False)), [[0.0, 0.0]])
    np.testing.assert_array_equal(model.predict(data, verbose=0), [[0.0, 0.0]])
    assert K.learning_phase() == 0  # outside any call
    with pytest.raises(RuntimeError, match="training="):
        K.set_learning_phase(1)


def test_K_random_binomial_rate():
    draws = to_np(K.random_binomial((20000,), p=0.3, seed=1))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert abs(draws.mean() - 0.3) < 0.02


class _Doubler(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    @B.recompute_grad
    def call(self, inputs, training=None):
        return keras.ops.tanh(inputs * self.w) * (2.0 if training else 1.0)


def test_recompute_grad_keeps_outputs_and_gradients():
    layer = _Doubler()
    x = np.array([[0.3, -1.2, 2.0]], "float32")
    layer.build(x.shape)
    np.testing.assert_allclose(to_np(layer(x)), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(to_np(layer(x, training=True)), 2 * np.tanh(x), rtol=1e-6)
    grad = gradient(lambda t: keras.ops.sum(layer(t)), x)
    np.testing.assert_allclose(grad, 1 - np.tanh(x) ** 2, rtol=1e-5)
    # The functional graph builds through it and `fit` trains through it.
    inputs = keras.Input((3,))
    model = keras.Model(inputs, _Doubler()(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, np.zeros_like(x), verbose=0)
    assert not np.allclose(to_np(model.layers[-1].w), 1.0)
    assert B.do_recompute is False


def test_search_layer_walks_the_graph_upwards():
    inputs = keras.Input((4,), dtype="int32")
    h = keras.layers.Embedding(10, 3, name="Embedding-Token")(inputs)
    h = keras.layers.Dense(3, name="proj")(h)
    inner = keras.Model(inputs, h, name="encoder")
    out = keras.layers.Dense(2, name="head")(inner.output)
    assert B.search_layer(out, "Embedding-Token").name == "Embedding-Token"
    assert B.search_layer(out, "head").name == "head"
    assert B.search_layer(out, "missing") is None
    nested = keras.Model(inputs, keras.layers.Dense(1, name="top")(inner(inputs)))
    assert B.search_layer(nested.output, "Embedding-Token").name == "Embedding-Token"


def test_set_gelu_overrides_the_plain_gelu_for_models_and_layers():
    from kerasnlp4su.models import build_transformer_model

    config = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=16, max_position_embeddings=16, type_vocab_size=2)
    assert build_transformer_model(**config, return_keras_model=False).hidden_act == "gelu_tanh"
    try:
        B.set_gelu("erf")
        assert B.get_activation("gelu") is B.gelu_erf
        assert build_transformer_model(**config, return_keras_model=False).hidden_act == "gelu_erf"
        B.set_gelu("Tanh")
        assert B.get_activation("gelu") is B.gelu_tanh
    finally:
        B.set_gelu(None)
    assert B.get_activation("gelu") is B.gelu_erf
    with pytest.raises(ValueError, match="set_gelu"):
        B.set_gelu("exact")


def test_trivial_and_refused_keras2_names():
    assert B.is_tf_keras is False and S.is_py2 is False and S.basestring is str
    assert B.symbolic(len) is len and K.symbolic(len) is len
    assert B.strtobool("ON") == 1 and B.strtobool("no") == 0
    with pytest.raises(ValueError, match="truth value"):
        B.strtobool("maybe")
    with pytest.raises(NotImplementedError, match="custom_gradient"):
        B.graph_mode_decorator(len, 1)
    assert isinstance(B.get_available_gpus(), list)
    assert S.uniout is None  # `from ...snippets import uniout` is a no-op on Python 3
    assert B.custom_objects["gelu"] is B.gelu_erf
    assert O.custom_objects == {"Adam": O.Adam, "AdaFactor": O.AdaFactor}


def test_lookahead_matches_the_paper_from_initial_weights():
    w0 = np.array([1.0, -2.0, 0.5], "float32")
    grads = np.random.default_rng(3).normal(size=(7, 3)).astype("float32")
    v = keras.Variable(w0)
    opt = O.extend_with_lookahead(keras.optimizers.SGD)(learning_rate=0.1,
                                                        steps_per_slow_update=3,
                                                        slow_step_size=0.5)
    fast, slow = w0.astype("float64"), w0.astype("float64")
    for t, g in enumerate(grads, 1):
        opt.apply([keras.ops.convert_to_tensor(g)], [v])
        fast = fast - 0.1 * g
        if t % 3 == 0:
            slow = slow + 0.5 * (fast - slow)
            fast = slow.copy()
        np.testing.assert_allclose(to_np(v), fast, rtol=1e-5, err_msg=f"step {t}")


@pytest.mark.parametrize("make", [
    lambda: O.AdaFactor(learning_rate=None, beta1=0.9, exclude_from_parameter_scale=["bias"]),
    lambda: O.Adam(learning_rate=1e-3, bias_correction=False),
    lambda: O.extend_with_lookahead(O.extend_with_layer_adaptation(O.Adam))(
        learning_rate=1e-3, exclude_from_layer_adaptation=["bias"]),
    lambda: O.extend_with_lazy_optimization(O.AdaFactor)(
        learning_rate=1e-3, include_in_lazy_optimization=["embeddings"]),
], ids=["adafactor", "adam", "lookahead_lamb", "lazy_adafactor"])
def test_new_optimizers_fit_compiled_and_round_trip(make, tmp_path):
    inputs = keras.Input((4,), dtype="int32")
    h = keras.layers.Embedding(12, 6)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=make(), loss="mse", jit_compile=True)
    x = np.random.default_rng(0).integers(0, 12, (8, 4))
    before = [to_np(w).copy() for w in model.weights]
    model.fit(x, np.ones((8, 1), "float32"), batch_size=4, epochs=1, verbose=0)
    assert any(not np.allclose(a, to_np(b)) for a, b in zip(before, model.weights))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer).__name__ == type(model.optimizer).__name__
    assert loaded.optimizer.get_config() == model.optimizer.get_config()


def test_export_to_custom_objects_names_and_registers():
    @O.export_to_custom_objects
    def extend_with_marker(base):
        class Marked(base):
            marked = True

        return Marked

    Marked = extend_with_marker(keras.optimizers.SGD, "SGDMarkedForTest")
    assert Marked is extend_with_marker(keras.optimizers.SGD, "SGDMarkedForTest")
    assert Marked.__name__ == "SGDMarkedForTest" and Marked.marked
    assert keras.saving.get_registered_object("kerasnlp4su>SGDMarkedForTest") is Marked


def test_snippets_small_helpers():
    class Model:
        @S.insert_arguments(rate=0.1, name="x")
        @S.delete_arguments("dropout")
        def __init__(self, size=1):
            self.size = size

    m = Model(size=3, rate=0.5)
    assert (m.size, m.rate, m.name) == (3, 0.5, "x")
    with pytest.raises(TypeError, match="unexpected keyword argument 'dropout'"):
        Model(dropout=0.1)
    a = np.array([1.0])
    assert S.is_one_of(a, [np.array([1.0]), a]) and not S.is_one_of(a, [np.array([1.0])])
    assert S.convert_to_unicode("中".encode()) == "中" and S.convert_to_str("x") == "x"
    np.testing.assert_allclose(S.softmax(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])


def test_open_indexes_lines_and_caches_offsets(tmp_path):
    path, cache = tmp_path / "data.txt", tmp_path / "data.index.json"
    lines = ["第一行\n", "second\n", "\n", "最后"]
    path.write_text("".join(lines), encoding="utf-8")
    with S.open(str(path), encoding="utf-8", indexable=str(cache)) as f:
        assert len(f) == 4 and f[1] == "second\n" and f[3] == "最后" and f[0] == lines[0]
    assert json.loads(cache.read_text()) == [0, 10, 17, 18]
    with S.open(str(path), encoding="utf-8", indexable=str(cache)) as f:
        assert f[2] == "\n"
        f.seek(0)
        assert list(f) == lines
    with S.open(str(tmp_path / "out.txt"), "w", encoding="utf-8") as f:
        f.write("字".encode())
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "字"


def _square_or_fail(x):
    if x == 5:
        raise ValueError("five")
    return x * x


@pytest.mark.parametrize("dummy", [True, False], ids=["threads", "processes"])
def test_parallel_apply_order_and_errors(dummy):
    items = list(range(20))
    ordered = S.parallel_apply(abs, [-i for i in items], 3, 4, dummy=dummy, unordered=False)
    assert ordered == items
    unordered = S.parallel_apply(abs, [-i for i in items], 3, 4, dummy=dummy)
    assert sorted(unordered) == items
    pairs = list(S.parallel_apply_generator(abs, items, 2, 3, dummy=dummy))
    assert sorted(pairs) == [(i, i) for i in items]
    seen = []
    assert S.parallel_apply(abs, items, 2, 3, callback=seen.append, dummy=dummy) is None
    assert sorted(seen) == items
    with pytest.raises(RuntimeError, match="item 5") as error:
        S.parallel_apply(_square_or_fail, range(8), 2, 3, dummy=dummy)
    assert "five" in str(error.value.__cause__)


def test_web_serving_answers_json():
    web = S.WebServing(host="127.0.0.1", port=0)
    web.route("/echo", lambda text, n=1: text * n, {"text": (None, True), "n": (int, False)})
    web.route("/fail", lambda: 1 / 0, {})
    web.start(block=False)
    try:
        def get(query):
            url = f"http://127.0.0.1:{web.port}{query}"
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read().decode("utf-8"))

        assert get("/echo?text=%E4%BD%A0&n=2") == {"code": 0, "desc": "succeeded", "data": "你你"}
        assert get("/echo")["code"] == 1
        assert get("/fail") == {"code": 2, "desc": "division by zero", "data": {}}
    finally:
        web.stop()


def test_tokenizers_reexports_the_snippets_bert4keras_did():
    from kerasnlp4su import tokenizers as T

    for name in ("convert_to_unicode", "is_py2", "is_string", "lowercase_and_normalize",
                 "open", "truncate_sequences"):
        assert getattr(T, name) is getattr(S, name)


def test_sequence_masking_keeps_a_fully_masked_row_finite():
    scores = keras.ops.zeros((1, 3, 3))
    masked = B.sequence_masking(scores, keras.ops.zeros((1, 3)), "-inf", -1)
    probs = to_np(keras.ops.softmax(masked))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs, 1 / 3)
    assert os.path.basename(B.__file__) == "backend.py"


def test_docstring_examples_run():
    import doctest
    import importlib

    from kerasnlp4su import optimizers

    names = {n: getattr(optimizers, n) for n in dir(optimizers) if not n.startswith("_")}
    for module in ("kerasnlp4su.backend", "kerasnlp4su.legacy_backend", "kerasnlp4su.parallel",
                   "kerasnlp4su.serving", "kerasnlp4su.optimizers.adam",
                   "kerasnlp4su.optimizers.adafactor", "kerasnlp4su.optimizers.update_rules",
                   "kerasnlp4su.optimizers._common"):
        result = doctest.testmod(importlib.import_module(module),
                                 extraglobs={"keras": keras, "np": np, **names},
                                 optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module
        assert result.attempted > 0, module
