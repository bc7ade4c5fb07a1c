"""GAU-alpha against bert4keras 0.11.5 itself (the shared bert4keras child) and a NumPy re-derivation."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from backend_utils import forward
import tiny_checkpoints
from bert4keras_runner import run_reference
from kerasnlp4su.decoding import LMDecoder
from kerasnlp4su.models import GAU_alpha, build_transformer_model
from reference import rope, softmax

REFERENCE_SCRIPT = os.path.join(os.path.dirname(__file__), "b4k_gau_alpha_reference.py")


def batch():
    # Longer than 16 tokens, so softmax_plus's log(n)/log(512) differs from 1 and
    # depends on each text's own length (20 and 24 real tokens).
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 100, size=(2, 24))
    ids[:, 0], ids[0, 19], ids[0, 20:], ids[1, -1] = 2, 3, 0, 3
    segments = np.zeros_like(ids)
    segments[0, 10:20], segments[1, 10:] = 1, 1
    return ids, segments


TOKENS, SEGMENTS = batch()
REAL = TOKENS != 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gau_alpha")
    config_path, ckpt = tiny_checkpoints.write(str(directory), "gau_alpha")
    return config_path, ckpt, directory


@pytest.fixture(scope="module")
def bert4keras(tiny):
    """Encoder, MLM, LM and UniLM outputs of bert4keras, all in one run of the shared bert4keras child."""
    config_path, ckpt, directory = tiny
    inputs, out = str(directory / "inputs.npz"), str(directory / "bert4keras.npz")
    np.savez(inputs, ids=TOKENS, segments=SEGMENTS)
    run_reference(REFERENCE_SCRIPT, config_path, ckpt, inputs, out)
    return dict(np.load(out))


def numpy_gau_alpha(ckpt, config, ids, segments):
    """The release's forward pass from its checkpoint, in NumPy: (sequence, MLM logits)."""
    reader = tf.train.load_checkpoint(ckpt)
    get = reader.get_tensor
    units, key = config["intermediate_size"], config["attention_key_size"]

    def rms_norm(x):  # no gain, no offset, bert4keras's epsilon
        return x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-7)

    table = get("bert/embeddings/word_embeddings")
    x = rms_norm(table[ids] + get("bert/embeddings/token_type_embeddings")[segments])
    real = ids != 0
    n = np.maximum(real.sum(-1), 16)[:, None, None]
    for layer in range(config["num_hidden_layers"]):
        scope = f"GAU_alpha/encoder/layer_{layer}/gau"
        h = x @ get(f"{scope}/i_dense/kernel")
        h = h / (1 + np.exp(-h))  # swish
        u, v, qk = h[..., :units], h[..., units:2 * units], h[..., 2 * units:]
        q = rope((qk * get(f"{scope}/q_scaleoffset/gamma"))[:, :, None])[:, :, 0]
        k = rope((qk * get(f"{scope}/k_scaleoffset/gamma"))[:, :, None])[:, :, 0]
        scores = np.einsum("bmd,bnd->bmn", q, k) / math.sqrt(key)
        scores = np.where(real[:, None, :], scores * np.log(n) / math.log(512), -np.inf)
        o = (u * (softmax(scores) @ v)) @ get(f"{scope}/o_dense/kernel")
        x = rms_norm(x + o)
    return x, x @ table.T


def test_matches_bert4keras_and_numpy(tiny, bert4keras):
    config_path, ckpt, _ = tiny
    sequence = build_transformer_model(config_path, ckpt, model="gau_alpha")
    out = forward(sequence, [TOKENS, SEGMENTS])
    np.testing.assert_allclose(out[REAL], bert4keras["sequence"][REAL], atol=1e-4)
    mlm = build_transformer_model(config_path, ckpt, model="gau_alpha", with_mlm="linear")
    logits = forward(mlm, [TOKENS, SEGMENTS])
    np.testing.assert_allclose(logits[REAL], bert4keras["encoder"][REAL], atol=1e-4)
    expected, expected_logits = numpy_gau_alpha(ckpt, tiny_checkpoints.CONFIGS["gau_alpha"],
                                                TOKENS, SEGMENTS)
    np.testing.assert_allclose(out[REAL], expected[REAL], atol=1e-4)
    np.testing.assert_allclose(logits[REAL], expected_logits[REAL], atol=1e-4)


@pytest.mark.parametrize("application", ["lm", "unilm"])
def test_lm_and_unilm_match_bert4keras(tiny, bert4keras, application):
    config_path, ckpt, _ = tiny
    model = build_transformer_model(config_path, ckpt, model="gau_alpha", application=application)
    np.testing.assert_allclose(forward(model, [TOKENS, SEGMENTS])[REAL],
                               bert4keras[application][REAL], atol=1e-4)


def test_auto_detection_and_exact_checkpoint_round_trip(tiny, tmp_path):
    config_path, ckpt, _ = tiny
    t = build_transformer_model(config_path, ckpt, model="auto", with_mlm=True,
                                return_keras_model=False)
    assert type(t) is GAU_alpha
    written = tf.train.load_checkpoint(t.save_weights_as_checkpoint(str(tmp_path / "out.ckpt")))
    original = tf.train.load_checkpoint(ckpt)
    names = set(original.get_variable_to_shape_map())
    assert set(written.get_variable_to_shape_map()) == names
    for name in names:
        np.testing.assert_array_equal(written.get_tensor(name), original.get_tensor(name))


def test_cached_decoding_is_refused_and_recomputation_decodes(tiny):
    config_path, ckpt, _ = tiny
    t = build_transformer_model(config_path, ckpt, model="gau_alpha", application="lm",
                                return_keras_model=False)
    prompt = [TOKENS[1, :5]]
    with pytest.raises(NotImplementedError, match="GAU_alpha cannot run a cached decoding step"):
        LMDecoder(t, end_id=3, maxlen=4).beam_search(prompt, topk=1)
    ids = LMDecoder(t, end_id=3, maxlen=4, use_cache=False).beam_search(prompt, topk=1)
    assert 0 < len(ids) <= 4
