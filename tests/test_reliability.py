"""Bad input, corrupt files, wrong model types: every case a clear error or a documented result."""

import json
import os
import shutil
import stat
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from backend_utils import forward
import tiny_checkpoints
from kerasnlp4su.checkpoints import writer
from kerasnlp4su.checkpoints.hf import save_weights_as_hf
from kerasnlp4su.checkpoints.loader import CheckpointMismatchError, checkpoint_family
from kerasnlp4su.checkpoints.readers import TF1CheckpointReader
from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint
from kerasnlp4su.models import build_transformer_model
from kerasnlp4su.saving import save_model, save_weights
from kerasnlp4su.snippets import sequence_padding
from kerasnlp4su.tokenizers import SpTokenizer, Tokenizer, load_vocab

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "checkpoints", "tiny_bert")
CONFIG = os.path.join(TINY, "bert_config.json")
CKPT = os.path.join(TINY, "bert_model.ckpt")
DATA = "bert_model.ckpt.data-00000-of-00001"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoints.cached(tmp_path_factory)


@pytest.fixture
def tiny_copy(tmp_path):
    """A writable copy of the shipped tiny BERT release."""
    for f in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, f), tmp_path / f)
    return tmp_path


def write_config(tmp_path, name="config.json", **changes):
    config = json.load(open(CONFIG))
    for key, value in changes.items():
        if value is KeyError:
            del config[key]
        else:
            config[key] = value
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


# ------------------------------------------------------------------ bad configs
@pytest.mark.parametrize("changes,message", [
    ({"vocab_size": KeyError}, r"missing required key\(s\) \['vocab_size'\]"),
    ({"hidden_size": "64"}, r"'hidden_size' must be a positive integer, got '64'"),
    ({"hidden_size": 64.0}, r"'hidden_size' must be a positive integer, got 64.0"),
    ({"num_attention_heads": True}, r"'num_attention_heads' must be a positive integer, got True"),
    ({"num_attention_heads": 0}, r"'num_attention_heads' must be a positive integer, got 0"),
    ({"num_hidden_layers": -1}, r"'num_hidden_layers' must be a non-negative integer, got -1"),
    ({"max_position_embeddings": None}, None),  # null = absent: the default 512 applies
    ({"max_position_embeddings": "128"},
     r"'max_position_embeddings' \(max_position\) must be a positive integer, got '128'"),
    ({"type_vocab_size": -2}, r"'type_vocab_size' \(segment_vocab_size\) must be a non-negative"),
    ({"embedding_size": 0}, r"'embedding_size' must be a positive integer, got 0"),
    ({"hidden_dropout_prob": "0.1"},
     r"'hidden_dropout_prob' \(dropout_rate\) must be a dropout rate in \[0, 1\), got '0.1'"),
    ({"attention_probs_dropout_prob": 1.0},
     r"'attention_probs_dropout_prob' \(attention_dropout_rate\) must be a dropout rate"),
    ({"initializer_range": -0.02}, r"'initializer_range' must be a positive number, got -0.02"),
    ({"hidden_act": None}, r"'hidden_act' must be an activation name such as 'gelu', got None"),
    ({"hidden_act": "gleu"}, r"hidden_act='gleu': Unknown activation 'gleu'"),
    ({"num_attention_heads": 5}, r"hidden_size 64 is not divisible by num_attention_heads 5"),
])
def test_bad_config_values_name_the_file_and_key(tmp_path, changes, message):
    path = write_config(tmp_path, **changes)
    if message is None:
        model = build_transformer_model(path)
        assert model.get_layer("Embedding-Position").embeddings.shape == (512, 64)
        return
    with pytest.raises(ValueError, match=message) as info:
        build_transformer_model(path)
    if "divisible" not in message:
        assert "config.json" in str(info.value)


