"""The GPT families (`gpt` CDial-GPT, `gpt2` CPM-LM, `gpt2_ml`) on tiny checkpoints in each release's names.

References: bert4keras 0.11.5 itself (all three families in one run of the shared bert4keras child on
tf-keras) and a NumPy re-derivation written here from the releases' layouts.
"""

import importlib.util
import os
import pickle

import numpy as np
import pytest
import tiny_checkpoints
from backend_utils import to_np
from bert4keras_runner import run_reference
from reference import attention, gelu_tanh, layer_norm, softmax

from kerasnlp4su.checkpoints.loader import CheckpointMismatchError
from kerasnlp4su.checkpoints.readers import TF1CheckpointReader
from kerasnlp4su.decoding import LMDecoder
from kerasnlp4su.models import GPT, GPT2, GPT2_ML, build_transformer_model

FAMILIES = ("gpt", "gpt2", "gpt2_ml")
CLASSES = {"gpt": GPT, "gpt2": GPT2, "gpt2_ml": GPT2_ML}
TOKENS = np.array([[2, 11, 12, 13, 3, 0], [2, 40, 41, 3, 50, 3]], "int32")
# CDial-GPT's segment ids are speaker token ids, looked up in the word table.
SPEAKERS = np.array([[5, 5, 6, 6, 6, 0], [5, 5, 5, 6, 6, 6]], "int32")
# Probabilities of a 100-word vocabulary are ~1e-2, and on these tiny random
# weights the erf GELU or another LayerNorm epsilon moves them by only
# 2e-5..3e-4 relative: the tolerance is relative and tight (observed <1e-6).
RTOL = 1e-5


def model_inputs(family, tokens=TOKENS, segments=SPEAKERS):
    return [tokens, segments] if family == "gpt" else [tokens]


def predict(t, family, tokens=TOKENS, segments=SPEAKERS):
    inputs = model_inputs(family, tokens, segments)
    return to_np(t.model(inputs if len(inputs) > 1 else inputs[0], training=False))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_checkpoints.cached(tmp_path_factory)


def build(tiny, family, **kwargs):
    config_path, path = tiny(family)
    return build_transformer_model(config_path, path, model=family, return_keras_model=False,
                                   **kwargs)


# ------------------------------------------------------------------- bert4keras parity
@pytest.fixture(scope="module")
def bert4keras_outputs(tiny, tmp_path_factory):
    """Every family's probabilities from bert4keras 0.11.5, computed in one run of the shared bert4keras child."""
    if importlib.util.find_spec("bert4keras") is None:
        pytest.skip("bert4keras is not installed")
    work = tmp_path_factory.mktemp("bert4keras")
    cases = {family: (*tiny(family), model_inputs(family)) for family in FAMILIES}
    with open(work / "cases.pkl", "wb") as f:
        pickle.dump(cases, f)
    script = os.path.join(os.path.dirname(__file__), "gpt_b4k_reference.py")
    run_reference(script, work / "cases.pkl", work / "out.npz")
    return dict(np.load(work / "out.npz"))


@pytest.mark.parametrize("family", FAMILIES)
def test_matches_bert4keras(tiny, bert4keras_outputs, family):
    t = build(tiny, family)
    assert type(t) is CLASSES[family]
    probs = predict(t, family)
    expected = bert4keras_outputs[family]
    assert probs.shape == expected.shape == TOKENS.shape + (100,)
    np.testing.assert_allclose(probs, expected, rtol=RTOL, atol=0)


# --------------------------------------------------------------- NumPy re-derivation
def numpy_forward(family, reader, config, tokens, segments):
    """Next-token probabilities written from each release's layout (official names)."""
    get = reader.get
    heads, n = config["num_attention_heads"], tokens.shape[1]
    keep = (tokens != 0)[:, None, None, :] & np.tril(np.ones((n, n), bool))[None, None]
    bias = np.where(keep, 0.0, -1e9)

    def dense(x, name):
        return x @ get(f"{name}/kernel") + get(f"{name}/bias")

    def norm(x, name, eps):
        return layer_norm(x, get(f"{name}/gamma"), get(f"{name}/beta"), eps)

    if family == "gpt2_ml":
        table = get("newslm/embeddings/word_embed")
        x = table[tokens] + get("newslm/embeddings/pos_embed")[:n][None]
        x = norm(x, "newslm/embeddings/LayerNorm_embed_norm", 1e-5)
        for i in range(config["num_hidden_layers"]):
            p = f"newslm/layer{i:02d}"
            q, k, v = (dense(x, f"{p}/{part}_layer").reshape(*x.shape[:2], heads, -1)
                       for part in ("query", "key", "value"))
            scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1]) + bias
            ctx = np.einsum("bhqk,bkhd->bqhd", softmax(scores), v).reshape(x.shape)
            x = x + dense(ctx, f"{p}/context_projection_layer")
            h = norm(x, f"{p}/LayerNorm_mlp_ln0", 1e-5)
            h = dense(gelu_tanh(dense(h, f"{p}/intermediate")), f"{p}/output")
            x = norm(x + h, f"{p}/LayerNorm_mlp_ln1", 1e-5)
        return softmax(x @ table.T)

    table = get("gpt/embeddings/word_embeddings")
    x = table[tokens] + get("gpt/embeddings/position_embeddings")[:n][None]
    if family == "gpt":
        x = x + table[segments]
    pre = family == "gpt2"
    eps = 1e-5 if pre else 1e-12
    for i in range(config["num_hidden_layers"]):
        p = f"gpt/transformer/layer_{i}"
        ln = "input/LayerNorm" if pre else "output/LayerNorm"
        h = norm(x, f"{p}/attention/{ln}", eps) if pre else x
        a = dense(attention(h, get, p, heads, bias), f"{p}/attention/output/dense")
        x = x + a if pre else norm(x + a, f"{p}/attention/{ln}", eps)
        h = norm(x, f"{p}/{ln}", eps) if pre else x
        f = dense(gelu_tanh(dense(h, f"{p}/intermediate/dense")), f"{p}/output/dense")
        x = x + f if pre else norm(x + f, f"{p}/{ln}", eps)
    if pre:
        x = norm(x, "gpt/output/LayerNorm", eps)
    return softmax(x @ table.T)


