"""ELECTRA discriminator and generator from the official checkpoint."""

import keras

from kerasnlp4su.backend import get_activation
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.models.bert import BERT
from kerasnlp4su.models.transformer import dense_names, norm_names


class ELECTRA(BERT):
    """ELECTRA discriminator (exact-erf GELU, as the official code).

    `with_discriminator=True` adds the replaced-token head with a sigmoid
    (output `(batch, length, 1)`); a string picks another activation,
    e.g. `'linear'` for logits. The official release has no pooler.

    Example:
    >>> model = ELECTRA(vocab_size=100, embedding_size=4, hidden_size=8, num_hidden_layers=1,
    ...                 num_attention_heads=2, intermediate_size=16,
    ...                 with_discriminator=True).build()
    """

    official_gelu = "gelu_erf"
    model_type = "electra"
    checkpoint_families = ("electra",)
    prefix = "electra"

    def __init__(self, with_discriminator=False, **kwargs):
        super().__init__(**kwargs)
        if self.with_pool:
            raise ValueError("ELECTRA has no pooler in its official release; "
                             "use with_discriminator or pool the sequence output yourself")
        self.with_discriminator = with_discriminator

    def apply_final_layers(self, x):
        if not self.with_discriminator:
            return super().apply_final_layers(x)
        activation = "sigmoid" if self.with_discriminator is True else self.with_discriminator
        x = self.apply(x, Dense, name="Discriminator-Dense", units=self.hidden_size,
                       activation=get_activation(self.hidden_act),
                       kernel_initializer=self.initializer)
        return self.apply(x, Dense, name="Discriminator-Prediction", units=1,
                          activation=activation, kernel_initializer=self.initializer)

    def embedding_mapping(self):
        names = super().embedding_mapping()
        names.update(dense_names("Embedding-Mapping", f"{self.prefix}/embeddings_project"))
        return names

    def head_mapping(self):
        names = dense_names("Discriminator-Dense", "discriminator_predictions/dense")
        names.update(dense_names("Discriminator-Prediction", "discriminator_predictions/dense_1"))
        return names

    def embedding_variables(self):
        return ["electra/embeddings/word_embeddings"]


class ELECTRAGenerator(ELECTRA):
    """The ELECTRA generator tower (a small masked LM) from the same checkpoint.

    It shares `electra/embeddings/*` with the discriminator and has its own
    `generator/embeddings_project`, `generator/encoder/...` and
    `generator_predictions/*`. `with_mlm` defaults to True.

    Give the generator's sizes directly, or `generator_hidden_size` as the
    official fraction of the discriminator's `hidden_size` (heads =
    hidden // 64, intermediate = 4 * hidden, as the official code derives).
    """

    model_type = "electra_generator"
    checkpoint_families = ("electra", "electra_generator")
    prefix = "generator"

    def __init__(self, generator_hidden_size=None, with_mlm=True, **kwargs):
        if generator_hidden_size is not None and generator_hidden_size < 1:
            hidden = int(round(kwargs["hidden_size"] * generator_hidden_size))
            kwargs.update(hidden_size=hidden, num_attention_heads=max(1, hidden // 64),
                          intermediate_size=4 * hidden)
        super().__init__(with_mlm=with_mlm, **kwargs)

    def embedding_mapping(self):
        names = {
            "Embedding-Token/embeddings": "electra/embeddings/word_embeddings",
            "Embedding-Segment/embeddings": "electra/embeddings/token_type_embeddings",
            "Embedding-Position/embeddings": "electra/embeddings/position_embeddings",
        }
        names.update(norm_names("Embedding-Norm", "electra/embeddings/LayerNorm"))
        names.update(dense_names("Embedding-Mapping", "generator/embeddings_project"))
        return names

    def head_mapping(self):
        names = dense_names("MLM-Dense", "generator_predictions/dense")
        names.update(norm_names("MLM-Norm", "generator_predictions/LayerNorm"))
        names["MLM-Bias/bias"] = "generator_predictions/output_bias"
        return names

    def embedding_variables(self):
        return ["electra/embeddings/word_embeddings", "generator_predictions/output_bias"]
