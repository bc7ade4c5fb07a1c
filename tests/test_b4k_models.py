"""bert4keras's build options and builder interface, against bert4keras 0.11.5 and NumPy.

bert4keras runs once, in the shared bert4keras child (`tests/b4k_models_reference.py`, on
tf-keras with `TF_KERAS=1 TF_USE_LEGACY_KERAS=1`), over every case below.
"""

import os
import pickle

import keras
import numpy as np
import pytest
from backend_utils import forward
from bert4keras_runner import run_reference

from kerasnlp4su.layers import PositionEmbedding, TokenSelect
from kerasnlp4su.models import BERT, build_transformer_model

HERE = os.path.dirname(__file__)
CONFIG = os.path.join(HERE, "..", "checkpoints", "tiny_bert", "bert_config.json")
CKPT = os.path.join(HERE, "..", "checkpoints", "tiny_bert", "bert_model.ckpt")
RNG = np.random.default_rng(0)


def _ids(length, batch=2, pad=3):
    ids = RNG.integers(5, 2000, size=(batch, length))
    ids[:, 0] = 2
    ids[1, length - pad:] = 0  # one padded row
    segments = np.zeros_like(ids)
    segments[:, length // 2:] = 1
    segments[ids == 0] = 0
    return ids, segments


TOKENS, SEGMENTS = _ids(9)
LONG_TOKENS, LONG_SEGMENTS = _ids(300, pad=40)  # longer than the 128-row position table
POSITIONS = np.array([[0, 1, 2, 3, 100, 6, 7, 127, 5], [9, 8, 7, 6, 5, 4, 3, 2, 1]])
SAME = {"hidden_act": "gelu_tanh"}  # bert4keras's plain 'gelu' is erf; BERT's official is tanh

# name -> (build_transformer_model kwargs shared by both libraries, inputs)
CASES = {
    "hierarchical": (dict(hierarchical_position=True), [LONG_TOKENS, LONG_SEGMENTS]),
    "hierarchical_alpha": (dict(hierarchical_position=0.3), [LONG_TOKENS, LONG_SEGMENTS]),
    "custom_positions": (dict(custom_position_ids=True), [TOKENS, SEGMENTS, POSITIONS]),
    "custom_hierarchical": (dict(custom_position_ids=True, hierarchical_position=True),
                            [TOKENS, SEGMENTS, POSITIONS * 20]),
    "realformer": (dict(residual_attention_scores=True, num_hidden_layers=2),
                   [TOKENS, SEGMENTS]),
    "no_segments": (dict(segment_vocab_size=0, with_pool="linear", with_mlm="linear"),
                    [TOKENS]),
    "head_activations": (dict(with_pool="sigmoid", with_mlm="sigmoid"), [TOKENS, SEGMENTS]),
    "autoresize": (dict(autoresize_weights=True, hidden_size=128, intermediate_size=192,
                        num_attention_heads=8, with_mlm=True), [TOKENS, SEGMENTS]),
    "autoresize_relu": (dict(autoresize_weights=True, hidden_size=96, intermediate_size=256,
                             hidden_act="relu"), [TOKENS, SEGMENTS]),
    "prefix": (dict(prefix="Successor-", with_pool=True), [TOKENS, SEGMENTS]),
}


@pytest.fixture(scope="module")
def bert4keras_outputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("b4k_models")
    cases = []
    for kwargs, inputs in CASES.values():
        kwargs = dict(SAME, **kwargs)
        cases.append({"kwargs": dict(kwargs, config_path=CONFIG, checkpoint_path=CKPT),
                      "inputs": inputs})
    with open(directory / "cases.pkl", "wb") as f:
        pickle.dump(cases, f)
    run_reference(os.path.join(HERE, "b4k_models_reference.py"), directory / "cases.pkl",
                  directory / "out.pkl")
    with open(directory / "out.pkl", "rb") as f:
        return dict(zip(CASES, pickle.load(f)))


@pytest.mark.parametrize("case", list(CASES))
def test_build_option_matches_bert4keras(case, bert4keras_outputs):
    kwargs, inputs = CASES[case]
    expected = bert4keras_outputs[case]
    assert not isinstance(expected, str), expected
    model = build_transformer_model(CONFIG, CKPT, **dict(SAME, **kwargs))
    got = forward(model, inputs)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_realformer_unilm_matches_numpy():
    # bert4keras's RealFormer cannot add its boolean LM/UniLM mask to the scores
    # (TypeError in its Add layer), so a NumPy re-derivation is the reference:
    # layer l adds layer l-1's scaled scores (before bias) to its own bias.
    import tensorflow as tf

    from reference import gelu_tanh, layer_norm, softmax

    get = tf.train.load_checkpoint(CKPT).get_tensor
    model = build_transformer_model(CONFIG, CKPT, application="unilm",
                                    residual_attention_scores=True, **SAME)
    probs = forward(model, [TOKENS, SEGMENTS])

    def dense(x, name):
        return x @ get(f"{name}/kernel") + get(f"{name}/bias")

    e = "bert/embeddings"
    x = (get(f"{e}/word_embeddings")[TOKENS] + get(f"{e}/token_type_embeddings")[SEGMENTS]
         + get(f"{e}/position_embeddings")[:TOKENS.shape[1]][None])
    x = layer_norm(x, get(f"{e}/LayerNorm/gamma"), get(f"{e}/LayerNorm/beta"))
    order = np.cumsum(SEGMENTS, axis=1)
    keep = (TOKENS != 0)[:, None, None, :] & (order[:, None, :] <= order[:, :, None])[:, None]
    bias, previous = np.where(keep, 0.0, -1e9), 0.0
    b, n, _ = x.shape
    for i in range(2):
        p = f"bert/encoder/layer_{i}"
        q, k, v = (dense(x, f"{p}/attention/self/{part}").reshape(b, n, 4, -1)
                   for part in ("query", "key", "value"))
        scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
        ctx = np.einsum("bhqk,bkhd->bqhd", softmax(scores + bias + previous), v).reshape(b, n, -1)
        previous = scores
        x = layer_norm(x + dense(ctx, f"{p}/attention/output/dense"),
                       get(f"{p}/attention/output/LayerNorm/gamma"),
                       get(f"{p}/attention/output/LayerNorm/beta"))
        h = dense(gelu_tanh(dense(x, f"{p}/intermediate/dense")), f"{p}/output/dense")
        x = layer_norm(x + h, get(f"{p}/output/LayerNorm/gamma"), get(f"{p}/output/LayerNorm/beta"))
    t = "cls/predictions/transform"
    h = layer_norm(gelu_tanh(dense(x, f"{t}/dense")), get(f"{t}/LayerNorm/gamma"),
                   get(f"{t}/LayerNorm/beta"))
    logits = h @ get(f"{e}/word_embeddings").T + get("cls/predictions/output_bias")
    np.testing.assert_allclose(probs, softmax(logits), atol=1e-5)


def test_prefix_renames_layers_and_layers_are_shared():
    plain = build_transformer_model(CONFIG, CKPT, **SAME)
    first = build_transformer_model(CONFIG, CKPT, prefix="A-", return_keras_model=False, **SAME)
    assert all(layer.name.startswith("A-") for layer in first.model.layers)
    np.testing.assert_allclose(forward(first.model, [TOKENS, SEGMENTS]),
                               forward(plain, [TOKENS, SEGMENTS]), atol=1e-6)
    # layers= (bert4keras): a second builder reuses the first one's layers by name.
    second = BERT(**{**first_config(), "prefix": "A-", "layers": first.layers})
    second.build()
    assert {id(w) for w in second.model.weights} <= {id(w) for w in first.model.weights}
    np.testing.assert_allclose(forward(second.model, [TOKENS, SEGMENTS]),
                               forward(plain, [TOKENS, SEGMENTS]), atol=1e-6)


def first_config():
    return dict(vocab_size=2646, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=128, max_position=128, hidden_act="gelu_tanh")


def test_ignore_invalid_weights_skips_only_absent_variables():
    import tensorflow as tf

    with pytest.raises(Exception, match="missing from the checkpoint"):
        build_transformer_model(CONFIG, CKPT, num_hidden_layers=3)
    with pytest.warns(UserWarning, match="ignore_invalid_weights: 16 variable"):
        model = build_transformer_model(CONFIG, CKPT, num_hidden_layers=3,
                                        ignore_invalid_weights=True)
    kernel = model.get_layer("Transformer-1-FeedForward").intermediate.kernel
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(kernel),
        tf.train.load_checkpoint(CKPT).get_tensor("bert/encoder/layer_1/intermediate/dense/kernel"))
    # A shape mismatch still raises (bert4keras too, unless autoresize_weights).
    with pytest.raises(Exception, match="shape mismatch"):
        build_transformer_model(CONFIG, CKPT, hidden_size=128, num_attention_heads=8,
                                ignore_invalid_weights=True)


