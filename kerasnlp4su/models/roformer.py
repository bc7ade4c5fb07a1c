"""RoFormer (rotary positions) v1 and v2: the `roformer` and `roformer_v2` families."""

import keras
import numpy as np

from kerasnlp4su.checkpoints.names import DENSE, HFFamily
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.models.bert import (HF_HEADS, BERT, bert_tensors, hf_embeddings,
                                     hf_encoder_layer, tiny_bert_layer)
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors


class RoFormer(BERT):
    """RoFormer v1: BERT with RoPE (interleaved pairs) instead of position embeddings.

    The official release was trained with bert4keras, whose GELU is the
    exact erf form. Sequences may be longer than any trained length.

    Example:
    >>> model = RoFormer(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...                  num_attention_heads=2, intermediate_size=16).build()
    """

    official_gelu = "gelu_erf"
    position_encoding = "rotary"


class RoFormerV2(RoFormer):
    """RoFormer v2: no biases, parameter-free RMS norms, tied MLM output without transform.

    Example:
    >>> model = RoFormerV2(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...                    num_attention_heads=2, intermediate_size=16, hidden_act="relu",
    ...                    with_mlm=True).build()
    """

    use_bias = False
    layer_norm_kwargs = {"epsilon": 1e-7, "center": False, "scale": False, "zero_mean": False}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.with_pool:
            raise ValueError("RoFormer-v2 has no pooler in its official release")
        if self.embedding_size != self.hidden_size:
            raise ValueError("RoFormer-v2 releases use embedding_size == hidden_size; got "
                             f"{self.embedding_size} and {self.hidden_size}")

    def apply_mlm_head(self, x):
        mlm_activation = "softmax" if self.with_mlm is True else self.with_mlm
        x = self.dropout(x, self.dropout_rate, "MLM-Dropout")
        x = self.apply(x, name="Embedding-Token", call_kwargs={"mode": "dense"})
        return self.apply(x, keras.layers.Activation, name="MLM-Activation",
                          activation=mlm_activation, dtype="float32")

    def embedding_variables(self):
        return ["bert/embeddings/word_embeddings"]


# v1 has biases and LayerNorm parameters; v2 has neither. Neither has a
# position table (which BERT has).
_WITH_BIASES = r"bert/(embeddings|encoder)/(.*/bias|(.*/)?LayerNorm/.*)"
_NOT_BERT_OR_ALBERT = [r"bert/embeddings/position_embeddings", r"bert/encoder/transformer/.*"]


def _hf_read_config(config, source):
    if config.get("rotary_value"):
        raise ValueError(f"{source}: RoFormer with rotary_value=true is not supported")
    return {}


def _hf_write_config(t):
    return ("RoFormerForMaskedLM" if t.with_mlm else "RoFormerModel"), \
        {"embedding_size": t.embedding_size, "rotary_value": False}, []


def _hf_sinusoids(t):
    # transformers' RoFormerSinusoidalPositionalEmbedding table: sines of the
    # even frequencies in the first half, cosines in the second.
    positions, dim = t.max_position, t.attention_head_size
    pos = np.arange(positions, dtype=np.float64)[:, None]
    angles = pos / np.power(10000, 2 * (np.arange(dim) // 2) / dim)[None, :]
    half = (dim + 1) // 2
    table = np.empty((positions, dim))
    table[:, :half] = np.sin(angles[:, 0::2])
    table[:, half:] = np.cos(angles[:, 1::2])
    return {"roformer.encoder.embed_positions.weight": table.astype(np.float32)}


def roformer_v2_tensors(config, rng):
    """RoFormer-v2 release: no biases, no LayerNorm parameters, no pooler or MLM transform."""
    h, i = config["hidden_size"], config["intermediate_size"]
    t = TinyTensors(rng, bias=False, norm=False)
    t.embeddings("bert/embeddings", config, h, positions=False)
    for layer in range(config["num_hidden_layers"]):
        tiny_bert_layer(t, f"bert/encoder/layer_{layer}", h, i)
    return t.tensors


ROFORMER_FAMILY = register_family(Family(
    "roformer", {"roformer": RoFormer},
    # NEZHA's releases have these very names; its config's relative-position
    # key is what tells them apart when the config is known.
    signature=Signature(required=[_WITH_BIASES], forbidden=_NOT_BERT_OR_ALBERT,
                        forbidden_config_keys=["max_relative_position"]),
    # HF RoFormer has no pooler/NSP head; the official (bert4keras) release
    # has them. They are written under BERT-like names that transformers
    # ignores, so a round trip through the HF format loses nothing.
    hf=HFFamily("roformer", "roformer", "roformer", (
        hf_embeddings("bert", "roformer", positions=False)
        + [(DENSE, "bert/encoder/embedding_hidden_mapping_in", "roformer.embeddings_project")]
        + hf_encoder_layer("bert/encoder", "roformer.encoder")
        + [(DENSE, "bert/pooler/dense", "roformer.pooler.dense")]
        + HF_HEADS), markers=("embed_positions",)),
    hf_read_config=_hf_read_config, hf_write_config=_hf_write_config,
    hf_extra_tensors=_hf_sinusoids,
    tiny_config=dict(TINY_BASE),
    tiny_tensors=lambda config, rng: bert_tensors(config, rng, positions=False)))

ROFORMER_V2_FAMILY = register_family(Family(
    "roformer_v2", {"roformer_v2": RoFormerV2},
    signature=Signature(required=[r"bert/encoder/.*"],
                        forbidden=[_WITH_BIASES] + _NOT_BERT_OR_ALBERT),
    hf_unsupported=(
        "RoFormer-v2 has no HuggingFace `transformers` port, so there is no HF format to "
        "read or write: use the official TF1 checkpoint (load_weights_from_checkpoint / "
        "save_weights_as_checkpoint) instead"),
    tiny_config=dict(TINY_BASE, hidden_act="relu"),
    tiny_tensors=roformer_v2_tensors))
