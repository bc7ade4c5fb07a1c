"""Model builders. Each model is a short `Transformer` subclass; each family one file.

Importing this package registers every family (`kerasnlp4su.models.registry`):
a family's file declares its classes and its `Family` spec, and registers it.
"""

import json  # noqa: F401 - bert4keras's models module exposed json and np

import keras
import numpy as np  # noqa: F401

from kerasnlp4su.models.albert import ALBERT, ALBERTUnshared
from kerasnlp4su.models.bert import BERT
from kerasnlp4su.models.bert4keras_api import (LM_Mask, UniLM_Mask, data_parallel,
                                               extend_with_language_model,
                                               extend_with_unified_language_model)
from kerasnlp4su.models.build import MODEL_REGISTRY, build_transformer_model, register_model
from kerasnlp4su.models.electra import ELECTRA, ELECTRAGenerator
from kerasnlp4su.models.gau_alpha import GAU_alpha
from kerasnlp4su.models.gpt import GPT
from kerasnlp4su.models.gpt2 import GPT2
from kerasnlp4su.models.gpt2_ml import GPT2_ML
from kerasnlp4su.models.nezha import NEZHA
from kerasnlp4su.models.registry import FAMILIES, Family, register_family
from kerasnlp4su.models.roformer import RoFormer, RoFormerV2
from kerasnlp4su.models.t5 import T5, T5_Base, T5_Decoder, T5_Encoder
from kerasnlp4su.models.transformer import Transformer
from kerasnlp4su.models.transformer_model import TransformerModel

#: bert4keras's names for the same objects.
ALBERT_Unshared = ALBERTUnshared
Model = keras.Model

__all__ = [
    "ALBERT", "ALBERTUnshared", "ALBERT_Unshared", "BERT", "ELECTRA", "ELECTRAGenerator",
    "FAMILIES", "Family", "GAU_alpha", "GPT", "GPT2", "GPT2_ML", "LM_Mask", "MODEL_REGISTRY",
    "Model", "NEZHA", "RoFormer", "RoFormerV2", "T5", "T5_Base", "T5_Decoder", "T5_Encoder",
    "Transformer", "TransformerModel", "UniLM_Mask", "build_transformer_model", "data_parallel",
    "extend_with_language_model", "extend_with_unified_language_model", "register_family",
    "register_model",
]

# Helpers bert4keras's models module re-exported from its snippets and
# backend; resolved when first used, so they are the same objects.
_REEXPORTED = {name: "kerasnlp4su.snippets" for name in (
    "delete_arguments", "insert_arguments", "is_string", "string_matching", "orthogonally_resize")}
_REEXPORTED["get_available_gpus"] = "kerasnlp4su.backend"


def __getattr__(name):
    if name in _REEXPORTED:
        import importlib

        return getattr(importlib.import_module(_REEXPORTED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_every_family():
    # A family registers itself when its file is imported; importing every
    # module of this package means a new family needs only its own file.
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_every_family()
