"""Ladder Side-Tuning: a small side network on the frozen backbone's hidden states, trained alone.

Su Jianlin's "Ladder Side-Tuning：预训练模型的“过墙梯”" (https://kexue.fm/archives/9138)
and Sung et al. 2022 (LST). Every hidden state of the backbone (the
embedding output and each block's output) is projected down to a narrow
width `d = hidden / reduction`; the side network starts from the projected
embeddings and, at each rung `i`, mixes its state with the projected block
`i` output through a learned gate `mu_i = sigmoid(alpha_i / T)`, then runs
one light transformer block of width `d`. Gradients never enter the
backbone (its outputs pass through `stop_gradient` and its weights are
frozen), so training keeps no backbone activations for the backward pass:
that is where the memory saving comes from (see benchmarks/bench_side_tuning.py).
"""

import keras
from keras import ops

from kerasnlp4su.layers import FeedForward, LayerNormalization, MultiHeadAttention
from kerasnlp4su.models.transformer_model import TransformerModel
from kerasnlp4su.training._blocks import transformer_blocks


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class LadderDownProjection(keras.layers.Dense):
    """A `Dense` whose input is cut off from the gradient: backbone state -> side width.

    Example:
    >>> tuple(LadderDownProjection(4)(keras.ops.ones((1, 3, 16))).shape)
    (1, 3, 4)
    """

    def call(self, inputs):
        return super().call(ops.stop_gradient(inputs))


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class LadderGate(keras.layers.Layer):
    """`mu * backbone + (1 - mu) * side` with `mu = sigmoid(alpha / temperature)`, `alpha` learned.

    `alpha` starts at 0 (`mu = 0.5`); the small temperature (LST's 0.1)
    lets the gate move quickly. Inputs: `[side, backbone]`, same shape.

    Example:
    >>> gate = LadderGate()
    >>> float(gate([keras.ops.zeros((1, 2)), keras.ops.ones((1, 2))])[0, 0])
    0.5
    """

    def __init__(self, temperature=0.1, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.temperature = float(temperature)
        if self.temperature <= 0:
            raise ValueError(f"LadderGate: temperature must be > 0, got {temperature}")

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(), initializer="zeros", name="alpha")

    def call(self, inputs):
        side, backbone = inputs
        mu = ops.sigmoid(ops.cast(self.alpha, side.dtype) / self.temperature)
        return mu * backbone + (1.0 - mu) * side

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def _side_block(x, mask, width, heads, name):
    attention = MultiHeadAttention(heads, width // heads, name=f"{name}-Attention")(
        x, attention_mask=mask)
    x = LayerNormalization(name=f"{name}-Attention-Norm")(keras.layers.Add(name=f"{name}-Attention-Add")([x, attention]))
    ffn = FeedForward(2 * width, name=f"{name}-FeedForward")(x)
    return LayerNormalization(name=f"{name}-FeedForward-Norm")(keras.layers.Add(name=f"{name}-FeedForward-Add")([x, ffn]))


def ladder_side_model(model, reduction=8, heads=2, temperature=0.1):
    """A side network on `model`'s frozen blocks: returns a model `inputs -> (batch, length, d)`.

    `model` is a `build_transformer_model` encoder (or a model containing
    its layers); all its layers are set to `trainable=False` (in place), so
    only the side network (down-projections, gates, one light block of
    width `d = hidden // reduction` per backbone block) trains. Put a head
    on the side output (e.g. `TokenSelect()` + `Dense`) and `fit` as usual.

    Example:
    >>> from kerasnlp4su.models import build_transformer_model
    >>> from kerasnlp4su.layers import TokenSelect
    >>> bert = build_transformer_model("checkpoints/tiny_bert/bert_config.json")  # doctest: +SKIP
    >>> side = ladder_side_model(bert, reduction=8)  # doctest: +SKIP
    >>> probs = keras.layers.Dense(2, activation="softmax")(TokenSelect()(side.output))  # doctest: +SKIP
    >>> classifier = keras.Model(side.inputs, probs)  # only the side network and head train  # doctest: +SKIP
    """
    blocks = transformer_blocks(model, "ladder_side_model")
    hidden = int(blocks.inputs[0].shape[-1])
    width = hidden // int(reduction)
    if width < heads or width % heads:
        raise ValueError(f"ladder_side_model: side width {hidden} // {reduction} = {width} must be a "
                         f"positive multiple of heads={heads}")
    for layer in model.layers:
        layer.trainable = False
    side = LadderDownProjection(width, name="Side-Down-Embedding")(blocks.inputs[0])
    for i, state in enumerate(blocks.outputs):
        down = LadderDownProjection(width, name=f"Side-Down-{i}")(state)
        side = LadderGate(temperature, name=f"Side-Gate-{i}")([side, down])
        side = _side_block(side, blocks.mask, width, heads, f"Side-{i}")
    return TransformerModel(model.inputs, side, name="ladder_side")
