"""SentenceEncoder on the shipped tiny checkpoint, against a NumPy re-derivation.

The encoder's graph (frozen, length-sorted, bucketed batches) must give the
vectors that pooling the plain model's hidden states in NumPy gives, text by
text, in the order given. The real MiniLM against sentence-transformers is
in tests/test_minilm.py.
"""

import json
import os

import numpy as np
import pytest

from kerasnlp4su import SentenceEncoder
from kerasnlp4su.sentence_encoder import read_sentence_transformers_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "checkpoints", "tiny_bert")
# Lengths 3..40 tokens, not sorted: batches of 2 regroup them and must put them back.
TEXTS = ["你好", "今天天气很好，我们去公园散步吧。" * 2, "语言模型", "中文自然语言处理",
         "我", "科学技术是第一生产力，" * 3, "北京大学", "他说：好的。"]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.from_checkpoint(
        os.path.join(TINY, "bert_config.json"), os.path.join(TINY, "bert_model.ckpt"),
        os.path.join(TINY, "vocab.txt"))


@pytest.fixture(scope="module")
def hidden(encoder):
    """Each text alone through the plain Keras model: (hidden states, token ids) per text."""
    out = []
    for text in TEXTS:
        ids, segments = encoder.tokenizer.encode(text)
        ids = np.array([ids])
        states = encoder.model.predict_on_batch([ids, np.zeros_like(ids)])
        out.append((np.asarray(states)[0], ids[0]))
    return out


def numpy_pooling(hidden, mode):
    vectors = []
    for states, ids in hidden:
        real = states[ids != 0]
        vectors.append({"mean": real.mean(0), "cls": states[0], "max": real.max(0)}[mode])
    return np.stack(vectors)


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_pooling_modes_match_numpy_in_original_order(encoder, hidden, mode):
    got = encoder.encode(TEXTS, batch_size=2, pooling=mode)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(got, numpy_pooling(hidden, mode), atol=2e-5)


def test_normalize_maxlen_single_text_and_batch_sizes(encoder, hidden):
    unit = encoder.encode(TEXTS, batch_size=3, normalize=True)
    expected = numpy_pooling(hidden, "mean")
    np.testing.assert_allclose(unit, expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               atol=2e-5)
    whole = encoder.encode(TEXTS, batch_size=len(TEXTS))  # one padded batch
    np.testing.assert_allclose(whole, expected, atol=2e-5)
    one = encoder.encode(TEXTS[1])
    assert one.shape == (64,)
    np.testing.assert_allclose(one, expected[1], atol=2e-5)
    cut = encoder.encode([TEXTS[5]], maxlen=6)[0]  # [CLS] + 4 characters + [SEP]
    ids = encoder.tokenizer.encode(TEXTS[5], maxlen=6)[0]
    assert len(ids) == 6
    np.testing.assert_allclose(cut, encoder.encode(["科学技术"])[0], atol=2e-5)
    assert encoder.encode([]).shape == (0, 64)


def test_bad_input_is_named(encoder):
    with pytest.raises(TypeError, match=r"texts\[2\] must be str, got int"):
        encoder.encode(["a", "b", 3])
    with pytest.raises(TypeError, match="texts must be a str or a list of str, got bytes"):
        encoder.encode(b"abc")
    with pytest.raises(ValueError, match="pooling must be one of"):
        encoder.encode(["a"], pooling="sum")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(ValueError, match="maxlen must be an int >= 3"):
        encoder.encode(["a"], maxlen=2)
    with pytest.raises(FileNotFoundError, match="sentence model folder"):
        SentenceEncoder.from_hf(os.path.join(TINY, "missing"))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        SentenceEncoder.from_hf(os.path.join(ROOT, "benchmarks"))


def test_sentence_transformers_folder_config(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    flags = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
             "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(flags))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 77}')
    assert read_sentence_transformers_config(str(tmp_path)) == {
        "pooling": "cls", "normalize": True, "maxlen": 77, "do_lower_case": None}
    flags["pooling_mode_mean_sqrt_len_tokens"] = True
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(flags))
    with pytest.raises(ValueError, match="1_Pooling/config.json: SentenceEncoder supports exactly"):
        read_sentence_transformers_config(str(tmp_path))


@pytest.mark.parametrize("selection", ["default", "every layer"])
def test_int8_keeps_attention_and_feed_forward_output_in_float(selection):
    kwargs = {} if selection == "default" else {"quantize_filter": None}
    quantized = SentenceEncoder.from_checkpoint(
        os.path.join(TINY, "bert_config.json"), os.path.join(TINY, "bert_model.ckpt"),
        os.path.join(TINY, "vocab.txt"), quantize="int8", **kwargs)
    modes = {layer.path: getattr(layer, "quantization_mode", None)
             for layer in quantized.model._flatten_layers() if layer.path}
    expected = "int8" if selection == "every layer" else None
    for projection in ("query", "key", "value", "output"):
        assert modes[f"Transformer-0-MultiHeadSelfAttention/{projection}"] == expected, projection
    assert modes["Transformer-1-FeedForward/output"] == expected
    assert modes["Transformer-1-FeedForward/intermediate"] == "int8"
    assert modes["Embedding-Token"] == "int8"