def test_bad_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config file '.*nope\.json' not found"):
        build_transformer_model(str(tmp_path / "nope.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="list.json' must hold a JSON object, got list"):
        build_transformer_model(str(tmp_path / "list.json"))
    (tmp_path / "latin1.json").write_bytes(b'{"hidden_act": "g\xe9lu"}')
    with pytest.raises(ValueError, match=r"latin1\.json' is not valid JSON"):
        build_transformer_model(str(tmp_path / "latin1.json"))
    (tmp_path / "cut.json").write_text(open(CONFIG).read()[:40])
    with pytest.raises(ValueError, match=r"cut\.json' is not valid JSON"):
        build_transformer_model(str(tmp_path / "cut.json"))


def test_unused_official_keys_are_ignored(tmp_path):
    # Official releases carry keys no model reads (bert4keras ignores them too).
    path = write_config(tmp_path, directionality="bidi", pooler_fc_size=768,
                        pooler_type="first_token_transform")
    assert build_transformer_model(path, CKPT).output.shape == (None, None, 64)


@pytest.mark.parametrize("kwargs,message", [
    ({"with_mlm": "bogus"}, r"with_mlm='bogus': Unknown activation"),
    ({"with_pool": 3}, r"'with_pool' must be True/False or an activation name, got 3"),
    ({"keep_tokens": [0, 1, 5000]},
     r"'keep_tokens' holds ids outside the checkpoint vocabulary \[0, 2646\): \[5000\]"),
    ({"keep_tokens": [0, -1]}, r"outside the checkpoint vocabulary \[0, 2646\): \[-1\]"),
    ({"keep_tokens": 7}, r"'keep_tokens' must be a list of token ids, got 7"),
    ({"compound_tokens": [[5, 6], []]}, r"every 'compound_tokens' entry needs at least one id"),
    ({"sequence_length": 129}, r"sequence_length 129 exceeds max_position 128"),
    ({"application": "seq2seq"}, r"application must be one of .*'seq2seq'"),
    ({"application": None}, r"application must be 'encoder', 'lm' or 'unilm', got None"),
    ({"model": "bart"}, r"unknown model 'bart'; known models: \['albert'"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_transformer_model(CONFIG, CKPT, **kwargs)


def test_numpy_keep_tokens_are_accepted():
    keep = np.array([0, 1, 2, 3, 120])
    model = build_transformer_model(CONFIG, CKPT, keep_tokens=keep, with_mlm=True)
    assert model.output.shape[-1] == 5


# --------------------------------------------------- missing / corrupt / truncated
def test_missing_prefix_names_the_expected_index(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected the file '.*nope\.ckpt\.index'"):
        build_transformer_model(CONFIG, str(tmp_path / "nope.ckpt"))


def test_missing_data_file_is_named(tiny_copy):
    os.remove(tiny_copy / DATA)
    with pytest.raises(FileNotFoundError, match=r"has an index but no data file: expected "
                       r"'.*bert_model\.ckpt\.data-00000-of-00001'"):
        build_transformer_model(CONFIG, str(tiny_copy / "bert_model.ckpt"))


def test_missing_shard_is_named(tiny_copy):
    os.replace(tiny_copy / DATA, tiny_copy / "bert_model.ckpt.data-00000-of-00002")
    with pytest.raises(FileNotFoundError, match=r"incomplete: data file\(s\) "
                       r"\['.*bert_model\.ckpt\.data-00001-of-00002'\] not found"):
        TF1CheckpointReader(str(tiny_copy / "bert_model.ckpt"))


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_index_is_corrupt(tiny_copy, keep):
    index = tiny_copy / "bert_model.ckpt.index"
    data = index.read_bytes()
    index.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"cannot read TF checkpoint '.*bert_model\.ckpt': the "
                       r"\.index or \.data files are corrupt or truncated \(.*sstable"):
        build_transformer_model(CONFIG, str(tiny_copy / "bert_model.ckpt"))


def test_truncated_data_names_the_variable(tiny_copy):
    data = tiny_copy / DATA
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cannot read variable 'bert/.*' from checkpoint "
                       r"'.*bert_model\.ckpt': the data file is corrupt or truncated"):
        build_transformer_model(CONFIG, str(tiny_copy / "bert_model.ckpt"))


def test_flipped_bytes_fail_the_checksum(tiny_copy):
    # Same size, one corrupted byte: TF's per-tensor CRC catches it, so no
    # silently wrong weight is loaded.
    reader = tf.train.load_checkpoint(CKPT)
    data = tiny_copy / DATA
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"cannot read variable '(bert|cls)/.*corrupt or "
                       r"truncated \(.*(checksum|Checksum|crc|CRC)") as info:
        build_transformer_model(CONFIG, str(tiny_copy / "bert_model.ckpt"), with_nsp=True,
                                with_mlm=True)
    name = str(info.value).split("'")[1]
    assert name in reader.get_variable_to_shape_map()


def test_interrupted_save_is_explained_on_load(tmp_path, monkeypatch):
    prefix = str(tmp_path / "m.ckpt")
    write_tf1_checkpoint(prefix, {"w": np.zeros(3, "float32")})
    real_replace = os.replace

    def crash_on_new_index(src, dst):
        if ".ckpt-tmp-" in src and dst.endswith(".index"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", crash_on_new_index)
    with pytest.raises(KeyboardInterrupt):
        write_tf1_checkpoint(prefix, {"w": np.ones(3, "float32")})
    monkeypatch.setattr(writer.os, "replace", real_replace)
    with pytest.raises(FileNotFoundError, match=r"m\.ckpt\.index\.bak' is: a save was "
                       r"interrupted.*rename them back"):
        TF1CheckpointReader(prefix)


def test_writer_leaves_other_checkpoints_alone(tmp_path):
    write_tf1_checkpoint(str(tmp_path / "m.ckpt.best"), {"w": np.full(2, 7.0, "float32")})
    write_tf1_checkpoint(str(tmp_path / "m.ckpt"), {"w": np.zeros(2, "float32")})
    write_tf1_checkpoint(str(tmp_path / "m.ckpt"), {"w": np.ones(2, "float32")})
    assert sorted(os.listdir(tmp_path)) == [
        "m.ckpt.best.data-00000-of-00001", "m.ckpt.best.index",
        "m.ckpt.data-00000-of-00001", "m.ckpt.index"]
    np.testing.assert_array_equal(TF1CheckpointReader(str(tmp_path / "m.ckpt.best")).get("w"), 7.0)
    np.testing.assert_array_equal(TF1CheckpointReader(str(tmp_path / "m.ckpt")).get("w"), 1.0)


def test_training_state_is_ignored_and_extra_heads_reported(tmp_path):
    reader = tf.train.load_checkpoint(CKPT)
    tensors = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    assert "global_step" in tensors  # the shipped release carries training state
    for name in list(tensors):
        if name.startswith("bert/encoder/layer_0/") and name.endswith("/kernel"):
            for slot in ("adam_m", "adam_v", "Adam", "Adam_1"):
                tensors[f"{name}/{slot}"] = np.zeros_like(tensors[name])
    path = write_tf1_checkpoint(str(tmp_path / "trained.ckpt"), tensors)
    t = build_transformer_model(CONFIG, return_keras_model=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = t.load_weights_from_checkpoint(path)
    assert report["family"] == "bert" and len(report["loaded"]) == 37
    assert not [n for n in report["unused"] if "adam" in n.lower() or n == "global_step"]
    # The pretraining heads this encoder does not build are reported, not errors.
    assert report["unused"] == sorted(
        ["bert/pooler/dense/bias", "bert/pooler/dense/kernel", "cls/predictions/output_bias",
         "cls/predictions/transform/LayerNorm/beta", "cls/predictions/transform/LayerNorm/gamma",
         "cls/predictions/transform/dense/bias", "cls/predictions/transform/dense/kernel",
         "cls/seq_relationship/output_bias", "cls/seq_relationship/output_weights"])
    inputs = [np.array([[2, 9, 3]]), np.zeros((1, 3), "int32")]
    expected = forward(build_transformer_model(CONFIG, CKPT), inputs)
    np.testing.assert_array_equal(forward(t.model, inputs), expected)


def test_shipped_checkpoint_is_what_the_script_makes(tmp_path):
    import make_tiny_checkpoints  # on sys.path through tiny_checkpoints

    out = make_tiny_checkpoints.make_tiny_bert(str(tmp_path))
    for name in ("bert_config.json", "vocab.txt"):
        assert (tmp_path / name).read_text() == open(os.path.join(TINY, name)).read()
    made = tf.train.load_checkpoint(os.path.join(out, "bert_model.ckpt"))
    shipped = tf.train.load_checkpoint(CKPT)
    assert made.get_variable_to_shape_map() == shipped.get_variable_to_shape_map()
    for name in shipped.get_variable_to_shape_map():
        np.testing.assert_array_equal(made.get_tensor(name), shipped.get_tensor(name))


# ------------------------------------------------------------- wrong model type
@pytest.mark.parametrize("family,model,evidence", [
    # These three used to load silently: every variable the model needs is there.
    ("bert", "roformer", "bert/embeddings/position_embeddings"),
    ("roformer", "roformer_v2", "bert/embeddings/LayerNorm/beta"),
    ("bert", "roformer_v2", "bert/embeddings/position_embeddings"),
    ("roformer_v2", "roformer", "bert/encoder/layer_0/"),
    ("roformer", "bert", "bert/embeddings/LayerNorm/beta"),
    ("albert", "bert", "bert/encoder/transformer/group_0/"),
    ("bert", "albert", "bert/embeddings/position_embeddings"),
    ("electra", "bert", "electra/encoder/"),
    ("bert", "electra", "bert/embeddings/position_embeddings"),
    ("albert", "roformer", "bert/encoder/transformer/group_0/"),
])
def test_wrong_model_type_says_which_family(ckpt, family, model, evidence):
    config_path, path = ckpt(family)
    with pytest.raises(CheckpointMismatchError) as info:
        build_transformer_model(config_path, path, model=model)
    message = str(info.value)
    assert f"looks like a model={family!r} checkpoint (it holds '{evidence}" in message
    assert f"but the model is {model!r}" in message and f"pass model={family!r}" in message


def test_wrong_family_can_be_forced_with_strict_false(ckpt):
    # Deliberately initialising RoFormer from BERT weights (as RoFormer itself
    # was trained from WoBERT) stays possible, with a warning.
    config_path, path = ckpt("bert")
    with pytest.warns(UserWarning, match="looks like a model='bert' checkpoint"):
        model = build_transformer_model(config_path, path, model="roformer", strict=False)
    bert_q = tf.train.load_checkpoint(path).get_tensor(
        "bert/encoder/layer_0/attention/self/query/kernel")
    weights = {w.path: w for w in model.weights}
    np.testing.assert_array_equal(
        weights["Transformer-0-MultiHeadSelfAttention/query/kernel"].numpy(), bert_q)


@pytest.mark.parametrize("family,model", [("albert", "albert_unshared"),
                                          ("electra", "electra_generator"),
                                          ("bert", "roberta")])
def test_compatible_families_load_without_warning(ckpt, family, model):
    config_path, path = ckpt(family)
    kwargs = tiny_checkpoints.CONFIGS["electra_generator"] if model == "electra_generator" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_transformer_model(None if kwargs else config_path, path, model=model, **kwargs)


def test_checkpoint_family_from_names():
    assert checkpoint_family(["bert/embeddings/word_embeddings",
                              "bert/encoder/layer_0/attention/self/query/kernel"]) == (
        "roformer_v2", "bert/encoder/layer_0/attention/self/query/kernel")
    assert checkpoint_family(["generator/encoder/layer_0/output/dense/kernel"])[0] == \
        "electra_generator"
    assert checkpoint_family(["global_step", "foo/bar"]) == (None, None)


# ------------------------------------------------------------------- vocabularies
def test_vocab_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("[PAD]\n[UNK]\n[CLS]\n[SEP]\n你\n".encode("utf-8-sig"))
    assert load_vocab(path) == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "你": 4}
    assert Tokenizer(str(path)).encode("你")[0] == [2, 4, 3]


def test_vocab_bad_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"vocabulary file .*empty\.txt is empty"):
        load_vocab(tmp_path / "empty.txt")
    with pytest.raises(IsADirectoryError, match="is a directory; pass the vocab.txt file"):
        Tokenizer(str(tmp_path))
    (tmp_path / "utf16.txt").write_bytes("[PAD]\n[UNK]\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"utf16\.txt, line 1: cannot decode as utf-8"):
        Tokenizer(str(tmp_path / "utf16.txt"))
    (tmp_path / "gbk.txt").write_bytes("[PAD]\n[UNK]\n中\n".encode("gbk"))
    with pytest.raises(ValueError, match=r"gbk\.txt, line 3: cannot decode as utf-8"):
        load_vocab(tmp_path / "gbk.txt")
    assert load_vocab(tmp_path / "gbk.txt", encoding="gbk")["中"] == 2
    (tmp_path / "dup.txt").write_text("[PAD]\n[UNK]\n##a\nb\n##a\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"duplicate token '##a' on line 5 \(first on line 3\)"):
        Tokenizer(str(tmp_path / "dup.txt"))


def test_corrupt_sentencepiece_model_is_named(tmp_path):
    pytest.importorskip("sentencepiece")
    (tmp_path / "bad.model").write_bytes(b"\x00not a sentencepiece model")
    with pytest.raises(ValueError, match=r"cannot read SentencePiece model '.*bad\.model'"):
        SpTokenizer(str(tmp_path / "bad.model"))


# ------------------------------------------------------- text the model receives
@pytest.fixture(scope="module")
def tiny_tokenizer():
    return Tokenizer(os.path.join(TINY, "vocab.txt"), do_lower_case=True)


@pytest.fixture(scope="module")
def tiny_model():
    return build_transformer_model(CONFIG, CKPT)


@pytest.mark.parametrize("text", ["", " ", "\t\n\r \u3000\xa0", "\x00\x07\u200b\ufffd\x7f"])
def test_empty_whitespace_and_control_text_is_cls_sep(tiny_tokenizer, tiny_model, text):
    # Documented: text with nothing to tokenize encodes as [CLS] [SEP] (bert4keras), and the
    # model gives finite outputs for it.
    ids, segments = tiny_tokenizer.encode(text)
    assert ids == [2, 3] and segments == [0, 0]
    assert tiny_tokenizer.encode(text, "你好")[0][:2] == [2, 3]
    out = forward(tiny_model, [np.array([ids]), np.array([segments])])
    assert out.shape == (1, 2, 64) and np.isfinite(out).all()


def test_control_characters_vanish_without_shifting_offsets(tiny_tokenizer):
    text = "a\x00b\u200b你\x07好"
    tokens = tiny_tokenizer.tokenize(text)
    assert "\x00" not in "".join(tokens) and "\u200b" not in "".join(tokens)
    ids, _, offsets = tiny_tokenizer.encode(text, return_offsets=True)
    spans = [text[s:e] for s, e in offsets[1:-1]]
    assert "你" in spans and "好" in spans


def test_very_long_word_is_one_unknown_token(tiny_tokenizer):
    word = "abcdefghij" * 30  # 300 chars > word_maxlen=200
    assert tiny_tokenizer.tokenize(word) == ["[CLS]", word, "[SEP]"]
    ids, _, offsets = tiny_tokenizer.encode("x " + word + " y", return_offsets=True)
    assert ids[2] == tiny_tokenizer._token_unk_id and offsets[2] == (2, 302)
    # Whole documents without spaces stay linear: 200k chars, one token each side.
    assert len(tiny_tokenizer.encode("a" * 200_000)[0]) == 3


def test_long_text_and_positions(tiny_tokenizer, tiny_model):
    text = "中" * 500
    ids, segments = tiny_tokenizer.encode(text)
    assert len(ids) == 502  # encode does not cut without maxlen ...
    with pytest.raises(ValueError, match="sequence length 502 exceeds the maximum position 128"):
        build_transformer_model(CONFIG, CKPT).predict([np.array([ids]), np.array([segments])],
                                                       verbose=0)
    ids, segments = tiny_tokenizer.encode(text, maxlen=128)  # ... maxlen keeps it in range
    assert len(ids) == 128 and ids[-1] == 3
    assert forward(tiny_model, [np.array([ids]), np.array([segments])]).shape == \
        (1, 128, 64)


def test_decoding_past_the_position_table_is_a_clear_error():
    config = dict(tiny_checkpoints.BASE, max_position_embeddings=8)
    t = build_transformer_model(None, application="lm", return_keras_model=False, **config)
    ids = np.array([[2, 5, 6, 7, 8, 9]])
    _, cache = t.cached_forward([ids, np.zeros_like(ids)])
    _, cache = t.cached_forward([ids[:, :2], np.zeros((1, 2), "int32")], cache)  # 8: full
    with pytest.raises(ValueError, match="sequence length 9 exceeds the maximum position 8"):
        t.cached_forward([ids[:, :1], np.zeros((1, 1), "int32")], cache)


def test_padding_ragged_batches_from_the_tokenizer(tiny_tokenizer):
    ids, segs = tiny_tokenizer.encode_batch(["", "你好", "今天天气很好"])
    padded = sequence_padding(ids)
    assert padded.shape == (3, 8) and (padded[0, 2:] == 0).all()
    assert sequence_padding([]).shape == (0,)


# --------------------------------------------------------------------- atomic saving
@pytest.fixture
def keras_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


@pytest.mark.parametrize("saver,name", [(save_model, "m.keras"), (save_weights, "m.weights.h5")])
def test_saved_files_get_normal_permissions(tmp_path, keras_model, saver, name):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        saver(keras_model, tmp_path / name)
    finally:
        os.umask(old)
    # Not the owner-only 0600 of a temporary file: others can read the model.
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    os.chmod(tmp_path / name, 0o640)
    saver(keras_model, tmp_path / name)  # overwriting keeps the file's mode
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640


def test_interrupted_hf_export_keeps_the_previous_files(tmp_path, monkeypatch):
    import safetensors.numpy

    t = build_transformer_model(CONFIG, CKPT, return_keras_model=False)
    save_weights_as_hf(t, str(tmp_path))
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_weights_as_hf(t, str(tmp_path))
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(tmp_path / "model.safetensors").st_mode) & 0o044


# ------------------------------------------------------------------ ids out of range
@pytest.mark.parametrize("token_ids,segment_ids,message", [
    ([[2, 5000, 3]], [[0, 0, 0]], r"Embedding-Token: id 5000 is out of range: ids must lie in "
                                  r"\[0, 2646\); does the tokenizer's vocabulary"),
    # Keras would wrap -1 around to the last row: a silently wrong result.
    ([[2, -1, 3]], [[0, 0, 0]], r"Embedding-Token: id -1 is out of range"),
    ([[2, 5, 3]], [[0, 2, 0]], r"Embedding-Segment: id 2 is out of range: ids must lie in \[0, 2\)"),
])
def test_ids_outside_the_vocabulary_are_an_error(token_ids, segment_ids, message):
    model = build_transformer_model(CONFIG, CKPT)
    inputs = [np.array(token_ids), np.array(segment_ids)]
    with pytest.raises(ValueError, match=message):
        model(inputs)
    # predict checks NumPy inputs before its graph (tests/test_first_contact.py covers the rest).
    with pytest.raises(ValueError, match="^" + message):
        build_transformer_model(CONFIG, CKPT).predict(inputs, verbose=0)
    assert model([np.array([[2, 2645, 3]]), np.array([[0, 1, 0]])]).shape == (1, 3, 64)


def test_segment_free_models(ckpt):
    # segment_vocab_size=0: one input (token ids), no segment embedding; loading
    # an official checkpoint leaves its token_type table unused.
    config_path, path = ckpt("bert")
    t = build_transformer_model(config_path, path, segment_vocab_size=0, return_keras_model=False)
    assert len(t.model.inputs) == 1
    ids = np.array([[2, 11, 12, 3, 0]])
    full = build_transformer_model(config_path, path)
    full.get_layer("Embedding-Segment").embeddings.assign(np.zeros((2, 32), "float32"))
    np.testing.assert_allclose(forward(t.model, ids),
                               forward(full, [ids, np.zeros_like(ids)]), atol=1e-6)
    with pytest.raises(ValueError, match=r"application='unilm' needs segment ids"):
        build_transformer_model(config_path, segment_vocab_size=0, application="unilm")


def test_start_and_end_tokens_must_be_in_the_vocabulary():
    # With [UNK] in the vocabulary a missing [CLS] would silently encode as [UNK].
    vocab = {"[PAD]": 0, "[UNK]": 1, "[SEP]": 2, "a": 3}
    with pytest.raises(ValueError, match=r"token_start '\[CLS\]' is not in the vocabulary"):
        Tokenizer(vocab)
    with pytest.raises(ValueError, match=r"token_end '</s>' is not in the vocabulary"):
        Tokenizer(vocab, token_start=None, token_end="</s>")
    assert Tokenizer(vocab, token_start=None).encode("a") == ([3, 2], [0, 0])


def test_sentencepiece_start_and_end_must_be_pieces(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["hello world keras model"] * 50), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"),
                                   vocab_size=16, minloglevel=2)
    model = str(tmp_path / "sp.model")
    with pytest.raises(ValueError, match=r"token_start '\[CLS\]' is not a piece of .*sp\.model"):
        SpTokenizer(model)
    tk = SpTokenizer(model, token_start=None, token_end="</s>")
    ids, _ = tk.encode("hello")
    assert ids[-1] == tk.sp_model.eos_id() and tk.decode(ids) == "hello"


def test_misspelled_keyword_argument_is_refused_with_a_suggestion():
    config = os.path.join(TINY, "bert_config.json")
    with pytest.raises(TypeError, match=r"'attention_tpye' \(did you mean 'attention_type'\?\)"):
        build_transformer_model(config, attention_tpye="linear")
    with pytest.raises(TypeError, match=r"no model reads: 'with_pooler'"):
        build_transformer_model(config, model="albert", with_pooler=True)
    eps = build_transformer_model(config, layer_norm_epsilon=1e-5)
    assert {layer.epsilon for layer in eps.layers if hasattr(layer, "epsilon")} == {1e-5}
    # Keys in the config file itself that no model reads stay accepted (official
    # configs carry e.g. "directionality"), and so do the official key names.
    model = build_transformer_model(config, with_pool=True, type_vocab_size=2,
                                    hidden_dropout_prob=0.0)
    assert model.outputs[0].shape[-1] == 64
