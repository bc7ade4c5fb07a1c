"""HuggingFace-format weights: read (`model.safetensors`, no torch) and write."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from backend_utils import forward, subprocess_env

from kerasnlp4su.checkpoints.hf import (HFCheckpointReader, hf_config_path, hf_to_official, load_hf_model,
                                        official_to_hf, read_hf_config, save_weights_as_hf)
from kerasnlp4su.checkpoints.loader import CheckpointMismatchError
from kerasnlp4su.checkpoints.readers import TF1CheckpointReader
from kerasnlp4su.models import build_transformer_model

TINY = os.path.join(os.path.dirname(__file__), "..", "checkpoints", "tiny_bert")
CONFIG = os.path.join(TINY, "bert_config.json")
CKPT = os.path.join(TINY, "bert_model.ckpt")

TOKENS = np.array([[2, 11, 12, 13, 14, 3, 0, 0], [2, 40, 41, 3, 50, 51, 52, 3]])
SEGMENTS = np.array([[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]])
KEEP = TOKENS != 0
SMALL = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=64)


def torch_modules():
    return pytest.importorskip("torch"), pytest.importorskip("transformers")


def randomize(model, torch, seed=0):
    """Perturb every trainable parameter (HF init leaves LayerNorms at 1/0, biases at 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def run_hf(model, torch, tokens=TOKENS, segments=SEGMENTS, **extra):
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(tokens), attention_mask=torch.tensor((tokens != 0).astype("int64")),
                     token_type_ids=torch.tensor(segments), **extra)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------ names
def test_name_translation_both_ways():
    cases = [
        ("bert", "bert/encoder/layer_11/attention/self/query/kernel",
         "bert.encoder.layer.11.attention.self.query.weight", True),
        ("bert", "bert/embeddings/LayerNorm/gamma", "bert.embeddings.LayerNorm.weight", False),
        ("bert", "bert/embeddings/word_embeddings", "bert.embeddings.word_embeddings.weight", False),
        ("bert", "cls/predictions/output_bias", "cls.predictions.bias", False),
        ("bert", "cls/seq_relationship/output_weights", "cls.seq_relationship.weight", False),
        ("albert", "bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/output/dense/kernel",
         "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.weight", True),
        ("albert", "bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/beta",
         "albert.encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm.bias", False),
        ("albert", "bert/pooler/dense/kernel", "albert.pooler.weight", True),
        ("albert", "cls/seq_relationship/output_bias", "sop_classifier.classifier.bias", False),
        ("electra", "discriminator_predictions/dense_1/kernel",
         "discriminator_predictions.dense_prediction.weight", True),
        ("electra_generator", "generator/encoder/layer_0/output/dense/bias",
         "electra.encoder.layer.0.output.dense.bias", False),
        ("electra_generator", "generator/embeddings_project/kernel",
         "electra.embeddings_project.weight", True),
        ("electra_generator", "generator_predictions/output_bias", "generator_lm_head.bias", False),
        ("roformer", "bert/encoder/layer_1/output/LayerNorm/gamma",
         "roformer.encoder.layer.1.output.LayerNorm.weight", False),
    ]
    for family, official, hf, transpose in cases:
        assert official_to_hf(official, family) == (hf, transpose)
        assert hf_to_official(hf, family) == (official, transpose)
    # Accepted on reading only: tied decoder bias and pre-2019 gamma/beta names.
    assert hf_to_official("cls.predictions.decoder.bias", "bert")[0] == "cls/predictions/output_bias"
    assert hf_to_official("bert.embeddings.LayerNorm.gamma", "bert")[0] == "bert/embeddings/LayerNorm/gamma"
    assert hf_to_official("bert.embeddings.position_ids", "bert") is None
    assert official_to_hf("roformer/nothing", "roformer") is None


def test_roformer_v2_has_no_hf_format():
    with pytest.raises(ValueError, match="RoFormer-v2 has no HuggingFace"):
        official_to_hf("bert/embeddings/word_embeddings", "roformer_v2")
    t = build_transformer_model(None, model="roformer_v2", return_keras_model=False, **{
        k: v for k, v in SMALL.items() if k != "max_position_embeddings"})
    with pytest.raises(ValueError, match="RoFormer-v2 has no HuggingFace"):
        save_weights_as_hf(t, "unused")


# ------------------------------------------------------------------- BERT
@pytest.fixture(scope="module")
def official_bert():
    return build_transformer_model(CONFIG, CKPT, with_nsp=True, with_mlm="linear",
                                   return_keras_model=False)


