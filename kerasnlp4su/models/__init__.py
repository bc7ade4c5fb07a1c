"""Model builders. Each model is a short `Transformer` subclass; each family one file.

Importing this package registers every family (`kerasnlp4su.models.registry`):
a family's file declares its classes and its `Family` spec, and registers it.
"""

from kerasnlp4su.models.albert import ALBERT, ALBERTUnshared
from kerasnlp4su.models.bert import BERT
from kerasnlp4su.models.build import MODEL_REGISTRY, build_transformer_model, register_model
from kerasnlp4su.models.electra import ELECTRA, ELECTRAGenerator
from kerasnlp4su.models.registry import FAMILIES, Family, register_family
from kerasnlp4su.models.roformer import RoFormer, RoFormerV2
from kerasnlp4su.models.t5 import T5, T5_Base, T5_Decoder, T5_Encoder
from kerasnlp4su.models.transformer import Transformer

__all__ = [
    "ALBERT", "ALBERTUnshared", "BERT", "ELECTRA", "ELECTRAGenerator", "FAMILIES", "Family",
    "MODEL_REGISTRY", "RoFormer", "RoFormerV2", "T5", "T5_Base", "T5_Decoder", "T5_Encoder",
    "Transformer", "build_transformer_model",
    "register_family", "register_model",
]


def _register_every_family():
    # A family registers itself when its file is imported; importing every
    # module of this package means a new family needs only its own file.
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_every_family()
