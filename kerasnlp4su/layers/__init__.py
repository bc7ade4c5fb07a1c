"""Serializable layers (no `Lambda`): attention, positions, norms, heads.

bert4keras's `layers` module also handed on its backend's helpers and the
`keras` / `K` names (scripts write `from bert4keras.layers import *`); they
are re-exported here from `kerasnlp4su.backend`.
"""

import keras  # noqa: F401  (bert4keras scripts import keras from here)
import numpy as np  # noqa: F401  (bert4keras's layers module exposed np)
from keras import activations, initializers  # noqa: F401

from kerasnlp4su.backend import (  # noqa: F401
    K,
    align,
    apply_rotary_position_embeddings,
    attention_normalize,
    is_tf_keras,
    recompute_grad,
    sequence_masking,
    sinusoidal_embeddings,
)

from kerasnlp4su.layers.attention import MultiHeadAttention
from kerasnlp4su.layers.batch_split import BatchConcat, BatchSplit
from kerasnlp4su.layers.compat import integerize_shape
from kerasnlp4su.layers.concatenate import Concatenate1D
from kerasnlp4su.layers.crf import ConditionalRandomField
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.embeddings import BiasAdd, Embedding, MaskedAdd
from kerasnlp4su.layers.feedforward import FeedForward
from kerasnlp4su.layers.gau import GatedAttentionUnit, ScaleOffset
from kerasnlp4su.layers.global_pointer import EfficientGlobalPointer, GlobalPointer
from kerasnlp4su.layers.loss import Loss
from kerasnlp4su.layers.masks import AttentionMask, PaddingMask
from kerasnlp4su.layers.memm import MaximumEntropyMarkovModel
from kerasnlp4su.layers.normalization import LayerNormalization
from kerasnlp4su.layers.pooling import (
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaskedGlobalAveragePooling,
    TokenSelect,
)
from kerasnlp4su.layers.position import (
    PositionEmbedding,
    RotaryEmbedding,
    SinusoidalPositionEmbedding,
    apply_rotary,
    rotary_sin_cos,
)
from kerasnlp4su.layers.relative_position import (
    RelativePositionEmbedding,
    RelativePositionEmbeddingT5,
    Sinusoidal,
    clipped_relative_ids,
    t5_relative_buckets,
)

def __getattr__(name):
    # bert4keras's layers module star-imported its backend, so scripts import
    # backend helpers (and `tf`) from here; they resolve to kerasnlp4su.backend.
    import kerasnlp4su.backend

    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(kerasnlp4su.backend, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = [
    "AttentionMask", "BatchConcat", "BatchSplit", "BiasAdd", "Concatenate1D",
    "ConditionalRandomField", "Dense", "EfficientGlobalPointer", "Embedding", "FeedForward",
    "GatedAttentionUnit", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalPointer",
    "LayerNormalization", "Loss", "MaskedAdd", "MaskedGlobalAveragePooling",
    "MaximumEntropyMarkovModel", "MultiHeadAttention", "PaddingMask", "PositionEmbedding",
    "RelativePositionEmbedding", "RelativePositionEmbeddingT5", "RotaryEmbedding", "ScaleOffset",
    "Sinusoidal", "SinusoidalPositionEmbedding", "TokenSelect", "apply_rotary",
    "clipped_relative_ids", "integerize_shape", "rotary_sin_cos", "t5_relative_buckets",
]

# As bert4keras: the layer classes by name, for `custom_objects=` of loading
# calls (every class is registered with Keras already).
custom_objects = {name: globals()[name] for name in __all__ if name[0].isupper()}