@pytest.fixture(scope="module")
def exported_bert(official_bert, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bert_hf"))
    save_weights_as_hf(official_bert, directory, vocab_path=os.path.join(TINY, "vocab.txt"))
    return directory


def test_export_is_lossless_and_atomic(exported_bert):
    assert sorted(os.listdir(exported_bert)) == ["config.json", "model.safetensors", "vocab.txt"]
    config = json.load(open(os.path.join(exported_bert, "config.json")))
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    assert config["hidden_act"] == "gelu_new"  # the official tanh form, by its HF name
    official = TF1CheckpointReader(CKPT)  # training state (adam slots, global_step) filtered
    reader = HFCheckpointReader(exported_bert, "bert")
    assert reader.names() == official.names() and len(reader.names()) == 46
    assert reader.untranslated == []
    for name in reader.names():
        assert reader.shape(name) == official.shape(name)
        np.testing.assert_array_equal(reader.get(name), official.get(name))
    assert reader.hf_name("bert/pooler/dense/kernel") == "bert.pooler.dense.weight"


def test_export_matches_transformers(official_bert, exported_bert):
    torch, transformers = torch_modules()
    hf = transformers.BertForPreTraining.from_pretrained(exported_bert)
    out = run_hf(hf, torch, tokens=TOKENS * 30, output_hidden_states=True)
    nsp, mlm = forward(official_bert.model, [TOKENS * 30, SEGMENTS])
    np.testing.assert_allclose(mlm[KEEP], out.prediction_logits.numpy()[KEEP], atol=1e-4)
    np.testing.assert_allclose(nsp, softmax(out.seq_relationship_logits.numpy()), atol=1e-5)


@pytest.fixture(scope="module")
def hf_bert_dir(tmp_path_factory):
    torch, transformers = torch_modules()
    config = transformers.BertConfig(**SMALL)  # hidden_act "gelu": exact erf in HF
    hf = randomize(transformers.BertForPreTraining(config), torch)
    directory = str(tmp_path_factory.mktemp("hf_bert"))
    hf.save_pretrained(directory)  # safetensors by default
    return directory, hf


def test_transformers_bert_loads_into_our_model(hf_bert_dir):
    torch, _ = torch_modules()
    directory, hf = hf_bert_dir
    out = run_hf(hf, torch, output_hidden_states=True)
    nsp, mlm = forward(load_hf_model(directory, with_nsp=True, with_mlm="linear"), [TOKENS, SEGMENTS])
    np.testing.assert_allclose(mlm[KEEP], out.prediction_logits.numpy()[KEEP], atol=1e-4)
    np.testing.assert_allclose(nsp, softmax(out.seq_relationship_logits.numpy()), atol=1e-5)
    # Same through build_transformer_model with the HF config translated.
    kwargs = read_hf_config(directory)
    assert kwargs["hidden_act"] == "gelu_erf" and kwargs["max_position"] == 64
    encoder = build_transformer_model(None, directory, model="bert", **kwargs)
    np.testing.assert_allclose(forward(encoder, [TOKENS, SEGMENTS])[KEEP],
                               out.hidden_states[-1].numpy()[KEEP], atol=1e-4)
    assert hf_config_path(directory) == os.path.join(directory, "config.json")
    assert hf_config_path(os.path.join(directory, "model.safetensors")) == hf_config_path(directory)
    assert hf_config_path(CKPT) is None
    # keep_tokens selects rows of the HF embedding table and MLM bias too.
    keep = [0, 1, 2, 11, 40]
    small = load_hf_model(directory, with_mlm="linear", keep_tokens=keep)
    np.testing.assert_allclose(small.get_layer("Embedding-Token").embeddings.numpy(),
                               hf.bert.embeddings.word_embeddings.weight.detach().numpy()[keep])
    np.testing.assert_allclose(small.get_layer("MLM-Bias").bias.numpy(),
                               hf.cls.predictions.bias.detach().numpy()[keep])


def test_bare_bert_model_file_without_prefix(tmp_path):
    torch, transformers = torch_modules()
    # A non-default LayerNorm epsilon must reach every norm of our model.
    config = transformers.BertConfig(layer_norm_eps=1e-3, **SMALL)
    hf = randomize(transformers.BertModel(config), torch, seed=1)
    hf.save_pretrained(str(tmp_path))
    reader = HFCheckpointReader(str(tmp_path), "bert")
    assert "bert/pooler/dense/kernel" in reader.names()
    assert reader.hf_name("bert/pooler/dense/kernel") == "pooler.dense.weight"
    out = run_hf(hf, torch)
    model = load_hf_model(str(tmp_path), with_pool=True, return_keras_model=False)
    pooled = forward(model.model, [TOKENS, SEGMENTS])
    np.testing.assert_allclose(pooled, out.pooler_output.numpy(), atol=1e-5)
    assert model.model.get_layer("Transformer-1-FeedForward-Norm").epsilon == 1e-3


def test_sharded_and_bfloat16_files(hf_bert_dir, tmp_path):
    torch, transformers = torch_modules()
    directory, hf = hf_bert_dir
    reference = HFCheckpointReader(directory, "bert")
    hf.save_pretrained(str(tmp_path / "sharded"), max_shard_size="20KB")
    assert os.path.exists(tmp_path / "sharded" / "model.safetensors.index.json")
    sharded = HFCheckpointReader(str(tmp_path / "sharded"), "bert")
    assert sharded.names() == reference.names()
    for name in reference.names():
        np.testing.assert_array_equal(sharded.get(name), reference.get(name))
    # bfloat16 (numpy has no such dtype): widened exactly as torch widens it.
    from safetensors.torch import save_file

    state = {k: v.to(torch.bfloat16) for k, v in hf.state_dict().items()
             if v.is_floating_point() and k != "cls.predictions.decoder.weight"}
    save_file(state, str(tmp_path / "bf16.safetensors"), metadata={"format": "pt"})
    bf16 = HFCheckpointReader(str(tmp_path / "bf16.safetensors"), "bert")
    name = "bert/encoder/layer_1/intermediate/dense/kernel"
    expected = state["bert.encoder.layer.1.intermediate.dense.weight"].float().numpy().T
    np.testing.assert_array_equal(bf16.get(name), expected)
    assert bf16.get(name).dtype == np.float32


def test_reading_needs_neither_torch_nor_tensorflow(exported_bert):
    backend = "jax" if importlib.util.find_spec("jax") else "numpy"
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from kerasnlp4su.checkpoints.hf import load_hf_model\n"
        f"m = load_hf_model({exported_bert!r}, with_mlm='linear')\n"
        "print(m.predict([np.array([[2, 5, 3]]), np.zeros((1, 3), 'int32')], verbose=0).shape)\n"
        "print('imported:', 'torch' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=subprocess_env(backend),
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 3, 2646)" in result.stdout
    assert "imported: False False" in result.stdout


