"""GPT2-ML (imcaspar/gpt2-ml, Grover's code): the `gpt2_ml` family, `newslm/` names."""

from kerasnlp4su.checkpoints.names import dense_names, norm_names
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.models.gpt import NO_HF_PORT, GPTLanguageModel
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors


class GPT2_ML(GPTLanguageModel):  # noqa: N801  (bert4keras's name)
    """GPT2-ML: despite the name, closer to GPT than to GPT-2.

    A LayerNorm after the embeddings; in each block the attention residual
    has no norm, and the feed-forward residual has one before its sublayer
    (`-Norm-0`, the shortcut skips it) and one after the sum (`-Norm-1`).
    LayerNorm epsilon 1e-5; token ids only (no segment input).

    Example:
    >>> model = GPT2_ML(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...                 num_attention_heads=2, intermediate_size=16).build()
    >>> model.get_layer("Transformer-0-FeedForward-Norm-1").name
    'Transformer-0-FeedForward-Norm-1'
    """

    layer_norm_kwargs = {"epsilon": 1e-5}
    prefix = "newslm"

    def __init__(self, **kwargs):
        kwargs["segment_vocab_size"] = 0  # GPT2-ML reads token ids only
        super().__init__(**kwargs)

    def sublayer_norms(self, name):
        if name.endswith("-FeedForward"):
            return f"{name}-Norm-0", f"{name}-Norm-1"
        return None, None

    def variable_mapping(self):
        p = self.prefix
        names = {"Embedding-Token/embeddings": f"{p}/embeddings/word_embed",
                 "Embedding-Position/embeddings": f"{p}/embeddings/pos_embed"}
        names.update(norm_names("Embedding-Norm", f"{p}/embeddings/LayerNorm_embed_norm"))
        for index in range(self.num_hidden_layers):
            attention, ffn = self.block_names(index)
            o = f"{p}/layer{index:02d}"
            for part in ("query", "key", "value"):
                names.update(dense_names(f"{attention}/{part}", f"{o}/{part}_layer"))
            names.update(dense_names(f"{attention}/output", f"{o}/context_projection_layer"))
            names.update(norm_names(f"{ffn}-Norm-0", f"{o}/LayerNorm_mlp_ln0"))
            names.update(dense_names(f"{ffn}/intermediate", f"{o}/intermediate"))
            names.update(dense_names(f"{ffn}/output", f"{o}/output"))
            names.update(norm_names(f"{ffn}-Norm-1", f"{o}/LayerNorm_mlp_ln1"))
        return names

    def embedding_variables(self):
        return [f"{self.prefix}/embeddings/word_embed"]


def gpt2_ml_tensors(config, rng):
    """The gpt2-ml release: `newslm/embeddings/*`, `newslm/layerNN/*`, plus training state."""
    h, i = config["hidden_size"], config["intermediate_size"]
    t = TinyTensors(rng)
    t.tensors["newslm/embeddings/word_embed"] = t.w(config["vocab_size"], h)
    t.tensors["newslm/embeddings/pos_embed"] = t.w(config["max_position_embeddings"], h)
    t.norm("newslm/embeddings/LayerNorm_embed_norm", h)
    for layer in range(config["num_hidden_layers"]):
        p = f"newslm/layer{layer:02d}"
        for part in ("query_layer", "key_layer", "value_layer", "context_projection_layer"):
            t.dense(f"{p}/{part}", h, h)
        t.norm(f"{p}/LayerNorm_mlp_ln0", h)
        t.dense(f"{p}/intermediate", h, i)
        t.dense(f"{p}/output", i, h)
        t.norm(f"{p}/LayerNorm_mlp_ln1", h)
    t.training_state("newslm/embeddings/word_embed")
    return t.tensors


GPT2_ML_FAMILY = register_family(Family(
    "gpt2_ml", {"gpt2_ml": GPT2_ML},
    signature=Signature(required=[r"newslm/layer\d+/.*"]),
    hf_unsupported=NO_HF_PORT.format("gpt2_ml"),
    tiny_config=dict(TINY_BASE),
    tiny_tensors=gpt2_ml_tensors))
