"""Model builders. Each model is a short `Transformer` subclass."""

from kerasnlp4su.models.albert import ALBERT, ALBERTUnshared
from kerasnlp4su.models.bert import BERT
from kerasnlp4su.models.build import MODEL_REGISTRY, build_transformer_model, register_model
from kerasnlp4su.models.electra import ELECTRA, ELECTRAGenerator
from kerasnlp4su.models.roformer import RoFormer, RoFormerV2
from kerasnlp4su.models.transformer import Transformer
from kerasnlp4su.models.transformer_model import TransformerModel

for _name, _cls in {
    "bert": BERT,
    "roberta": BERT,
    "albert": ALBERT,
    "albert_unshared": ALBERTUnshared,
    "electra": ELECTRA,
    "electra_generator": ELECTRAGenerator,
    "roformer": RoFormer,
    "roformer_v2": RoFormerV2,
}.items():
    register_model(_name, _cls)

__all__ = [
    "ALBERT", "ALBERTUnshared", "BERT", "ELECTRA", "ELECTRAGenerator", "MODEL_REGISTRY",
    "RoFormer", "RoFormerV2", "Transformer", "TransformerModel", "build_transformer_model",
    "register_model",
]
