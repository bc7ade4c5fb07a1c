"""GPT (OpenAI GPT layout, as the CDial-GPT release converted for bert4keras): the `gpt` family.

The GPT families (`gpt`, `gpt2`, `gpt2_ml`) are left-to-right language
models: the LM mask always applies and the output is the next-token
distribution through the token table (tied, no bias). Each family is the
shared skeleton plus where its LayerNorms sit.
"""

import keras

from kerasnlp4su.backend import get_activation
from kerasnlp4su.checkpoints.names import dense_names
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.models.bert import BERT, tiny_bert_layer
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors


class GPTLanguageModel(BERT):
    """What every GPT family shares: causal attention and the tied next-token head.

    `application` is `'lm'` (`'encoder'`, bert4keras's default, means the
    same here: these models are always causal); `'unilm'` is kept for
    models with segment ids. There is no pooler, NSP or MLM head:
    `final_activation` (default softmax) ends the tied LM projection.
    """

    # OpenAI GPT, Megatron (CPM-LM) and Grover (GPT2-ML) all use the tanh form.
    official_gelu = "gelu_tanh"

    def __init__(self, final_activation="softmax", application="lm", with_pool=False,
                 with_nsp=False, with_mlm=False, **kwargs):
        heads = [name for name, on in (("with_pool", with_pool), ("with_nsp", with_nsp),
                                       ("with_mlm", with_mlm)) if on]
        if heads:
            raise ValueError(
                f"{type(self).__name__} has no {', '.join(heads)} head: a GPT model always "
                "ends in its tied next-token head (set final_activation to change its "
                "activation, e.g. 'linear' for logits)")
        try:
            get_activation(final_activation)
        except ValueError as e:
            raise ValueError(f"final_activation={final_activation!r}: {e}") from None
        if application == "encoder":
            application = "lm"
        self.final_activation = final_activation
        super().__init__(application=application, **kwargs)

    def apply_final_layers(self, x):
        x = self.apply(x, name="Embedding-Token", call_kwargs={"mode": "dense"})
        return self.apply(x, keras.layers.Activation, name="LM-Activation",
                          activation=self.final_activation, dtype="float32")

    def head_mapping(self):
        return {}

    def checkpoint_transforms(self):
        return {}


class GPT(GPTLanguageModel):
    """GPT as CDial-GPT ships it: post-LN blocks, no LayerNorm after the embeddings.

    Segment ids are token ids (CDial-GPT's `[speaker1]`/`[speaker2]`) looked
    up in the word table (`shared_segment_embeddings=True`, the release's
    layout); `False` gives a table of their own (`token_type_embeddings`).
    LayerNorm epsilon 1e-12 as bert4keras (the PyTorch original: 1e-5).

    Example:
    >>> model = GPT(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...             num_attention_heads=2, intermediate_size=16).build()
    >>> [i.name for i in model.inputs], model.output.shape
    (['Input-Token', 'Input-Segment'], (None, None, 100))
    """

    prefix = "gpt"
    embedding_norm = False

    def __init__(self, shared_segment_embeddings=True, **kwargs):
        self.shared_segment_embeddings = bool(shared_segment_embeddings)
        super().__init__(**kwargs)

    def embedding_mapping(self):
        p = self.prefix
        names = {"Embedding-Token/embeddings": f"{p}/embeddings/word_embeddings",
                 "Embedding-Position/embeddings": f"{p}/embeddings/position_embeddings"}
        if not self.shared_segment_embeddings:
            names["Embedding-Segment/embeddings"] = f"{p}/embeddings/token_type_embeddings"
        names.update(dense_names("Embedding-Mapping", f"{p}/transformer/embedding_hidden_mapping_in"))
        return names

    def variable_mapping(self):
        names = self.embedding_mapping()
        for index in range(self.num_hidden_layers):
            names.update(self.block_mapping(index, f"{self.prefix}/transformer/layer_{index}"))
        names.update(self.head_mapping())
        return names

    def embedding_variables(self):
        return [f"{self.prefix}/embeddings/word_embeddings"]


# ------------------------------------------------------------------ tiny test checkpoint
def gpt_embeddings(t, config, h):
    """Word and position tables under `gpt/embeddings` (CDial-GPT and CPM-LM)."""
    t.tensors["gpt/embeddings/word_embeddings"] = t.w(config["vocab_size"], h)
    t.tensors["gpt/embeddings/position_embeddings"] = t.w(config["max_position_embeddings"], h)


def gpt_tensors(config, rng):
    """CDial-GPT's TF release: word and position tables, BERT-named layers under `gpt/transformer`."""
    h, i = config["hidden_size"], config["intermediate_size"]
    t = TinyTensors(rng)
    gpt_embeddings(t, config, h)
    for layer in range(config["num_hidden_layers"]):
        tiny_bert_layer(t, f"gpt/transformer/layer_{layer}", h, i)
    return t.tensors


NO_HF_PORT = ("the {} family has no HuggingFace name map here: its release is the TF1 "
              "checkpoint bert4keras reads; use load_weights_from_checkpoint / "
              "save_weights_as_checkpoint")

GPT_FAMILY = register_family(Family(
    "gpt", {"gpt": GPT},
    # Post-LN blocks keep BERT's `output/LayerNorm` names; CPM-LM's pre-LN
    # blocks (`gpt2`) call theirs `input/LayerNorm` and add `gpt/output`.
    signature=Signature(required=[r"gpt/transformer/layer_\d+/attention/output/LayerNorm/.*"],
                        forbidden=[r"gpt/output/LayerNorm/.*", r"gpt/.*/input/LayerNorm/.*"]),
    hf_unsupported=NO_HF_PORT.format("gpt"),
    tiny_config=dict(TINY_BASE, shared_segment_embeddings=True),
    tiny_tensors=gpt_tensors))
