"""Serializable layers (no `Lambda`): attention, positions, norms, heads."""

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
