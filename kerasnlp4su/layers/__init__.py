"""Serializable layers (no `Lambda`): attention, positions, norms, heads."""

from kerasnlp4su.layers.attention import MultiHeadAttention
from kerasnlp4su.layers.crf import ConditionalRandomField
from kerasnlp4su.layers.dense import Dense
from kerasnlp4su.layers.embeddings import BiasAdd, Embedding, MaskedAdd
from kerasnlp4su.layers.feedforward import FeedForward
from kerasnlp4su.layers.gau import GatedAttentionUnit, ScaleOffset
from kerasnlp4su.layers.global_pointer import EfficientGlobalPointer, GlobalPointer
from kerasnlp4su.layers.masks import AttentionMask, PaddingMask
from kerasnlp4su.layers.normalization import LayerNormalization
from kerasnlp4su.layers.pooling import MaskedGlobalAveragePooling, TokenSelect
from kerasnlp4su.layers.position import (
    PositionEmbedding,
    RotaryEmbedding,
    SinusoidalPositionEmbedding,
    apply_rotary,
    rotary_sin_cos,
)

__all__ = [
    "AttentionMask", "BiasAdd", "ConditionalRandomField", "Dense", "EfficientGlobalPointer",
    "Embedding", "FeedForward", "GatedAttentionUnit", "GlobalPointer", "LayerNormalization",
    "MaskedAdd", "MaskedGlobalAveragePooling", "MultiHeadAttention", "PaddingMask",
    "PositionEmbedding", "RotaryEmbedding", "ScaleOffset", "SinusoidalPositionEmbedding",
    "TokenSelect", "apply_rotary", "rotary_sin_cos",
]
