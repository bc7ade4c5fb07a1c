import json
import os
import shutil

import keras
import numpy as np
import pytest

from backend_utils import forward, load_checkpoint
from kerasnlp4su.checkpoints.loader import CheckpointMismatchError
from kerasnlp4su.models import build_transformer_model
from reference import bert_forward, gelu_erf

TINY = os.path.join(os.path.dirname(__file__), "..", "checkpoints", "tiny_bert")
CONFIG = os.path.join(TINY, "bert_config.json")
CKPT = os.path.join(TINY, "bert_model.ckpt")


def batch():
    token_ids = np.array([[2, 120, 131, 1500, 2000, 3, 0, 0], [2, 900, 3, 700, 800, 801, 3, 0]])
    segment_ids = np.array([[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 0]])
    return token_ids, segment_ids


@pytest.fixture(scope="module")
def full_model():
    return build_transformer_model(CONFIG, CKPT, with_nsp=True, with_mlm="linear",
                                   return_keras_model=False)


@pytest.fixture(scope="module")
def reference():
    reader = load_checkpoint(CKPT)
    config = json.load(open(CONFIG))
    return bert_forward(reader, config, *batch())


def valid(x, token_ids):
    """Positions that are real tokens (padded query rows are not defined by BERT)."""
    return x[token_ids != 0]


@pytest.mark.backend_core
def test_sequence_output_matches_numpy_reference(reference):
    model = build_transformer_model(CONFIG, CKPT)
    token_ids, segment_ids = batch()
    out = forward(model, [token_ids, segment_ids])
    assert out.shape == (2, 8, 64)
    np.testing.assert_allclose(valid(out, token_ids), valid(reference["sequence"], token_ids), atol=1e-4)


@pytest.mark.backend_core
def test_heads_match_numpy_reference(full_model, reference):
    token_ids, segment_ids = batch()
    nsp, mlm = forward(full_model.model, [token_ids, segment_ids])
    np.testing.assert_allclose(nsp, _softmax(reference["nsp"]), atol=1e-5)
    np.testing.assert_allclose(valid(mlm, token_ids), valid(reference["mlm"], token_ids), atol=1e-4)


@pytest.mark.backend_core
def test_pooler_matches_reference(reference):
    model = build_transformer_model(CONFIG, CKPT, with_pool=True)
    pooled = forward(model, list(batch()))
    np.testing.assert_allclose(pooled, reference["pooled"], atol=1e-5)


def test_official_gelu_is_tanh_and_erf_is_a_choice():
    token_ids, segment_ids = batch()
    reader = load_checkpoint(CKPT)
    config = json.load(open(CONFIG))
    erf_ref = bert_forward(reader, config, token_ids, segment_ids, gelu=gelu_erf)["sequence"]
    tanh_model = build_transformer_model(CONFIG, CKPT)
    erf_model = build_transformer_model(CONFIG, CKPT, hidden_act="gelu_erf")
    erf_out = forward(erf_model, [token_ids, segment_ids])
    tanh_out = forward(tanh_model, [token_ids, segment_ids])
    np.testing.assert_allclose(valid(erf_out, token_ids), valid(erf_ref, token_ids), atol=1e-4)
    # The two forms differ by more than the parity tolerance: the choice matters.
    assert np.abs(erf_out - tanh_out).max() > 1e-4


def test_matches_transformers_reading_the_same_checkpoint(full_model):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.bert.modeling_bert import load_tf_weights_in_bert

    config = transformers.BertConfig.from_json_file(CONFIG)
    config.hidden_act = "gelu_new"  # the official tanh approximation
    hf = transformers.BertForPreTraining(config)
    load_tf_weights_in_bert(hf, config, CKPT)
    hf.eval()
    token_ids, segment_ids = batch()
    with torch.no_grad():
        out = hf(torch.tensor(token_ids), attention_mask=torch.tensor((token_ids != 0).astype("int64")),
                 token_type_ids=torch.tensor(segment_ids), output_hidden_states=True)
    nsp, mlm = forward(full_model.model, [token_ids, segment_ids])
    np.testing.assert_allclose(valid(mlm, token_ids), valid(out.prediction_logits.numpy(), token_ids), atol=1e-4)
    np.testing.assert_allclose(nsp, torch.softmax(out.seq_relationship_logits, -1).numpy(), atol=1e-5)


def test_output_conventions_follow_bert4keras():
    token_ids, segment_ids = batch()
    assert build_transformer_model(CONFIG).output.shape == (None, None, 64)
    assert build_transformer_model(CONFIG, with_pool=True).output.shape == (None, 64)
    assert build_transformer_model(CONFIG, with_nsp=True).output.shape == (None, 2)
    outs = build_transformer_model(CONFIG, with_pool=True, with_mlm=True).outputs
    assert [tuple(o.shape) for o in outs] == [(None, 64), (None, None, 2646)]
    fixed = build_transformer_model(CONFIG, sequence_length=8)
    assert fixed.input_shape == [(None, 8), (None, 8)]
    mlm = forward(build_transformer_model(CONFIG, CKPT, with_mlm=True), [token_ids, segment_ids])
    np.testing.assert_allclose(mlm.sum(-1), 1.0, atol=1e-5)  # softmax by default


