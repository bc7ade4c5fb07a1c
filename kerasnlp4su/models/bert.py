"""BERT and RoBERTa (same architecture, same official checkpoint names): the `bert` family."""

from kerasnlp4su.checkpoints.names import (CLASSIFIER, DENSE, NORM, TABLE, VECTOR, HFFamily,
                                          dense_names, norm_names)
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors
from kerasnlp4su.models.transformer import Transformer


class BERT(Transformer):
    """BERT: learned positions, post-LayerNorm, tanh-approximate GELU (official code).

    Example:
    >>> model = BERT(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...              num_attention_heads=2, intermediate_size=16, with_mlm=True).build()
    """

    official_gelu = "gelu_tanh"
    prefix = "bert"

    def embedding_mapping(self):
        p = self.prefix
        names = {
            "Embedding-Token/embeddings": f"{p}/embeddings/word_embeddings",
            "Embedding-Segment/embeddings": f"{p}/embeddings/token_type_embeddings",
            "Embedding-Position/embeddings": f"{p}/embeddings/position_embeddings",
        }
        names.update(norm_names("Embedding-Norm", f"{p}/embeddings/LayerNorm"))
        names.update(dense_names("Embedding-Mapping", f"{p}/encoder/embedding_hidden_mapping_in"))
        return names

    def block_mapping(self, keras_index, official_prefix):
        """Names of one block: keras block `keras_index` <- official scope."""
        attention, ffn = self.block_names(keras_index)
        o = official_prefix
        names = {}
        for part in ("query", "key", "value"):
            names.update(dense_names(f"{attention}/{part}", f"{o}/attention/self/{part}", self.use_bias))
        names.update(dense_names(f"{attention}/output", f"{o}/attention/output/dense", self.use_bias))
        names.update(norm_names(f"{attention}-Norm", f"{o}/attention/output/LayerNorm"))
        names.update(dense_names(f"{ffn}/intermediate", f"{o}/intermediate/dense", self.use_bias))
        names.update(dense_names(f"{ffn}/output", f"{o}/output/dense", self.use_bias))
        names.update(norm_names(f"{ffn}-Norm", f"{o}/output/LayerNorm"))
        return names

    def head_mapping(self):
        names = {}
        names.update(dense_names("Pooler-Dense", f"{self.prefix}/pooler/dense"))
        names["NSP-Proba/kernel"] = "cls/seq_relationship/output_weights"
        names["NSP-Proba/bias"] = "cls/seq_relationship/output_bias"
        names.update(dense_names("MLM-Dense", "cls/predictions/transform/dense"))
        names.update(norm_names("MLM-Norm", "cls/predictions/transform/LayerNorm"))
        names["MLM-Bias/bias"] = "cls/predictions/output_bias"
        return names

    def variable_mapping(self):
        names = self.embedding_mapping()
        for index in range(self.num_hidden_layers):
            names.update(self.block_mapping(index, f"{self.prefix}/encoder/layer_{index}"))
        names.update(self.head_mapping())
        return names

    def checkpoint_transforms(self):
        # The official NSP weights are stored as (2, hidden), transposed
        # relative to a Dense kernel.
        return {"cls/seq_relationship/output_weights": (lambda w: w.T, lambda w: w.T)}

    def embedding_variables(self):
        return [f"{self.prefix}/embeddings/word_embeddings", "cls/predictions/output_bias"]


# ------------------------------------------------ HF name tables (shared by the BERT-like families)
def hf_embeddings(official, hf, positions=True):
    """HF rules of BERT-style embeddings under scopes `official` / `hf`."""
    tables = ["word_embeddings", "token_type_embeddings"]
    if positions:
        tables.append("position_embeddings")
    rules = [(TABLE, f"{official}/embeddings/{t}", f"{hf}.embeddings.{t}") for t in tables]
    rules.append((NORM, f"{official}/embeddings/LayerNorm", f"{hf}.embeddings.LayerNorm"))
    return rules


