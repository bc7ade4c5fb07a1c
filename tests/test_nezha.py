"""NEZHA against transformers' (deprecated) NEZHA reading the same tiny TF1 checkpoint."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from backend_utils import forward
import tiny_checkpoints
from kerasnlp4su.checkpoints.loader import CheckpointMismatchError
from kerasnlp4su.decoding import LMDecoder
from kerasnlp4su.models import NEZHA, build_transformer_model
from kerasnlp4su.models.registry import checkpoint_family

TOKENS = np.array([[2, 11, 12, 13, 14, 15, 16, 17, 3, 0, 0],
                   [2, 40, 41, 3, 50, 51, 52, 53, 54, 55, 3]])
SEGMENTS = np.array([[0] * 11, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]])
REAL = TOKENS != 0


def write(directory, **overrides):
    """The tiny NEZHA checkpoint, its config changed by `overrides`."""
    config_path, ckpt = tiny_checkpoints.write(str(directory), "nezha")
    with open(config_path) as f:
        config = dict(json.load(f), **overrides)
    with open(config_path, "w") as f:
        json.dump(config, f)
    return config_path, ckpt, config


def hf_nezha(config, ckpt):
    """`NezhaForPreTraining` with the checkpoint read by transformers' own TF loader."""
    import torch
    from transformers.models.deprecated.nezha.modeling_nezha import (
        NezhaConfig, NezhaForPreTraining, load_tf_weights_in_nezha)

    hf_config = NezhaConfig(
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"], hidden_act="gelu_new",  # tanh GELU
        max_position_embeddings=config["max_position_embeddings"],
        max_relative_position=config["max_relative_position"],
        type_vocab_size=config["type_vocab_size"], hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0)
    model = NezhaForPreTraining(hf_config).eval()
    # The official checkpoint's scope is `bert/`; transformers' loader walks
    # attribute names, and its NEZHA keeps the encoder under `.nezha`.
    scopes = torch.nn.Module()
    scopes.bert, scopes.cls = model.nezha, model.cls
    load_tf_weights_in_nezha(scopes, hf_config, ckpt)
    with torch.no_grad():
        out = model(input_ids=torch.tensor(TOKENS), token_type_ids=torch.tensor(SEGMENTS),
                    attention_mask=torch.tensor(REAL.astype("int64")), output_hidden_states=True)
    return {"sequence": out.hidden_states[-1].numpy(), "mlm": out.prediction_logits.numpy(),
            "nsp": out.seq_relationship_logits.numpy()}


# max_relative_position=3 makes the 11-token batch clip its offsets; 64 is every release's.
@pytest.mark.parametrize("max_relative_position", [3, 64])
def test_matches_transformers_nezha(tmp_path, max_relative_position):
    config_path, ckpt, config = write(tmp_path, max_relative_position=max_relative_position)
    reference = hf_nezha(config, ckpt)
    encoder = build_transformer_model(config_path, ckpt, model="nezha")
    np.testing.assert_allclose(forward(encoder, [TOKENS, SEGMENTS])[REAL],
                               reference["sequence"][REAL], atol=1e-4)
    nsp, mlm = forward(build_transformer_model(config_path, ckpt, model="nezha", with_nsp="linear",
                                               with_mlm="linear"), [TOKENS, SEGMENTS])
    np.testing.assert_allclose(mlm[REAL], reference["mlm"][REAL], atol=1e-4)
    np.testing.assert_allclose(nsp, reference["nsp"], atol=1e-5)


def test_clipping_and_relative_terms_change_the_output(tmp_path):
    config_path, ckpt, _ = write(tmp_path)
    far = build_transformer_model(config_path, ckpt, model="nezha")
    far = forward(far, [TOKENS, SEGMENTS])
    near = build_transformer_model(config_path, ckpt, model="nezha", max_relative_position=2)
    assert np.abs(forward(near, [TOKENS, SEGMENTS]) - far)[REAL].max() > 1e-3
    # Same names as RoFormer v1, other positions: RoFormer reads it (when told to, as the
    # family check refuses it) but computes something else.
    with pytest.warns(UserWarning, match="pass model='nezha'"):
        roformer = build_transformer_model(config_path, ckpt, model="roformer",
                                           hidden_act="gelu_tanh", strict=False)
    assert np.abs(forward(roformer, [TOKENS, SEGMENTS]) - far)[REAL].max() > 1e-3


