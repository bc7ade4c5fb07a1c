"""ALBERT: factorised embeddings and one transformer block shared by all layers."""

from kerasnlp4su.models.bert import BERT
from kerasnlp4su.models.transformer import dense_names, norm_names

_SHARED = "bert/encoder/transformer/group_0/inner_group_0"


class ALBERT(BERT):
    """ALBERT (official release layout): every layer reuses one block.

    The same Keras layer objects are called at every depth, so the model
    holds a single block's weights, exactly as the official checkpoint.
    `with_nsp=True` gives the sentence-order head.

    Example:
    >>> model = ALBERT(vocab_size=100, embedding_size=4, hidden_size=8, num_hidden_layers=3,
    ...                num_attention_heads=2, intermediate_size=16).build()
    """

    model_type = "albert"
    checkpoint_families = ("albert",)

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

    model_type = "albert_unshared"

    def block_names(self, index):
        return BERT.block_names(self, index)