def test_keep_tokens_selects_embedding_rows(full_model):
    keep = [0, 1, 2, 3, 120, 131, 1500]
    small = build_transformer_model(CONFIG, CKPT, with_mlm="linear", keep_tokens=keep)
    table = small.get_layer("Embedding-Token").embeddings.numpy()
    full = full_model.model.get_layer("Embedding-Token").embeddings.numpy()
    np.testing.assert_array_equal(table, full[keep])
    assert small.output.shape[-1] == len(keep)
    bias = small.get_layer("MLM-Bias").bias.numpy()
    np.testing.assert_array_equal(bias, full_model.model.get_layer("MLM-Bias").bias.numpy()[keep])


def test_checkpoint_writer_round_trip(full_model, tmp_path):
    path = full_model.save_weights_as_checkpoint(str(tmp_path / "out" / "bert_model.ckpt"))
    original = load_checkpoint(CKPT)
    written = load_checkpoint(path)
    names = set(written.get_variable_to_shape_map())
    assert "cls/seq_relationship/output_weights" in names and len(names) == 46
    for name in names:
        np.testing.assert_array_equal(written.get_tensor(name), original.get_tensor(name))
    reloaded = build_transformer_model(CONFIG, path, with_nsp=True, with_mlm="linear")
    inputs = list(batch())
    for a, b in zip(forward(reloaded, inputs), forward(full_model.model, inputs)):
        np.testing.assert_array_equal(a, b)


def test_keras_and_h5_round_trip(full_model, tmp_path):
    inputs = list(batch())
    expected = forward(full_model.model, inputs)
    full_model.model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    for a, b in zip(forward(restored, inputs), expected):
        np.testing.assert_allclose(a, b, atol=1e-6)
    fresh = build_transformer_model(CONFIG, with_nsp=True, with_mlm="linear")
    full_model.model.save_weights(tmp_path / "m.weights.h5")
    fresh.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(forward(fresh, inputs), expected):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_missing_checkpoint_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        build_transformer_model(CONFIG, str(tmp_path / "nope.ckpt"))


def test_corrupt_checkpoint_fails_with_clear_error(tmp_path):
    for f in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, f), tmp_path / f)
    data = tmp_path / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        build_transformer_model(CONFIG, str(tmp_path / "bert_model.ckpt"))


def test_shape_mismatch_names_both_sides(tmp_path):
    config = json.load(open(CONFIG))
    config["intermediate_size"] = 96
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as info:
        build_transformer_model(str(path), CKPT)
    message = str(info.value)
    assert "Transformer-0-FeedForward/intermediate/kernel (64, 96)" in message
    assert "bert/encoder/layer_0/intermediate/dense/kernel (64, 128)" in message


def test_missing_variable_is_loud_unless_opted_out(tmp_path):
    reader = load_checkpoint(CKPT)
    tensors = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    del tensors["bert/encoder/layer_1/output/LayerNorm/gamma"]
    from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint

    path = write_tf1_checkpoint(str(tmp_path / "partial.ckpt"), tensors)
    with pytest.raises(CheckpointMismatchError, match="layer_1/output/LayerNorm/gamma"):
        build_transformer_model(CONFIG, path)
    with pytest.warns(UserWarning, match="missing"):
        model = build_transformer_model(CONFIG, path, strict=False)
    np.testing.assert_array_equal(model.get_layer("Transformer-1-FeedForward-Norm").gamma.numpy(), 1.0)


def test_bad_config_errors_name_the_problem(tmp_path):
    config = json.load(open(CONFIG))
    del config["num_hidden_layers"]
    (tmp_path / "a.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing required key.*num_hidden_layers"):
        build_transformer_model(str(tmp_path / "a.json"))
    config["num_hidden_layers"] = "2"
    (tmp_path / "b.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'num_hidden_layers' must be a non-negative integer"):
        build_transformer_model(str(tmp_path / "b.json"))
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ValueError, match="c.json.*not valid JSON"):
        build_transformer_model(str(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="unknown model 'bart'"):
        build_transformer_model(CONFIG, model="bart")


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sequence_longer_than_max_position_is_a_clear_error():
    model = build_transformer_model(CONFIG)
    ids = np.ones((1, 129), "int32")
    with pytest.raises(ValueError, match="sequence length 129 exceeds the maximum position 128"):
        model.predict([ids, np.zeros_like(ids)], verbose=0)
    # A fresh model: on JAX, Keras leaves a model unusable after an exception inside predict.
    model = build_transformer_model(CONFIG)
    assert forward(model, [ids[:, :128], np.zeros((1, 128), "int32")]).shape == (1, 128, 64)