# ------------------------------------------------------------------ errors
def test_missing_and_corrupt_files_name_the_path(exported_bert, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        build_transformer_model(CONFIG, str(tmp_path / "nope.safetensors"))
    data = open(os.path.join(exported_bert, "model.safetensors"), "rb").read()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors.*corrupt or truncated"):
        build_transformer_model(CONFIG, str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"\x07" * 40)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        build_transformer_model(CONFIG, str(tmp_path / "model.safetensors"))
    only_bin = tmp_path / "bin"
    only_bin.mkdir()
    (only_bin / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="safe_serialization=True"):
        build_transformer_model(CONFIG, str(only_bin))
    # A TF1 checkpoint directory that also ships pytorch_model.bin stays a TF1 checkpoint.
    for f in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, f), only_bin / f)
    build_transformer_model(CONFIG, str(only_bin))
    with pytest.raises(FileNotFoundError, match="HF model directory .*nowhere.* not found"):
        load_hf_model(str(tmp_path / "nowhere"))


def test_wrong_family_and_missing_tensors_are_reported(exported_bert, tmp_path):
    torch, transformers = torch_modules()
    albert = transformers.AlbertModel(transformers.AlbertConfig(embedding_size=16, **SMALL))
    albert.save_pretrained(str(tmp_path / "albert"))
    with pytest.raises(ValueError, match="looks like an HF albert model"):
        build_transformer_model(None, str(tmp_path / "albert"), model="bert", **read_hf_config(
            str(tmp_path / "albert")))
    from safetensors.numpy import load_file, save_file

    tensors = load_file(os.path.join(exported_bert, "model.safetensors"))
    del tensors["bert.encoder.layer.1.output.LayerNorm.weight"]
    (tmp_path / "partial").mkdir()
    save_file(tensors, str(tmp_path / "partial" / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="bert/encoder/layer_1/output/LayerNorm/gamma"):
        build_transformer_model(CONFIG, str(tmp_path / "partial"))
    with pytest.warns(UserWarning, match="missing"):
        build_transformer_model(CONFIG, str(tmp_path / "partial"), strict=False)


def test_unexportable_models_fail_loudly():
    t = build_transformer_model(CONFIG, return_keras_model=False, embedding_size=32)
    with pytest.raises(ValueError, match="embedding_size != hidden_size"):
        save_weights_as_hf(t, "unused")


# ------------------------------------------------------- other families
FAMILIES = {
    # model name: (HF class, HF config class, config, our kwargs, HF output -> ours)
    "albert": ("AlbertForPreTraining", "AlbertConfig", dict(SMALL, embedding_size=16, num_hidden_layers=3),
               dict(with_nsp=True, with_mlm="linear")),
    "electra": ("ElectraForPreTraining", "ElectraConfig", dict(SMALL, embedding_size=16),
                dict(with_discriminator="linear")),
    "electra_generator": ("ElectraForMaskedLM", "ElectraConfig",
                          dict(SMALL, embedding_size=16, hidden_size=16, num_attention_heads=2,
                               intermediate_size=32), dict(with_mlm="linear")),
    "roformer": ("RoFormerForMaskedLM", "RoFormerConfig", SMALL, dict(with_mlm="linear")),
}


def compare(family, ours, out):
    if family == "albert":
        sop, mlm = ours
        np.testing.assert_allclose(mlm[KEEP], out.prediction_logits.numpy()[KEEP], atol=1e-4)
        np.testing.assert_allclose(sop, softmax(out.sop_logits.numpy()), atol=1e-5)
    elif family == "electra":
        np.testing.assert_allclose(ours[..., 0][KEEP], out.logits.numpy()[KEEP], atol=1e-4)
    else:
        np.testing.assert_allclose(ours[KEEP], out.logits.numpy()[KEEP], atol=1e-4)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_round_trip_through_transformers(family, tmp_path):
    torch, transformers = torch_modules()
    hf_cls, config_cls, config, kwargs = FAMILIES[family]
    hf = randomize(getattr(transformers, hf_cls)(getattr(transformers, config_cls)(**config)), torch)
    hf.save_pretrained(str(tmp_path / "hf"))
    out = run_hf(hf, torch)
    # transformers -> ours (the model name comes from config.json).
    t = load_hf_model(str(tmp_path / "hf"), return_keras_model=False, **kwargs)
    assert t.model_type == family
    compare(family, forward(t.model, [TOKENS, SEGMENTS]), out)
    # ours -> transformers.
    save_weights_as_hf(t, str(tmp_path / "ours"))
    back = getattr(transformers, hf_cls).from_pretrained(str(tmp_path / "ours"))
    compare(family, forward(t.model, [TOKENS, SEGMENTS]), run_hf(back, torch))
    original = HFCheckpointReader(str(tmp_path / "hf"), family)
    written = HFCheckpointReader(str(tmp_path / "ours"), family)
    assert written.names() == original.names()
    for name in original.names():
        np.testing.assert_array_equal(written.get(name), original.get(name))


def test_official_checkpoints_round_trip_through_hf_format(tmp_path):
    import tiny_checkpoints

    for family, kwargs in [("albert", dict(with_nsp=True, with_mlm=True)),
                           ("electra", dict(with_discriminator=True)),
                           # HF RoFormer has no pooler/NSP: written anyway, ignored by transformers.
                           ("roformer", dict(with_nsp=True, with_mlm=True))]:
        config_path, path = tiny_checkpoints.write(str(tmp_path / family), family)
        t = build_transformer_model(config_path, path, model=family, return_keras_model=False,
                                    **kwargs)
        save_weights_as_hf(t, str(tmp_path / f"{family}_hf"))
        official = tf.train.load_checkpoint(path)
        reader = HFCheckpointReader(str(tmp_path / f"{family}_hf"), family)
        assert reader.names() == set(t.checkpoint_tensors())
        for name in reader.names():
            np.testing.assert_array_equal(reader.get(name), official.get_tensor(name))
        again = load_hf_model(str(tmp_path / f"{family}_hf"), return_keras_model=False, **kwargs)
        assert (again.model_type, again.hidden_act) == (t.model_type, t.hidden_act)
        for a, b in zip(keras.tree.flatten(forward(again.model, [TOKENS, SEGMENTS])),
                        keras.tree.flatten(forward(t.model, [TOKENS, SEGMENTS]))):
            np.testing.assert_allclose(a, b, atol=1e-6)
