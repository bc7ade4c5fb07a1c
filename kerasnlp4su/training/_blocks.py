"""Find the transformer blocks of a built model: each block's input, attention mask and output tensor.

Ladder Side-Tuning reads the blocks' outputs and BERT-of-Theseus swaps
whole blocks, so both need the block boundaries of a functional model. The
library names block `i`'s layers `Transformer-{i}-...` (bert4keras's names)
and its self-attention `Transformer-{i}-MultiHeadSelfAttention`, called on
the block input with `attention_mask=`; those names are the contract here.
"""

import re

_ATTENTION = "Transformer-{}-MultiHeadSelfAttention"


class Blocks:
    """Block boundaries of `model`: `inputs[i]`, `outputs[i]` (tensors of its graph), the shared `mask`."""

    def __init__(self, inputs, outputs, mask):
        self.inputs, self.outputs, self.mask = inputs, outputs, mask

    def __len__(self):
        return len(self.outputs)


def _attention_call(model, index):
    layer = model.get_layer(_ATTENTION.format(index))
    if len(layer._inbound_nodes) != 1:
        raise ValueError(f"{layer.name} is called {len(layer._inbound_nodes)} times in "
                         f"{model.name!r}; expected once")
    node = layer._inbound_nodes[0]
    mask = node.arguments.kwargs.get("attention_mask")
    return node.arguments.args[0], mask


def transformer_blocks(model, caller):
    """The `Blocks` of `model`, or a ValueError naming `caller` when it has no `Transformer-i` blocks."""
    names = {layer.name for layer in model.layers}
    count = 0
    while _ATTENTION.format(count) in names:
        count += 1
    if count == 0:
        raise ValueError(
            f"{caller}: model {model.name!r} has no layer 'Transformer-0-MultiHeadSelfAttention'; "
            "it needs a model from build_transformer_model (a BERT-style encoder)")
    inputs, masks = zip(*(_attention_call(model, i) for i in range(count)))
    if any(mask is not masks[0] for mask in masks):
        raise ValueError(f"{caller}: the blocks of {model.name!r} do not share one attention mask")
    # Block i ends where block i + 1 starts; the last block ends at its last layer.
    last = re.compile(rf"^Transformer-{count - 1}-")
    tail = [layer for layer in model.layers if last.match(layer.name)][-1]
    return Blocks(list(inputs), list(inputs[1:]) + [tail.output], masks[0])
