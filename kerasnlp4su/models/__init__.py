"""Model builders. Each model is a short `Transformer` subclass."""

from kerasnlp4su.models.bert import BERT
from kerasnlp4su.models.build import MODEL_REGISTRY, build_transformer_model, register_model
from kerasnlp4su.models.transformer import Transformer

register_model("bert", BERT)
register_model("roberta", BERT)

__all__ = ["BERT", "Transformer", "build_transformer_model", "register_model", "MODEL_REGISTRY"]