def test_custom_positions_and_hierarchical_limits():
    with pytest.raises(ValueError, match=r"Embedding-Position: ids must lie in \[0, 128\)"):
        build_transformer_model(CONFIG, CKPT, custom_position_ids=True).predict(
            [TOKENS, SEGMENTS, POSITIONS * 5], verbose=0)
    with pytest.raises(ValueError, match="sequence length 300 exceeds the maximum position 128"):
        build_transformer_model(CONFIG, CKPT).predict([LONG_TOKENS, LONG_SEGMENTS], verbose=0)
    layer = PositionEmbedding(4, 2, hierarchical=True, embeddings_initializer="uniform")
    out = keras.ops.convert_to_numpy(layer(np.zeros((1, 16, 2), "float32")))
    table = keras.ops.convert_to_numpy(layer.embeddings)
    u = (table - 0.4 * table[:1]) / 0.6
    expected = np.stack([0.4 * u[p // 4] + 0.6 * u[p % 4] for p in range(16)])
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    np.testing.assert_allclose(out[0, :4], table, atol=1e-6)  # trained rows unchanged


def test_custom_position_model_saves_and_loads(tmp_path):
    model = build_transformer_model(CONFIG, CKPT, custom_position_ids=True,
                                    hierarchical_position=True)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = [TOKENS, SEGMENTS, POSITIONS * 20]
    np.testing.assert_allclose(forward(loaded, inputs), forward(model, inputs),
                               atol=1e-6)


# The example's classifier is a plain keras.Model applied to masked hidden
# states; Keras 3 sub-models drop the mask with this warning (it reads the
# first token, so nothing changes). That is the user's code, not ours.
@pytest.mark.filterwarnings("ignore:Layer 'functional' .* mask attached:UserWarning")
def test_builder_interface_runs_bert_of_theseus():
    # bert4keras's examples/task_iflytek_bert_of_theseus.py, its model code as written
    # there (its Lambda(lambda x: x[:, 0]) is TokenSelect).
    predecessor = build_transformer_model(CONFIG, CKPT, return_keras_model=False,
                                          prefix="Predecessor-")
    successor = build_transformer_model(CONFIG, CKPT, return_keras_model=False,
                                        num_hidden_layers=1, prefix="Successor-")
    x_in = keras.Input(shape=predecessor.output.shape[1:])
    x = keras.layers.Dense(3, activation="softmax")(TokenSelect()(x_in))
    classifier = keras.Model(x_in, x)
    predecessor_model = keras.Model(predecessor.inputs, classifier(predecessor.output))
    successor_model = keras.Model(successor.inputs, classifier(successor.output))
    inputs = predecessor.inputs
    outputs = successor.apply_embeddings(inputs)
    for index in range(successor.num_hidden_layers):
        outputs = successor.apply_main_layers(outputs, index)
    theseus = keras.Model(inputs, classifier(outputs))
    # The successor's blocks on the predecessor's inputs = the successor model.
    np.testing.assert_allclose(forward(theseus, [TOKENS, SEGMENTS]),
                               forward(successor_model, [TOKENS, SEGMENTS]), atol=1e-6)
    chained = predecessor.apply_embeddings(inputs)
    for index in range(predecessor.num_hidden_layers):
        chained = predecessor.apply_main_layers(chained, index)
    np.testing.assert_allclose(
        forward(keras.Model(inputs, classifier(predecessor.apply_final_layers(chained))), [TOKENS, SEGMENTS]),
        forward(predecessor_model, [TOKENS, SEGMENTS]), atol=1e-6)
    assert predecessor.input is predecessor.inputs[0] or predecessor.input == predecessor.inputs


def test_additional_input_layers_conditional_lm():
    # bert4keras's examples/task_conditional_language_model.py: the condition is
    # computed from an extra input, which reaches the model as an additional input.
    c_in = keras.Input(shape=(1,))
    c = keras.layers.Reshape((16,))(keras.layers.Embedding(2, 16)(c_in))
    model = build_transformer_model(CONFIG, CKPT, application="lm", layer_norm_cond=c,
                                     additional_input_layers=c_in)
    assert model.inputs[2] is c_in and len(model.inputs) == 3
    probs = forward(model, [TOKENS, SEGMENTS, np.array([[0], [1]])])
    assert probs.shape == (2, 9, 2646)
    # The conditional LayerNorm starts as the plain one (zero projections), as in bert4keras.
    plain = build_transformer_model(CONFIG, CKPT, application="lm")
    np.testing.assert_allclose(probs, forward(plain, [TOKENS, SEGMENTS]), atol=1e-5)


# ------------------------------------------------ bert4keras's `models` names
# Family classes other branches add (NEZHA/GAU-alpha, GPT, T5); the lead
# empties this list after merging them.
PENDING_FAMILY_CLASSES = []
# snippets/backend helpers the b4k-names-core branch adds; models re-exports
# them lazily. The lead empties this list after merging that branch.
PENDING_HELPER_NAMES = []


def bert4keras_public_names(module):
    """Public top-level names of an installed bert4keras module, read with `ast` (not imported)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("bert4keras")
    if spec is None:
        pytest.skip("bert4keras is not installed")
    path = os.path.join(os.path.dirname(spec.origin), f"{module}.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    return sorted(n for n in names if not n.startswith("_"))


def test_every_bert4keras_models_name_imports():
    import importlib

    models = importlib.import_module("kerasnlp4su.models")
    names = bert4keras_public_names("models")
    assert {"LM_Mask", "extend_with_language_model", "data_parallel", "json"} <= set(names)
    missing = [n for n in names if n not in PENDING_FAMILY_CLASSES + PENDING_HELPER_NAMES
               and not hasattr(models, n)]
    assert not missing, f"bert4keras models names missing from kerasnlp4su.models: {missing}"
    now_present = [n for n in PENDING_FAMILY_CLASSES + PENDING_HELPER_NAMES if hasattr(models, n)]
    assert not now_present, f"merged: remove {now_present} from the PENDING lists"


def test_bert4keras_models_aliases():
    from kerasnlp4su import models, snippets

    assert models.ALBERT_Unshared is models.ALBERTUnshared
    assert models.Model is keras.Model
    assert models.orthogonally_resize is snippets.orthogonally_resize
    assert models.is_string is snippets.is_string
    with pytest.raises(NotImplementedError, match="keras.distribution"):
        models.data_parallel(None)


def test_orthogonally_resize_matches_numpy_rederivation():
    from kerasnlp4su.snippets import orthogonally_resize

    a = RNG.normal(size=(4, 6))
    b = orthogonally_resize(a, (10, 3))
    # Rows grow by repeating pairs of rows ([r0 r1 r0 r1 r0 r1 r2 r3 ...]), columns are cut.
    rows = np.concatenate([a[0:2], a[0:2], a[0:2], a[2:4], a[2:4], a[2:4]])[:10, :3]
    np.testing.assert_allclose(b, rows / np.linalg.norm(rows) * np.linalg.norm(a))
    with pytest.raises(ValueError, match="axis 0 has size 3"):
        orthogonally_resize(RNG.normal(size=(3, 2)), (6, 2))


@pytest.mark.parametrize("factory, application", [("extend_with_language_model", "lm"),
                                                  ("extend_with_unified_language_model",
                                                   "unilm")])
def test_extend_with_language_model_factories(factory, application):
    from kerasnlp4su import models

    cls = getattr(models, factory)(BERT)
    assert issubclass(cls, BERT)
    model = build_transformer_model(CONFIG, CKPT, model=cls)
    expected = build_transformer_model(CONFIG, CKPT, application=application)
    np.testing.assert_allclose(forward(model, [TOKENS, SEGMENTS]),
                               forward(expected, [TOKENS, SEGMENTS]), atol=1e-6)
    encoder = build_transformer_model(CONFIG, CKPT, with_mlm=True)
    assert not np.allclose(forward(model, [TOKENS, SEGMENTS]),
                           forward(encoder, [TOKENS, SEGMENTS]), atol=1e-3)


# ------------------------------------- bert4keras scripts' behaviour on Keras 3
class _PairGenerator:
    """bert4keras's data_generator pattern: `yield [token_ids, segment_ids], labels`."""

    @staticmethod
    def make(labels, same_first_lengths=False):
        from kerasnlp4su.snippets import DataGenerator, sequence_padding

        class Generator(DataGenerator):
            def __iter__(self, random=False):
                batch_ids, batch_segments, batch_labels = [], [], []
                for is_end, (ids, segments, label) in self.sample(random):
                    batch_ids.append(ids)
                    batch_segments.append(segments)
                    batch_labels.append([label])
                    if len(batch_ids) == self.batch_size or is_end:
                        y = sequence_padding(batch_labels) if labels else None
                        yield [sequence_padding(batch_ids), sequence_padding(batch_segments)], y
                        batch_ids, batch_segments, batch_labels = [], [], []

        # Batches padded to 9, 8, 7 (or 9, 9, 8 with `same_first_lengths`).
        cut = [9, 9, 9, 8, 8, 7] if same_first_lengths else [9, 9, 8, 8, 7, 7]
        data = [(list(TOKENS[i % 2][:n]), list(SEGMENTS[i % 2][:n]), i % 2)
                for i, n in enumerate(cut)]
        return Generator(data, batch_size=2)


def _small_classifier():
    # The bert4keras script pattern (keras.Model over the builder's output) on a one-layer, 8-wide
    # BERT: these tests are about the data path, and tracing the train step costs per layer.
    bert = build_transformer_model(vocab_size=int(TOKENS.max()) + 1, hidden_size=8, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=16,
                                   max_position_embeddings=16, type_vocab_size=2, with_pool=True)
    model = keras.Model(bert.inputs, keras.layers.Dense(2, activation="softmax")(bert.output))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    return model


def test_forfit_batches_fit_keras3_with_the_same_arrays():
    generator = _PairGenerator.make(labels=True)
    batches = list(generator.__iter__())
    stream = generator.forfit(random=False)
    for (x, y) in batches:
        got = next(stream)
        assert isinstance(got, tuple) and isinstance(got[0], tuple)
        for ours, theirs in zip(got[0] + (got[1],), x + [y]):
            np.testing.assert_array_equal(ours, theirs)
    model = _small_classifier()
    # random=False: batch lengths 9, 8, 7 in that order (see the xfail test below).
    history = model.fit(generator.forfit(random=False), steps_per_epoch=len(generator), epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(generator.fortest(), steps=len(generator), verbose=0).shape == (6, 2)


def test_forfit_batches_whose_first_two_share_a_length():
    # Keras 3 on TensorFlow fixes every size a plain generator's first two
    # batches share (lengths 9, 9, then 8 fails); forfit's stream is its own
    # data adapter whose signature keeps only ranks.
    generator = _PairGenerator.make(labels=True, same_first_lengths=True)
    model = _small_classifier()
    history = model.fit(generator.forfit(random=False), steps_per_epoch=len(generator), epochs=2,
                        verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    predicted = model.predict(generator.fortest(), steps=len(generator), verbose=0)
    assert predicted.shape == (6, 2)


def test_mlm_output_mask_is_per_token():
    # bert4keras's LM losses read `mask[1]` of the MLM output as (batch, length).
    model = build_transformer_model(CONFIG, CKPT, application="lm")
    assert tuple(model.outputs[0]._keras_mask.shape) == (None, None)
    probs = model([TOKENS, SEGMENTS])
    mask = keras.ops.convert_to_numpy(probs._keras_mask)
    np.testing.assert_array_equal(mask, TOKENS != 0)


def test_loss_layer_script_pattern_trains_from_forfit():
    # The seq2seq/LM examples: an output Loss layer, `yield [ids, segs], None`,
    # compile() with no loss, y_mask from the (int32 here) segment ids.
    layers = pytest.importorskip("kerasnlp4su.layers")
    if not hasattr(layers, "Loss"):
        pytest.skip("kerasnlp4su.layers.Loss arrives with the b4k-layers branch")

    class CrossEntropy(layers.Loss):
        def compute_loss(self, inputs, mask=None):
            y_true, y_mask, y_pred = inputs
            y_true, y_mask, y_pred = y_true[:, 1:], y_mask[:, 1:], y_pred[:, :-1]
            loss = keras.ops.sparse_categorical_crossentropy(y_true, y_pred)
            return keras.ops.sum(loss * y_mask) / keras.ops.sum(y_mask)

    model = build_transformer_model(CONFIG, CKPT, application="unilm")
    output = CrossEntropy(2)(model.inputs + model.outputs)
    model = keras.Model(model.inputs, output)
    model.compile(optimizer="sgd")
    generator = _PairGenerator.make(labels=False)
    history = model.fit(generator.forfit(random=False), steps_per_epoch=len(generator), epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
