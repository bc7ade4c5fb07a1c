"""T5 1.0 / 1.1 / mT5 1.1: parity with `transformers` on tiny mesh-TF checkpoints of each release's naming,
cached seq2seq decoding against recomputation and HF `generate`, checkpoint and HF round trips."""

import numpy as np
import pytest

from backend_utils import forward
import tiny_checkpoints
from kerasnlp4su.models import build_transformer_model
from kerasnlp4su.models.build import detect_model, read_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VERSIONS = ("t5.1.0", "t5.1.1", "mt5.1.1")
SOURCE = np.array([[5, 9, 3, 17, 22, 1], [7, 4, 30, 1, 0, 0]], dtype="int32")
TARGET = np.array([[0, 12, 8, 3, 25], [0, 6, 6, 19, 2]], dtype="int32")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoints.cached(tmp_path_factory)


def hf_model(version, config_path, ckpt):
    """`transformers`' own model of the tiny checkpoint, read by its TF converter."""
    from transformers.models.t5.modeling_t5 import load_tf_weights_in_t5

    config = read_config(config_path)
    cls = transformers.MT5Config if version == "mt5.1.1" else transformers.T5Config
    hf_config = cls(**config, tie_word_embeddings=(version == "t5.1.0"), decoder_start_token_id=0,
                    pad_token_id=0, eos_token_id=1)
    model_cls = (transformers.MT5ForConditionalGeneration if version == "mt5.1.1"
                 else transformers.T5ForConditionalGeneration)
    model = model_cls(hf_config)
    load_tf_weights_in_t5(model, hf_config, ckpt)
    return model.eval()


def hf_outputs(model, source, target):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(source, dtype=torch.long),
                    attention_mask=torch.tensor(source != 0, dtype=torch.long),
                    decoder_input_ids=torch.tensor(target, dtype=torch.long))
    return out.encoder_last_hidden_state.numpy(), out.logits.numpy()


@pytest.fixture(scope="module")
def models(checkpoint):
    """`get(version, with_lm)`: (our T5 builder, HF model), each built once."""
    built, hf = {}, {}

    def get(version, with_lm="linear"):
        config_path, ckpt = checkpoint(version)
        if version not in hf:
            hf[version] = hf_model(version, config_path, ckpt)
        if (version, with_lm) not in built:
            built[version, with_lm] = build_transformer_model(
                config_path, ckpt, model=version, with_lm=with_lm, return_keras_model=False)
        return built[version, with_lm], hf[version]

    return get


@pytest.mark.parametrize("version", VERSIONS)
def test_encoder_and_decoder_match_transformers(models, version):
    t5, hf = models(version)
    hf_encoded, hf_logits = hf_outputs(hf, SOURCE, TARGET)
    encoded = forward(t5.encoder, SOURCE)
    keep = SOURCE != 0
    np.testing.assert_allclose(encoded[keep], hf_encoded[keep], atol=1e-4, rtol=1e-4)
    logits = forward(t5.model, [SOURCE, TARGET])
    np.testing.assert_allclose(logits, hf_logits, atol=1e-4, rtol=1e-4)
    # The decoder alone sees every encoder position: compare on the unpadded row.
    logits = forward(t5.decoder, [encoded[:1], TARGET[:1]])
    np.testing.assert_allclose(logits, hf_logits[:1], atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ cached decoding
@pytest.mark.parametrize("version", VERSIONS)
def test_greedy_decoding_matches_recomputation_and_hf_generate(models, version):
    from kerasnlp4su.decoding import EncoderDecoderDecoder

    t5, hf = models(version, with_lm=True)  # the decoders take probabilities
    source = SOURCE[0]
    cached = EncoderDecoderDecoder(t5, end_id=1, maxlen=10).beam_search([source], topk=1)
    recomputed = EncoderDecoderDecoder(t5, end_id=1, maxlen=10,
                                       use_cache=False).beam_search([source], topk=1)
    np.testing.assert_array_equal(cached, recomputed)
    with torch.no_grad():
        expected = hf.generate(torch.tensor(source[None], dtype=torch.long), num_beams=1,
                               do_sample=False, max_new_tokens=10, min_length=0)[0].numpy()
    np.testing.assert_array_equal(cached, expected)
    assert len(cached) > 3  # the tiny random model must not stop at once


def test_cached_steps_equal_the_full_model_and_beams_match(models):
    import keras

    from kerasnlp4su.decoding import EncoderDecoderDecoder

    t5, _ = models("t5.1.1", with_lm=True)
    full = forward(t5.model, [SOURCE, TARGET])
    probs, cache = t5.cached_forward([SOURCE, TARGET[:, :2]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probs), full[:, :2], atol=1e-5)
    assert len(cache.cross_kv) == t5.num_decoder_layers and cache.cross_keep is not None
    cache = t5.reserve_cache(cache, 8)
    for position in range(2, TARGET.shape[1]):
        probs, cache = t5.cached_forward([TARGET[:, position:position + 1]], cache)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(probs)[:, 0], full[:, position],
                                   atol=1e-5)
    beams = [EncoderDecoderDecoder(t5, end_id=1, maxlen=8, use_cache=c).beam_search(
        [SOURCE[0]], topk=3) for c in (True, False)]
    np.testing.assert_array_equal(*beams)


