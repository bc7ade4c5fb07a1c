"""RoFormer (rotary positions) v1 and v2."""

import keras

from kerasnlp4su.models.bert import BERT


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
    model_type = "roformer"
    checkpoint_families = ("roformer",)


class RoFormerV2(RoFormer):
    """RoFormer v2: no biases, parameter-free RMS norms, tied MLM output without transform.

    Example:
    >>> model = RoFormerV2(vocab_size=100, hidden_size=8, num_hidden_layers=1,
    ...                    num_attention_heads=2, intermediate_size=16, hidden_act="relu",
    ...                    with_mlm=True).build()
    """

    model_type = "roformer_v2"
    checkpoint_families = ("roformer_v2",)
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
