"""NEZHA (Huawei): BERT with functional relative positions: the `nezha` family.

Its checkpoints hold exactly RoFormer v1's variable names (BERT's without a
position table); the config tells them apart (`max_relative_position`,
`use_relative_position`).
"""

from keras import ops

from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.layers.relative_position import RelativePositionEmbedding, relative_offsets
from kerasnlp4su.models.bert import BERT, bert_tensors
from kerasnlp4su.models.registry import Family, register_family
# Importing roformer first registers RoFormer v1 before NEZHA: from variable
# names alone (no config) the two tie, and the older family wins the tie.
from kerasnlp4su.models.roformer import _NOT_BERT_OR_ALBERT, _WITH_BIASES
from kerasnlp4su.models.tiny import TINY_BASE

RELATIVE_TABLE = "Embedding-Relative-Position"


class NEZHA(BERT):
    """NEZHA: BERT without a position table; attention sees relative positions.

    Each self-attention adds `q . r[j - i]` to the score of query `i` and
    key `j` (before the `1/sqrt(d)` scale) and `sum_j p_ij r[j - i]` to its
    output, where `r[t]` is the sinusoid (sin/cos interleaved, width
    `attention_head_size`) of `clip(t, -m, m) + m`, `m =
    max_relative_position` (64 in every official release: the official code
    hard-codes it). The table is fixed, not trained, and shared by every
    layer. GELU is the tanh approximation, as in the official code. Texts
    may be longer than any trained length.

    Example:
    >>> model = NEZHA(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...               num_attention_heads=2, intermediate_size=16, with_mlm=True).build()
    """

    official_gelu = "gelu_tanh"
    position_encoding = "relative"

    def __init__(self, max_relative_position=64, use_relative_position=True, **kwargs):
        if not use_relative_position:
            raise ValueError("NEZHA with use_relative_position=false has absolute position "
                             "embeddings: load such a checkpoint with model='bert'")
        super().__init__(**kwargs)
        self.max_relative_position = int(max_relative_position)
        if self.max_relative_position < 1:
            raise ValueError(f"max_relative_position must be a positive integer, got "
                             f"{max_relative_position!r}")
        if self.attention_key_size != self.attention_head_size:
            raise ValueError(
                "NEZHA adds one relative table to both keys and values, so attention_key_size "
                f"({self.attention_key_size}) must equal attention_head_size "
                f"({self.attention_head_size})")

    def attention_position_arguments(self, x, step=None):
        m = self.max_relative_position
        if step is None or step.is_prefix:
            table = self.apply([x, x], RelativePositionEmbedding, name=RELATIVE_TABLE,
                               input_dim=2 * m + 1, output_dim=self.attention_head_size,
                               embeddings_initializer="sinusoidal", trainable=False)
        else:
            # A cached step: the new queries start at `length`, the keys are
            # every slot of the cache (unwritten ones are masked).
            embeddings = self.layers[RELATIVE_TABLE].embeddings
            offsets = relative_offsets(ops.shape(x)[1], ops.shape(step.keep)[1])
            ids = ops.clip(offsets - step.length, -m, m) + m
            table = ops.take(ops.cast(embeddings, x.dtype), ids, axis=0)
        return {"relative_keys": table, "relative_values": table}

    def optional_variables(self):
        # The sinusoid table is computed, never stored in a checkpoint.
        return super().optional_variables() | {f"{RELATIVE_TABLE}/embeddings"}


NEZHA_FAMILY = register_family(Family(
    "nezha", {"nezha": NEZHA},
    # RoFormer v1's names; official NEZHA configs carry max_relative_position
    # (and use_relative_position), which RoFormer's never do.
    signature=Signature(required=[_WITH_BIASES], forbidden=_NOT_BERT_OR_ALBERT,
                        config_keys=["max_relative_position"]),
    hf_unsupported=(
        "NEZHA's HuggingFace port is deprecated (transformers<5 only) and not read or written "
        "here: use the official TF1 checkpoint (load_weights_from_checkpoint / "
        "save_weights_as_checkpoint)"),
    tiny_config=dict(TINY_BASE, max_relative_position=64, use_relative_position=True),
    tiny_tensors=lambda config, rng: bert_tensors(config, rng, positions=False)))