def test_batched_generation_matches_hf_generate(models):
    # Sources of different lengths, right-padded into one batch. Greedy: the
    # ids of HF's padded batch, each row up to its own end token (HF pads
    # finished rows with 0 after it). Beam search: bert4keras's semantics
    # (return once the best continuation ends; drop other beams that end)
    # are not HF's (keep num_beams live beams, collect finished hypotheses),
    # so the two are compared without an end token, where they coincide
    # (length_penalty=0: scores are summed log-probabilities); with end
    # tokens the cached batch must equal the uncached per-example search.
    from kerasnlp4su.decoding import EncoderDecoderDecoder

    t5, hf = models("t5.1.1", with_lm=True)
    sources = [np.array(s) for s in ([5, 9, 3, 17, 22, 1], [7, 4, 1], [30, 2, 11, 8, 1],
                                     [12, 1])]
    padded = np.zeros((len(sources), 6), dtype="int64")
    for i, s in enumerate(sources):
        padded[i, :len(s)] = s

    def hf_generate(**kwargs):
        with torch.no_grad():
            return hf.generate(torch.tensor(padded), attention_mask=torch.tensor(padded != 0),
                               do_sample=False, max_new_tokens=10, **kwargs).numpy()

    greedy = EncoderDecoderDecoder(t5, end_id=1, maxlen=10).generate([[s] for s in sources])
    expected = hf_generate(num_beams=1, min_length=0)
    for ids, row in zip(greedy, expected):
        np.testing.assert_array_equal(ids, row[:len(ids)])
        assert not row[len(ids):].any()
    assert len({len(ids) for ids in greedy}) > 1  # rows end at different steps

    beams = EncoderDecoderDecoder(t5, end_id=-1, maxlen=10).generate([[s] for s in sources],
                                                                     topk=3)
    np.testing.assert_array_equal(np.stack(beams), hf_generate(num_beams=3, min_new_tokens=10,
                                                               length_penalty=0.0))


# ------------------------------------------------------------------ names, configs, round trips
@pytest.mark.parametrize("version", VERSIONS)
def test_auto_detects_the_release_and_a_wrong_name_names_it(checkpoint, version):
    from kerasnlp4su.checkpoints.loader import CheckpointMismatchError

    config_path, ckpt = checkpoint(version)
    assert detect_model(ckpt) == version
    assert detect_model(ckpt, read_config(config_path)) == version
    t5 = build_transformer_model(config_path, ckpt, model="auto", return_keras_model=False)
    assert t5.version == version and t5.decoder is not None
    wrong = {"t5.1.0": "t5.1.1", "t5.1.1": "mt5.1.1", "mt5.1.1": "t5"}[version]
    with pytest.raises((CheckpointMismatchError, ValueError), match=f"model='{version}'"):
        build_transformer_model(config_path, ckpt, model=wrong)


@pytest.mark.parametrize("version", VERSIONS)
def test_save_weights_as_checkpoint_writes_the_release_names_back(checkpoint, version, tmp_path):
    from kerasnlp4su.checkpoints.readers import TF1CheckpointReader

    config_path, ckpt = checkpoint(version)
    t5 = build_transformer_model(config_path, ckpt, model=version, return_keras_model=False)
    written = TF1CheckpointReader(t5.save_weights_as_checkpoint(str(tmp_path / "t5.ckpt")))
    original = TF1CheckpointReader(ckpt)
    weights = original.names()  # Adafactor slots and global_step are not weights
    assert not any("_slot_" in n for n in weights) and written.names() == weights
    for name in weights:
        np.testing.assert_array_equal(written.get(name), original.get(name))