def hf_encoder_layer(official, hf):
    """HF rules of a BERT-style post-LN layer; `{i}` is the layer index on both sides."""
    o, h = f"{official}/layer_{{i}}", f"{hf}.layer.{{i}}"
    rules = [(DENSE, f"{o}/attention/self/{p}", f"{h}.attention.self.{p}")
             for p in ("query", "key", "value")]
    rules += [
        (DENSE, f"{o}/attention/output/dense", f"{h}.attention.output.dense"),
        (NORM, f"{o}/attention/output/LayerNorm", f"{h}.attention.output.LayerNorm"),
        (DENSE, f"{o}/intermediate/dense", f"{h}.intermediate.dense"),
        (DENSE, f"{o}/output/dense", f"{h}.output.dense"),
        (NORM, f"{o}/output/LayerNorm", f"{h}.output.LayerNorm"),
    ]
    return rules


HF_HEADS = [
    (DENSE, "cls/predictions/transform/dense", "cls.predictions.transform.dense"),
    (NORM, "cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm"),
    # The first HF name is written; the others are accepted when reading
    # (the decoder bias is tied to `cls.predictions.bias`).
    (VECTOR, "cls/predictions/output_bias", "cls.predictions.bias", "cls.predictions.decoder.bias"),
    (CLASSIFIER, "cls/seq_relationship", "cls.seq_relationship"),
]


def _hf_read_config(config, source):
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{source}: position_embedding_type="
                         f"{config['position_embedding_type']!r} is not supported (only 'absolute')")
    return {}


def _hf_write_config(t):
    mlm, nsp = bool(t.with_mlm), bool(t.with_nsp)
    architecture = ("BertForPreTraining" if mlm and nsp else "BertForMaskedLM" if mlm
                    else "BertForNextSentencePrediction" if nsp else "BertModel")
    problems = []
    if t.embedding_size != t.hidden_size:
        problems.append("embedding_size != hidden_size (HF BERT has no embedding projection)")
    return architecture, {"position_embedding_type": "absolute"}, problems


# ------------------------------------------------------------------ tiny test checkpoint
def tiny_bert_layer(t, p, h, i):
    """One official BERT-style layer under scope `p` (hidden `h`, intermediate `i`)."""
    for part in ("query", "key", "value"):
        t.dense(f"{p}/attention/self/{part}", h, h)
    t.dense(f"{p}/attention/output/dense", h, h)
    t.norm(f"{p}/attention/output/LayerNorm", h)
    t.dense(f"{p}/intermediate/dense", h, i)
    t.dense(f"{p}/output/dense", i, h)
    t.norm(f"{p}/output/LayerNorm", h)


def tiny_bert_heads(t, h, e, v, prefix="bert"):
    """Official pooler (under `prefix`), MLM and NSP heads."""
    t.dense(f"{prefix}/pooler/dense", h, h)
    t.dense("cls/predictions/transform/dense", h, e)
    t.norm("cls/predictions/transform/LayerNorm", e)
    t.tensors["cls/predictions/output_bias"] = t.w(v)
    t.tensors["cls/seq_relationship/output_weights"] = t.w(2, h)
    t.tensors["cls/seq_relationship/output_bias"] = t.w(2)


def bert_tensors(config, rng, positions=True):
    """Official BERT (or RoFormer, `positions=False`) names and shapes."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    t = TinyTensors(rng)
    t.embeddings("bert/embeddings", config, h, positions)
    for layer in range(config["num_hidden_layers"]):
        tiny_bert_layer(t, f"bert/encoder/layer_{layer}", h, i)
    tiny_bert_heads(t, h, h, v)
    t.training_state("bert/pooler/dense/kernel")
    return t.tensors


BERT_FAMILY = register_family(Family(
    "bert", {"bert": BERT, "roberta": BERT},
    # The position table tells BERT from RoFormer; ALBERT shares it but
    # keeps its block under transformer/group_0.
    signature=Signature(required=[r"bert/embeddings/position_embeddings", r"bert/encoder/.*"],
                        forbidden=[r"bert/encoder/transformer/.*"]),
    hf=HFFamily("bert", "bert", "bert", (
        hf_embeddings("bert", "bert")
        + hf_encoder_layer("bert/encoder", "bert.encoder")
        + [(DENSE, "bert/pooler/dense", "bert.pooler.dense")]
        + HF_HEADS)),
    hf_read_config=_hf_read_config, hf_write_config=_hf_write_config,
    tiny_config=dict(TINY_BASE), tiny_tensors=bert_tensors))
