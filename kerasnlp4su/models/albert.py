"""ALBERT: factorised embeddings and one transformer block shared by all layers (`albert` family)."""

from kerasnlp4su.checkpoints.names import (CLASSIFIER, DENSE, NORM, VECTOR, HFFamily, dense_names,
                                          norm_names)
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.models.bert import BERT, hf_embeddings, tiny_bert_heads
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors

_SHARED = "bert/encoder/transformer/group_0/inner_group_0"
_HF_SHARED = "albert.encoder.albert_layer_groups.0.albert_layers.0"


class ALBERT(BERT):
    """ALBERT (official release layout): every layer reuses one block.

    The same Keras layer objects are called at every depth, so the model
    holds a single block's weights, exactly as the official checkpoint.
    `with_nsp=True` gives the sentence-order head.

    Example:
    >>> model = ALBERT(vocab_size=100, embedding_size=4, hidden_size=8, num_hidden_layers=3,
    ...                num_attention_heads=2, intermediate_size=16).build()
    """

    def __init__(self, num_hidden_groups=1, inner_group_num=1, **kwargs):
        if num_hidden_groups != 1 or inner_group_num != 1:
            raise ValueError(
                "only ALBERT with num_hidden_groups=1 and inner_group_num=1 (all official "
                f"releases) is supported, got {num_hidden_groups} and {inner_group_num}")
        super().__init__(**kwargs)

    def block_names(self, index):
        return "Transformer-MultiHeadSelfAttention", "Transformer-FeedForward"

    def block_mapping(self, keras_index, official_prefix=_SHARED):
        attention, ffn = self.block_names(keras_index)
        o = official_prefix
        names = {}
        for part in ("query", "key", "value"):
            names.update(dense_names(f"{attention}/{part}", f"{o}/attention_1/self/{part}"))
        names.update(dense_names(f"{attention}/output", f"{o}/attention_1/output/dense"))
        names.update(norm_names(f"{attention}-Norm", f"{o}/LayerNorm"))
        names.update(dense_names(f"{ffn}/intermediate", f"{o}/ffn_1/intermediate/dense"))
        names.update(dense_names(f"{ffn}/output", f"{o}/ffn_1/intermediate/output/dense"))
        names.update(norm_names(f"{ffn}-Norm", f"{o}/LayerNorm_1"))
        return names

    def variable_mapping(self):
        names = self.embedding_mapping()
        for index in range(self.num_hidden_layers):
            names.update(self.block_mapping(index))
        names.update(self.head_mapping())
        return names


class ALBERTUnshared(ALBERT):
    """ALBERT with a separate copy of the block per layer.

    Every layer is initialised from the one official shared block, then the
    copies can be fine-tuned independently (bert4keras `albert_unshared`).
    Such a model cannot be written back as an official checkpoint once its
    layers differ.
    """

    def block_names(self, index):
        return BERT.block_names(self, index)


def _hf_write_config(t):
    mlm, nsp = bool(t.with_mlm), bool(t.with_nsp)
    architecture = ("AlbertForPreTraining" if mlm and nsp else "AlbertForMaskedLM" if mlm
                    else "AlbertModel")
    return architecture, {"embedding_size": t.embedding_size, "num_hidden_groups": 1,
                          "inner_group_num": 1}, []


def albert_tensors(config, rng):
    """Official ALBERT: width-E embeddings, one shared block under group_0/inner_group_0."""
    h, i, v, e = (config["hidden_size"], config["intermediate_size"], config["vocab_size"],
                  config["embedding_size"])
    t = TinyTensors(rng)
    t.embeddings("bert/embeddings", config, e)
    t.dense("bert/encoder/embedding_hidden_mapping_in", e, h)
    for part in ("query", "key", "value"):
        t.dense(f"{_SHARED}/attention_1/self/{part}", h, h)
    t.dense(f"{_SHARED}/attention_1/output/dense", h, h)
    t.norm(f"{_SHARED}/LayerNorm", h)
    t.dense(f"{_SHARED}/ffn_1/intermediate/dense", h, i)
    t.dense(f"{_SHARED}/ffn_1/intermediate/output/dense", i, h)
    t.norm(f"{_SHARED}/LayerNorm_1", h)
    tiny_bert_heads(t, h, e, v)
    return t.tensors


ALBERT_FAMILY = register_family(Family(
    "albert", {"albert": ALBERT, "albert_unshared": ALBERTUnshared},
    signature=Signature(required=[r"bert/encoder/transformer/group_0/.*"]),
    hf=HFFamily("albert", "albert", "albert", (
        hf_embeddings("bert", "albert")
        + [(DENSE, "bert/encoder/embedding_hidden_mapping_in",
            "albert.encoder.embedding_hidden_mapping_in")]
        + [(DENSE, f"{_SHARED}/attention_1/self/{p}", f"{_HF_SHARED}.attention.{p}")
           for p in ("query", "key", "value")]
        + [(DENSE, f"{_SHARED}/attention_1/output/dense", f"{_HF_SHARED}.attention.dense"),
           (NORM, f"{_SHARED}/LayerNorm", f"{_HF_SHARED}.attention.LayerNorm"),
           (DENSE, f"{_SHARED}/ffn_1/intermediate/dense", f"{_HF_SHARED}.ffn"),
           (DENSE, f"{_SHARED}/ffn_1/intermediate/output/dense", f"{_HF_SHARED}.ffn_output"),
           (NORM, f"{_SHARED}/LayerNorm_1", f"{_HF_SHARED}.full_layer_layer_norm"),
           (DENSE, "bert/pooler/dense", "albert.pooler"),
           (DENSE, "cls/predictions/transform/dense", "predictions.dense"),
           (NORM, "cls/predictions/transform/LayerNorm", "predictions.LayerNorm"),
           (VECTOR, "cls/predictions/output_bias", "predictions.bias", "predictions.decoder.bias"),
           (CLASSIFIER, "cls/seq_relationship", "sop_classifier.classifier")]),
        markers=("albert_layer_groups",)),
    hf_write_config=_hf_write_config,
    tiny_config=dict(TINY_BASE, embedding_size=16, num_hidden_layers=3),
    tiny_tensors=albert_tensors))
