"""Atomic `.keras` / `.weights.h5` saving, and property tests of the mask layers."""

import os

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_utils import to_np
from kerasnlp4su.layers import AttentionMask
from kerasnlp4su.saving import save_model, save_weights


def tiny_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


@pytest.mark.parametrize("saver,name", [(save_model, "m.keras"), (save_weights, "m.weights.h5")])
def test_interrupted_save_keeps_the_previous_file(tmp_path, saver, name):
    model = tiny_model()
    path = tmp_path / name
    saver(model, path)
    before = path.read_bytes()

    def crash(staging, *args, **kwargs):
        with open(staging, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    model.save = crash
    model.save_weights = crash
    with pytest.raises(KeyboardInterrupt):
        saver(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_saved_files_load(tmp_path):
    model = tiny_model()
    x = np.ones((1, 3), "float32")
    save_model(model, tmp_path / "a.keras")
    restored = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="'.keras' file"):
        save_model(model, tmp_path / "a.h5")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=1, max_size=9))
def test_unilm_mask_matches_definition(pairs):
    segments = np.array([[s for s, _ in pairs]])
    ids = np.array([[t for _, t in pairs]])
    allowed = to_np(AttentionMask("unilm")([ids, segments]))[0, 0] == 0
    order = np.cumsum(segments[0])
    for i in range(len(pairs)):
        for j in range(len(pairs)):
            expected = ids[0, j] != 0 and order[j] <= order[i]
            assert allowed[i, j] == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=9))
def test_lm_and_padding_masks_match_definition(tokens):
    ids = np.array([tokens])
    lm = to_np(AttentionMask("lm")(ids))[0, 0] == 0
    pad = to_np(AttentionMask("padding")(ids))[0, 0, 0] == 0
    n = len(tokens)
    np.testing.assert_array_equal(pad, ids[0] != 0)
    np.testing.assert_array_equal(lm, np.tril(np.ones((n, n), bool)) & (ids[0] != 0)[None, :])


# ------------------------------------------------------------------ every layer, every model
# Each builder returns (model, inputs). Weights are randomised before saving so
# that a round trip which silently re-initialises a variable is caught.
import kerasnlp4su.decoding as decoding  # noqa: E402
from kerasnlp4su import layers as L  # noqa: E402
from kerasnlp4su.layers.crf import ConditionalRandomField  # noqa: E402
from kerasnlp4su.layers.gau import GatedAttentionUnit, ScaleOffset  # noqa: E402
from kerasnlp4su.layers.global_pointer import EfficientGlobalPointer, GlobalPointer  # noqa: E402
from kerasnlp4su.layers.relative_position import (  # noqa: E402
    RelativePositionEmbedding, RelativePositionEmbeddingT5)
from kerasnlp4su.models import MODEL_REGISTRY, build_transformer_model  # noqa: E402

from kerasnlp4su import training  # noqa: E402

IDS = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 3, 11, 12, 3]], "int32")


@keras.saving.register_keras_serializable("test_saving")
class SquaredSumLoss(L.Loss):
    """A bert4keras-style output-layer loss, as user code subclasses `Loss`."""

    def compute_loss(self, inputs, mask=None):
        return keras.ops.mean(keras.ops.square(inputs[1]))
SEGS = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]], "int32")
H = np.random.default_rng(1).normal(size=(2, 6, 8)).astype("float32")


def _ids():
    return keras.Input((None,), dtype="int32")


def _seq(width=8):
    return keras.Input((None, width))


def _embedded(ids, width=8):
    return L.Embedding(20, width, mask_zero=True)(ids)


