"""ELECTRA discriminator and generator from the official checkpoint (`electra`, `electra_generator`)."""

import warnings

from kerasnlp4su.backend import get_activation
from kerasnlp4su.checkpoints.names import DENSE, NORM, VECTOR, HFFamily, dense_names, norm_names
from kerasnlp4su.checkpoints.signatures import Signature
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.models.bert import BERT, hf_embeddings, hf_encoder_layer, tiny_bert_layer
from kerasnlp4su.models.registry import Family, register_family
from kerasnlp4su.models.tiny import TINY_BASE, TinyTensors


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


def _hf_write_discriminator(t):
    return ("ElectraForPreTraining" if getattr(t, "with_discriminator", False)
            else "ElectraModel"), {"embedding_size": t.embedding_size}, []


def _hf_write_generator(t):
    if t.hidden_act != "gelu_erf":
        warnings.warn("transformers' ElectraForMaskedLM always uses the exact-erf GELU in its "
                      f"generator head; this model uses {t.hidden_act!r} there", stacklevel=4)
    return ("ElectraForMaskedLM" if t.with_mlm else "ElectraModel"), \
        {"embedding_size": t.embedding_size}, []


TINY_DISCRIMINATOR = dict(TINY_BASE, embedding_size=16)
TINY_GENERATOR = dict(TINY_BASE, embedding_size=16, hidden_size=16, num_attention_heads=2,
                      intermediate_size=32)


def electra_tensors(config, generator_config, rng):
    """Official ELECTRA pre-training checkpoint: discriminator and generator towers."""
    h, i, v, e = (config["hidden_size"], config["intermediate_size"], config["vocab_size"],
                  config["embedding_size"])
    t = TinyTensors(rng)
    t.embeddings("electra/embeddings", config, e)
    t.dense("electra/embeddings_project", e, h)
    for layer in range(config["num_hidden_layers"]):
        tiny_bert_layer(t, f"electra/encoder/layer_{layer}", h, i)
    t.dense("discriminator_predictions/dense", h, h)
    t.dense("discriminator_predictions/dense_1", h, 1)
    gh, gi = generator_config["hidden_size"], generator_config["intermediate_size"]
    t.dense("generator/embeddings_project", e, gh)
    for layer in range(generator_config["num_hidden_layers"]):
        tiny_bert_layer(t, f"generator/encoder/layer_{layer}", gh, gi)
    t.dense("generator_predictions/dense", gh, e)
    t.norm("generator_predictions/LayerNorm", e)
    t.tensors["generator_predictions/output_bias"] = t.w(v)
    t.training_state("electra/embeddings_project/kernel")
    return t.tensors


ELECTRA_FAMILY = register_family(Family(
    "electra", {"electra": ELECTRA},
    signature=Signature(required=[r"electra/encoder/.*"]),
    hf=HFFamily("electra", "electra", "electra", (
        hf_embeddings("electra", "electra")
        + [(DENSE, "electra/embeddings_project", "electra.embeddings_project")]
        + hf_encoder_layer("electra/encoder", "electra.encoder")
        + [(DENSE, "discriminator_predictions/dense", "discriminator_predictions.dense"),
           (DENSE, "discriminator_predictions/dense_1",
            "discriminator_predictions.dense_prediction")]),
        markers=("embeddings_project", "discriminator_predictions")),
    hf_write_config=_hf_write_discriminator,
    tiny_config=TINY_DISCRIMINATOR,
    tiny_tensors=lambda config, rng: electra_tensors(config, TINY_GENERATOR, rng)))

ELECTRA_GENERATOR_FAMILY = register_family(Family(
    "electra_generator", {"electra_generator": ELECTRAGenerator},
    # A generator-only checkpoint; the full pre-training one is `electra`'s,
    # which the generator reads too.
    signature=Signature(required=[r"generator/encoder/.*"], forbidden=[r"electra/encoder/.*"]),
    reads=("electra",),
    # HF `ElectraForMaskedLM` holds the generator tower as its `electra.*`;
    # the official checkpoint shares `electra/embeddings/*` with the
    # discriminator.
    hf=HFFamily("electra_generator", "electra", "electra", (
        hf_embeddings("electra", "electra")
        + [(DENSE, "generator/embeddings_project", "electra.embeddings_project")]
        + hf_encoder_layer("generator/encoder", "electra.encoder")
        + [(DENSE, "generator_predictions/dense", "generator_predictions.dense"),
           (NORM, "generator_predictions/LayerNorm", "generator_predictions.LayerNorm"),
           (VECTOR, "generator_predictions/output_bias", "generator_lm_head.bias")]),
        markers=("generator_lm_head",)),
    hf_architectures=("ElectraForMaskedLM", "ElectraForCausalLM"),
    hf_write_config=_hf_write_generator,
    tiny_config=TINY_GENERATOR,
    tiny_tensors=lambda config, rng: electra_tensors(TINY_DISCRIMINATOR, config, rng)))
