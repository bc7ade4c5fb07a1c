"""GPT-2 (as the CPM-LM release converted for bert4keras): the `gpt2` family."""

from kerasnlp4su.checkpoints.names import norm_names
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.models.gpt import GPT, NO_HF_PORT, gpt_embeddings
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors


class GPT2(GPT):
    """GPT-2: pre-LN blocks, a final LayerNorm, token ids only (no segment input).

    LayerNorm epsilon 1e-5. Checkpoint names are GPT's with each block's
    norms called `input/LayerNorm` and the final one `gpt/output/LayerNorm`.

    Example:
    >>> model = GPT2(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...              num_attention_heads=2, intermediate_size=16).build()
    >>> [i.name for i in model.inputs], model.output.shape
    (['Input-Token'], (None, None, 100))
    """

    norm_position = "pre"
    layer_norm_kwargs = {"epsilon": 1e-5}

    def __init__(self, **kwargs):
        kwargs["segment_vocab_size"] = 0  # CPM-LM reads token ids only
        super().__init__(**kwargs)

    def apply_final_layers(self, x):
        # Pre-LN blocks leave their sum un-normalised: one norm closes the stack.
        x = self.norm(x, "Output-Norm")
        x = self.dropout(x, self.dropout_rate, "Output-Dropout")
        return super().apply_final_layers(x)

    def block_mapping(self, keras_index, official_prefix):
        return {keras: official.replace("output/LayerNorm", "input/LayerNorm")
                for keras, official in super().block_mapping(keras_index, official_prefix).items()}

    def head_mapping(self):
        return norm_names("Output-Norm", f"{self.prefix}/output/LayerNorm")


def gpt2_tensors(config, rng):
    """CPM-LM's TF release: GPT's names, block norms as `input/LayerNorm`, a final `gpt/output/LayerNorm`."""
    h, i = config["hidden_size"], config["intermediate_size"]
    t = TinyTensors(rng)
    gpt_embeddings(t, config, h)
    for layer in range(config["num_hidden_layers"]):
        p = f"gpt/transformer/layer_{layer}"
        for part in ("query", "key", "value"):
            t.dense(f"{p}/attention/self/{part}", h, h)
        t.dense(f"{p}/attention/output/dense", h, h)
        t.norm(f"{p}/attention/input/LayerNorm", h)
        t.dense(f"{p}/intermediate/dense", h, i)
        t.dense(f"{p}/output/dense", i, h)
        t.norm(f"{p}/input/LayerNorm", h)
    t.norm("gpt/output/LayerNorm", h)
    return t.tensors


GPT2_FAMILY = register_family(Family(
    "gpt2", {"gpt2": GPT2},
    signature=Signature(required=[r"gpt/output/LayerNorm/.*",
                                  r"gpt/transformer/layer_\d+/input/LayerNorm/.*"]),
    hf_unsupported=NO_HF_PORT.format("gpt2"),
    tiny_config=dict(TINY_BASE),
    tiny_tensors=gpt2_tensors))