def _layer_zoo():
    zoo = {}

    def add(name):
        def register(fn):
            zoo[name] = fn
            return fn
        return register

    @add("AttentionMask")
    def _():
        ids, segs = _ids(), _ids()
        out = [L.AttentionMask(m)(ids) for m in ("padding", "lm")] + [L.AttentionMask("unilm")([ids, segs])]
        return keras.Model([ids, segs], out), [IDS, SEGS]

    @add("PaddingMask")
    def _():
        ids = _ids()
        return keras.Model(ids, L.PaddingMask()(ids)), [IDS]

    @add("Embedding")
    def _():
        ids = _ids()
        emb = L.Embedding(20, 8, mask_zero=True)
        return keras.Model(ids, emb(emb(ids), mode="dense")), [IDS]

    @add("BiasAdd")
    def _():
        x = _seq()
        return keras.Model(x, L.BiasAdd()(x)), [H]

    @add("MaskedAdd")
    def _():
        ids, segs = _ids(), _ids()
        x = L.MaskedAdd()([_embedded(ids), keras.layers.Embedding(2, 8)(segs)])
        return keras.Model([ids, segs], L.MaskedGlobalAveragePooling()([x, ids])), [IDS, SEGS]

    @add("Dense")
    def _():
        x = _seq()
        return keras.Model(x, L.Dense(5, activation="gelu")(x)), [H]

    @add("FeedForward")
    def _():
        x = _seq()
        return keras.Model(x, L.FeedForward(16, activation="gelu_erf")(x)), [H]

    @add("LayerNormalization")
    def _():
        x, cond = _seq(), keras.Input((4,))
        y = L.LayerNormalization()(x)
        z = L.LayerNormalization(conditional=True, hidden_units=6, hidden_activation="relu")([y, cond])
        w = L.LayerNormalization(center=False, zero_mean=False, epsilon=1e-7)(z)
        return keras.Model([x, cond], w), [H, np.ones((2, 4), "float32")]

    @add("TokenSelect")
    def _():
        x = _seq()
        return keras.Model(x, L.TokenSelect(1)(x)), [H]

    @add("MaskedGlobalAveragePooling")
    def _():
        ids = _ids()
        return keras.Model(ids, L.MaskedGlobalAveragePooling()([_embedded(ids), ids])), [IDS]

    @add("MultiHeadAttention")
    def _():
        ids = _ids()
        x = _embedded(ids)
        y = L.MultiHeadAttention(2, 4, position_encoding="rotary", scale="entropy_invariant")(
            x, attention_mask=L.AttentionMask("lm")(ids))
        z = L.MultiHeadAttention(2, 4, attention_type="linear", causal=True)(
            y, padding_mask=L.PaddingMask()(ids))
        return keras.Model(ids, z), [IDS]

    @add("PositionEmbedding")
    def _():
        x = _seq()
        y = L.PositionEmbedding(16, 8, embeddings_initializer="glorot_uniform")(x)
        return keras.Model(x, L.PositionEmbedding(16, 8, merge_mode="zero")(y)), [H]

    @add("SinusoidalPositionEmbedding")
    def _():
        x = _seq()
        return keras.Model(x, L.SinusoidalPositionEmbedding(8, merge_mode="add")(x)), [H]

    @add("RotaryEmbedding")
    def _():
        x = _seq()
        heads = keras.layers.Reshape((-1, 2, 4))(x)
        q, k = L.RotaryEmbedding(base=1000.0)([heads, heads])
        return keras.Model(x, [q, k]), [H]

    @add("GlobalPointer")
    def _():
        ids = _ids()
        return keras.Model(ids, GlobalPointer(3, 4)(_embedded(ids))), [IDS]

    @add("EfficientGlobalPointer")
    def _():
        ids = _ids()
        return keras.Model(ids, EfficientGlobalPointer(3, 4, rope=False)(_embedded(ids))), [IDS]

    @add("ConditionalRandomField")
    def _():
        ids = _ids()
        crf = ConditionalRandomField(lr_multiplier=10)
        return keras.Model(ids, crf(keras.layers.Dense(5)(_embedded(ids)))), [IDS]

    @add("ScaleOffset")
    def _():
        x = _seq()
        return keras.Model(x, ScaleOffset(offset=False)(ScaleOffset()(x))), [H]

    @add("GatedAttentionUnit")
    def _():
        ids = _ids()
        x = _embedded(ids)
        y = GatedAttentionUnit(16, key_size=8)(x)
        z = GatedAttentionUnit(16, key_size=8, normalization="softmax", rope=False)(
            y, attention_mask=L.AttentionMask("lm")(ids))
        return keras.Model(ids, z), [IDS]

    @add("RelativePositionEmbedding")
    def _():
        x = _seq()
        table = RelativePositionEmbedding(2 * 2 + 1, 4, "sinusoidal", trainable=False)([x, x])
        learned = RelativePositionEmbedding(2 * 2 + 1, 4)([x, x])
        y = L.MultiHeadAttention(2, 4)(x, relative_keys=table, relative_values=learned)
        return keras.Model(x, y), [H]

    @add("RelativePositionEmbeddingT5")
    def _():
        x = _seq()
        return keras.Model(x, RelativePositionEmbeddingT5(8, 2, max_distance=8)([x, x])), [H]

    @add("Loss")
    def _():
        ids, x = _ids(), _seq()
        return keras.Model([ids, x], SquaredSumLoss(1)([ids, x])), [IDS, H]

    @add("MaximumEntropyMarkovModel")
    def _():
        x = _seq()
        y = L.MaximumEntropyMarkovModel(hidden_dim=2)(L.Dense(5)(x))
        z = L.MaximumEntropyMarkovModel()(L.Dense(5)(x))
        return keras.Model(x, [y, z]), [H]

    @add("GlobalAveragePooling1D")
    def _():
        ids = _ids()
        x = _embedded(ids)
        return keras.Model(ids, [L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)]), [IDS]

    zoo["GlobalMaxPooling1D"] = zoo["GlobalAveragePooling1D"]

    @add("Concatenate1D")
    def _():
        ids = _ids()
        x = _embedded(ids)
        return keras.Model(ids, L.Concatenate1D()([x, L.Dense(8)(x)])), [IDS]

    @add("ClozeScores")
    def _():
        probs, positions = _seq(12), keras.Input((1,), dtype="int32")
        scores = training.ClozeScores([[5], [7], [9]])([probs, positions])
        return keras.Model([probs, positions], scores), [
            np.random.default_rng(2).random((2, 6, 12)).astype("float32"),
            np.array([[1], [4]], "int32")]

    @add("PromptEmbedding")
    def _():
        ids = _ids()
        x = _embedded(ids)
        return keras.Model(ids, training.PromptEmbedding([5, 6], output_dim=8)([ids, x])), [IDS]

    @add("LadderDownProjection")
    def _():
        x = _seq()
        down = training.LadderDownProjection(4)(x)
        return keras.Model(x, training.LadderGate()([down, training.LadderDownProjection(4)(x)])), [H]

    zoo["LadderGate"] = zoo["LadderDownProjection"]

    @add("TheseusChoice")
    def _():
        x = _seq()
        return keras.Model(x, training.TheseusChoice(0.5, seed=1)([x, L.Dense(8)(x)])), [H]

    @add("SimBertLoss")
    def _():
        ids, segs, vectors, probs = _ids(), _ids(), _seq(4), _seq(20)
        out = training.SimBertLoss(scale=30.0)([ids, segs, vectors[:, 0], probs])
        rng = np.random.default_rng(3)
        return keras.Model([ids, segs, vectors, probs], out), [
            IDS, SEGS, rng.normal(size=(2, 6, 4)).astype("float32"),
            rng.dirichlet(np.ones(20), size=(2, 6)).astype("float32")]

    @add("LastToken")
    def _():
        x = _seq()
        return keras.Model(x, decoding.LastToken()(x)), [H]

    return zoo