def test_config_keys_tell_nezha_from_roformer(tmp_path):
    config_path, ckpt, config = write(tmp_path / "nezha")
    names = tf.train.load_checkpoint(ckpt).get_variable_to_shape_map()
    assert checkpoint_family(names, config)[0] == "nezha"
    # Names alone cannot tell them apart; RoFormer v1 (registered first) is the guess.
    assert checkpoint_family(names)[0] == "roformer"
    auto = build_transformer_model(config_path, ckpt, model="auto", return_keras_model=False)
    assert type(auto) is NEZHA and auto.max_relative_position == 64
    roformer_config, roformer_ckpt = tiny_checkpoints.write(str(tmp_path / "roformer"), "roformer")
    auto = build_transformer_model(roformer_config, roformer_ckpt, model="auto",
                                   return_keras_model=False)
    assert auto.model_type == "roformer"


def test_a_wrong_model_names_both_families_with_these_names(tmp_path):
    config_path, ckpt, _ = write(tmp_path)
    # With the release's config (build_transformer_model reads it) the check names NEZHA alone.
    with pytest.raises(CheckpointMismatchError, match="pass model='nezha'\\.\n"):
        build_transformer_model(config_path, ckpt, model="bert")
    # Without it, the names alone fit both families, and the message says so.
    bert = build_transformer_model(config_path, None, model="bert", return_keras_model=False)
    with pytest.raises(CheckpointMismatchError,
                       match="pass model='roformer' or model='nezha' .the config tells which"):
        bert.load_weights_from_checkpoint(ckpt)


def test_bad_configs_are_named(tmp_path):
    config_path, ckpt, _ = write(tmp_path)
    with pytest.raises(ValueError, match="use_relative_position=false.*model='bert'"):
        build_transformer_model(config_path, ckpt, model="nezha", use_relative_position=False)
    with pytest.raises(ValueError, match="attention_key_size"):
        build_transformer_model(config_path, model="nezha", attention_key_size=4)


def test_checkpoint_round_trip_is_exact(tmp_path):
    config_path, ckpt, _ = write(tmp_path)
    t = build_transformer_model(config_path, ckpt, model="nezha", with_nsp=True, with_mlm=True,
                                return_keras_model=False)
    written = tf.train.load_checkpoint(t.save_weights_as_checkpoint(str(tmp_path / "out.ckpt")))
    original = tf.train.load_checkpoint(ckpt)
    expected = {n for n in original.get_variable_to_shape_map()
                if n != "global_step" and not n.endswith("adam_m")}
    assert set(written.get_variable_to_shape_map()) == expected
    for name in expected:
        np.testing.assert_array_equal(written.get_tensor(name), original.get_tensor(name))


def test_cached_decoding_equals_recomputation(tmp_path):
    # Offsets clip at 3, so a cached step must place its query at the cache offset.
    config_path, ckpt, _ = write(tmp_path, max_relative_position=3)
    t = build_transformer_model(config_path, ckpt, model="nezha", application="lm",
                                return_keras_model=False)
    ids = TOKENS[1:, :10]
    full = forward(t.model, [ids, np.zeros_like(ids)])
    out, cache = t.cached_forward([ids[:, :4], np.zeros((1, 4), "int32")])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), full[:, :4], atol=1e-6)
    cache = t.reserve_cache(cache, 12)  # unwritten slots beyond the tokens must stay hidden
    for j in range(4, 10):
        out, cache = t.cached_forward([ids[:, j:j + 1], np.zeros((1, 1), "int32")], cache)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out)[:, 0], full[:, j], atol=1e-6)
    prompt = [ids[0, :5]]
    greedy = {use_cache: LMDecoder(t, end_id=3, maxlen=8, use_cache=use_cache).beam_search(
        prompt, topk=1).tolist() for use_cache in (True, False)}
    assert greedy[True] == greedy[False] and len(greedy[True]) > 0


def test_explicit_roformer_on_a_nezha_release_names_nezha(tmp_path):
    # Same variable names as RoFormer v1: with the release's config file the
    # family check still tells them apart (and the reverse).
    nezha_dir = tmp_path / "nezha"
    config, ckpt = tiny_checkpoints.write(str(nezha_dir), "nezha")
    with pytest.raises(CheckpointMismatchError) as excinfo:
        build_transformer_model(config, ckpt, model="roformer")
    assert "pass model='nezha'" in str(excinfo.value)
    roformer_dir = tmp_path / "roformer"
    config, ckpt = tiny_checkpoints.write(str(roformer_dir), "roformer")
    with pytest.raises(CheckpointMismatchError) as excinfo:
        build_transformer_model(config, ckpt, model="nezha")
    assert "pass model='roformer'" in str(excinfo.value)