def test_t5_pegasus_bert4keras_config_and_keep_tokens(checkpoint, models, tmp_path):
    import json

    config_path, ckpt = checkpoint("mt5.1.1")
    t5_style = read_config(config_path)
    # T5-PEGASUS's config.json spells the sizes bert4keras's way.
    b4k_style = {"hidden_act": ["gelu", "linear"], "hidden_size": t5_style["d_model"],
                 "intermediate_size": t5_style["d_ff"], "num_attention_heads": t5_style["num_heads"],
                 "attention_head_size": t5_style["d_kv"], "num_hidden_layers": t5_style["num_layers"],
                 "vocab_size": t5_style["vocab_size"], "relative_attention_num_buckets": 8,
                 "relative_attention_max_distance": 20, "attention_scale": False,
                 "is_dropout": False, "hidden_dropout_prob": 0.1}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(b4k_style))
    full = models("mt5.1.1")[0].model  # built from the T5-style config
    b4k = build_transformer_model(str(path), ckpt, model="mt5.1.1", with_lm="linear")
    np.testing.assert_allclose(forward(b4k, [SOURCE, TARGET]),
                               forward(full, [SOURCE, TARGET]), atol=1e-6)
    keep = [0, 1, 3, 5, 9, 12, 17, 22]
    small = build_transformer_model(str(path), ckpt, model="mt5.1.1", keep_tokens=keep,
                                    with_lm="linear")
    source, target = np.array([[2, 4, 6, 1]]), np.array([[0, 3, 5]])
    lookup = np.array(keep)
    np.testing.assert_allclose(forward(small, [source, target]),
                               forward(full, [lookup[source], lookup[target]])[..., keep],
                               atol=1e-5)


def test_unknown_feed_forward_activation_is_named(checkpoint):
    config_path, _ = checkpoint("t5.1.1")
    with pytest.raises(ValueError, match="feed_forward_proj='gated-swoosh'"):
        build_transformer_model(config_path, model="t5.1.1", feed_forward_proj="gated-swoosh")


# ------------------------------------------------------------------ HF safetensors
@pytest.mark.parametrize("version", VERSIONS)
def test_hf_files_load_and_export_both_ways(models, version, tmp_path):
    from kerasnlp4su.models.hf import load_hf_model, save_weights_as_hf

    t5, hf = models(version)
    _, hf_logits = hf_outputs(hf, SOURCE, TARGET)
    hf.save_pretrained(tmp_path / "from_hf")  # transformers' own safetensors file
    read = load_hf_model(str(tmp_path / "from_hf"), return_keras_model=False, with_lm="linear")
    assert read.version == version
    np.testing.assert_allclose(forward(read.model, [SOURCE, TARGET]), hf_logits,
                               atol=1e-4, rtol=1e-4)
    save_weights_as_hf(t5, tmp_path / "ours")
    cls = (transformers.MT5ForConditionalGeneration if version == "mt5.1.1"
           else transformers.T5ForConditionalGeneration)
    exported = cls.from_pretrained(tmp_path / "ours").eval()
    _, logits = hf_outputs(exported, SOURCE, TARGET)
    np.testing.assert_allclose(logits, hf_logits, atol=1e-5)
    back = load_hf_model(str(tmp_path / "ours"), return_keras_model=False, with_lm="linear")
    expected = t5.checkpoint_tensors()
    assert back.checkpoint_tensors().keys() == expected.keys()
    for name, value in back.checkpoint_tensors().items():
        np.testing.assert_array_equal(value, expected[name])


def test_attention_with_precomputed_keys_values_and_position_bias():
    import keras

    from kerasnlp4su.layers import MultiHeadAttention

    rng = np.random.default_rng(0)
    query, context = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 5, 8))
    bias = rng.normal(size=(3, 5, 2))
    keep = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    attention = MultiHeadAttention(heads=2, head_size=4, use_bias=False, scale="none")
    expected = attention([query, context, context], padding_mask=keep, position_bias=bias)
    kv = attention.project_key_value(context)
    got = attention(query, key_value=kv, padding_mask=keep, position_bias=bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                               keras.ops.convert_to_numpy(expected), atol=1e-6)
    # NumPy: softmax(q k^T + bias) v per head, masked keys dropped, no 1/sqrt(d) scale.
    w = {p: keras.ops.convert_to_numpy(getattr(attention, f"{p}_dense").kernel)
         for p in ("query", "key", "value", "output")}
    q = (query @ w["query"]).reshape(2, 3, 2, 4)
    k = (context @ w["key"]).reshape(2, 5, 2, 4)
    v = (context @ w["value"]).reshape(2, 5, 2, 4)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) + bias.transpose(2, 0, 1)[None]
    scores = np.where(keep[:, None, None, :], scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(2, 3, 8) @ w["output"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), out, atol=1e-5)
    with pytest.raises(ValueError, match="application='lm' is not supported by T5"):
        build_transformer_model(model="t5", application="lm", **tiny_checkpoints.CONFIGS["t5.1.0"])