LAYER_ZOO = _layer_zoo()


def randomise(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((rng.normal(size=w.shape) * 0.3).astype(w.dtype))


def outputs(model, inputs):
    # An eager call, not `predict`: compiling three copies of every model
    # would dominate the run on JAX.
    inputs = inputs if len(inputs) > 1 else inputs[0]
    return [to_np(o) for o in keras.tree.flatten(model(inputs, training=False))]


def assert_round_trips(build, tmp_path):
    model, inputs = build()
    randomise(model, 0)
    expected = outputs(model, inputs)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    for a, b in zip(outputs(restored, inputs), expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    model.save_weights(tmp_path / "m.weights.h5")
    fresh, _ = build()
    randomise(fresh, 1)
    fresh.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(outputs(fresh, inputs), expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_every_registered_layer_is_in_the_zoo():
    registered = {name.split(">", 1)[1] for name, obj in keras.saving.get_custom_objects().items()
                  if name.startswith("kerasnlp4su>") and isinstance(obj, type)
                  and issubclass(obj, keras.layers.Layer)
                  and not issubclass(obj, keras.Model)}  # models: MODEL_CASES below
    assert registered - set(LAYER_ZOO) == set(), "add a round-trip builder for these layers"


@pytest.mark.backend_core
@pytest.mark.parametrize("name", sorted(LAYER_ZOO))
def test_layer_round_trips_keras_and_weights_h5(name, tmp_path):
    assert_round_trips(LAYER_ZOO[name], tmp_path)


TINY_CONFIG = dict(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=16, max_position=16)
MODEL_CASES = {
    "bert": dict(with_pool=True, with_nsp=True, with_mlm=True),
    "roberta": dict(with_mlm=True),
    "albert": dict(embedding_size=4, with_pool=True, with_nsp=True, with_mlm=True),
    "albert_unshared": dict(embedding_size=4, with_mlm=True),
    "electra": dict(embedding_size=4, with_discriminator=True),
    "electra_generator": dict(embedding_size=4, with_mlm=True),
    "gau_alpha": dict(application="unilm", attention_key_size=4, hidden_act="swish"),
    "nezha": dict(application="lm", with_pool=True, max_relative_position=3),
    "roformer": dict(application="unilm", with_mlm=True),
    "roformer_v2": dict(application="lm", with_mlm=True, hidden_act="relu"),
    "gpt": dict(),  # segment ids looked up in the token table
    "gpt2": dict(),
    "gpt2_ml": dict(final_activation="linear"),
    "bert-linear-attention": dict(attention_type="linear", application="lm"),
    "bert-conditional-layernorm": dict(layer_norm_cond=4, layer_norm_cond_hidden_size=6),
    # T5: `.model` takes [encoder ids, decoder ids], `_decoder` [encoder output, decoder ids].
    "t5": dict(), "t5_encoder": dict(), "t5_decoder": dict(),
    "t5.1.0": dict(), "t5.1.0_encoder": dict(), "t5.1.0_decoder": dict(with_lm="linear"),
    "t5.1.1": dict(), "t5.1.1_encoder": dict(), "t5.1.1_decoder": dict(),
    "mt5.1.1": dict(with_lm=False), "mt5.1.1_encoder": dict(), "mt5.1.1_decoder": dict(),
}


def test_every_registered_model_has_a_case():
    assert set(MODEL_REGISTRY) - set(MODEL_CASES) == set()


@pytest.mark.backend_core
@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_model_round_trips_keras_and_weights_h5(case, tmp_path):
    name = case.split("-")[0]
    kwargs = dict(MODEL_CASES[case])

    def build():
        model = build_transformer_model(model=name, **TINY_CONFIG, **kwargs)
        inputs = [IDS, SEGS][:len(model.inputs)]
        if name.endswith("_decoder"):
            inputs = [H, IDS]
        if kwargs.get("layer_norm_cond"):
            inputs.append(np.random.default_rng(2).normal(size=(2, 4)).astype("float32"))
        return model, inputs

    assert_round_trips(build, tmp_path)