@pytest.mark.parametrize("family", FAMILIES)
def test_matches_numpy_reference(tiny, family):
    config_path, path = tiny(family)
    t = build(tiny, family)
    probs = predict(t, family)
    expected = numpy_forward(family, TF1CheckpointReader(path), tiny_checkpoints.CONFIGS[family],
                             TOKENS, SPEAKERS)
    np.testing.assert_allclose(probs, expected, rtol=RTOL, atol=0)


# --------------------------------------------------------------- detection and names
@pytest.mark.parametrize("family", FAMILIES)
def test_model_auto_builds_each_family(tiny, family):
    config_path, path = tiny(family)
    t = build_transformer_model(config_path, path, model="auto", return_keras_model=False)
    assert type(t) is CLASSES[family]


@pytest.mark.parametrize("wrong,right", [("gpt", "gpt2"), ("gpt2", "gpt"), ("gpt", "gpt2_ml")])
def test_a_wrong_model_name_names_the_right_one(tiny, wrong, right):
    config_path, path = tiny(right)
    with pytest.raises((CheckpointMismatchError, ValueError), match=f"model='{right}'"):
        build_transformer_model(config_path, path, model=wrong)


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_round_trip_is_exact(tiny, family, tmp_path):
    _, path = tiny(family)
    t = build(tiny, family)
    written = t.save_weights_as_checkpoint(str(tmp_path / "back.ckpt"))
    original, back = TF1CheckpointReader(path), TF1CheckpointReader(written)
    assert set(back.names()) == set(original.names())
    for name in original.names():
        np.testing.assert_array_equal(back.get(name), original.get(name), err_msg=name)


def test_segment_ids_share_the_word_table_and_mark_no_padding(tiny):
    t = build(tiny, "gpt")
    assert {v.path for v in t.model.weights if "Segment" in v.path} == set()
    # Segment 0 (a word-table row like any other) must not hide the token.
    out = t.model([TOKENS, np.zeros_like(TOKENS)], training=False)
    np.testing.assert_array_equal(to_np(out._keras_mask), TOKENS != 0)


def test_gpt_models_have_only_the_lm_head():
    with pytest.raises(ValueError, match="no with_pool, with_mlm head"):
        GPT2(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
             intermediate_size=8, with_pool=True, with_mlm=True)
    with pytest.raises(ValueError, match="^final_activation='sofmax'"):
        GPT(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
            intermediate_size=8, final_activation="sofmax")
    t = GPT2_ML(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                intermediate_size=8, final_activation="linear")
    assert t.application == "lm"
    t.build()
    # Causal: the first position's logits ignore what follows.
    a = to_np(t.model(np.array([[1, 2, 3]])))
    b = to_np(t.model(np.array([[1, 7, 8]])))
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-6)
    assert np.abs(a[:, 1] - b[:, 1]).max() > 1e-4


# ----------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("family", FAMILIES)
def test_cached_forward_equals_recomputation(tiny, family):
    t = build(tiny, family)
    tokens = np.array([[2, 11, 12, 3, 20, 21, 22, 23], [2, 11, 3, 0, 20, 21, 22, 23]], "int32")
    segments = np.where(tokens > 0, 5, 0).astype("int32")
    full = predict(t, family, tokens, segments)
    out, cache = t.cached_forward(model_inputs(family, tokens[:, :5], segments[:, :5]))
    np.testing.assert_allclose(to_np(out), full[:, :5], atol=1e-6)
    cache = t.reserve_cache(cache, 16)
    for j in range(5, 8):
        step = model_inputs(family, tokens[:, j:j + 1], segments[:, j:j + 1])
        out, cache = t.cached_forward(step, cache)
        np.testing.assert_allclose(to_np(out)[:, 0], full[:, j], atol=1e-6)
    # Beam search reorders rows: the swapped cache continues the swapped rows.
    swapped = t.reorder_cache(cache, np.array([1, 0]))
    nxt = np.array([[30], [31]], "int32")
    out, _ = t.cached_forward(model_inputs(family, nxt, np.full_like(nxt, 5)), swapped)
    rows = [1, 0]
    again = predict(t, family, np.concatenate([tokens[rows], nxt], 1),
                    np.concatenate([segments[rows], np.full_like(nxt, 5)], 1))
    np.testing.assert_allclose(to_np(out)[:, 0], again[:, -1], atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_cached_decoding_equals_recomputation(tiny, family):
    t = build(tiny, family)
    prompt = [2, 11, 12, 13]
    cached = LMDecoder(t, end_id=3, maxlen=8).beam_search([prompt], topk=1)
    recomputed = LMDecoder(t, end_id=3, maxlen=8, use_cache=False).beam_search([prompt], topk=1)
    assert len(cached) > 0
    np.testing.assert_array_equal(cached, recomputed)
    # The first generated token is the model's own argmax after the prompt.
    probs = predict(t, family, np.array([prompt]), np.zeros((1, len(prompt)), "int32"))
    assert int(np.argmax(probs[0, -1])) == cached[0]
