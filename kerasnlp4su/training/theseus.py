"""BERT-of-Theseus: compress a fine-tuned model by replacing groups of its blocks with single blocks.

Xu et al. 2020 (https://arxiv.org/abs/2002.02925) and Su Jianlin's bert4keras
example `task_iflytek_bert_of_theseus.py`. The fine-tuned model (the
predecessor) has `L` blocks; the successor has `n` (`L % n == 0`), block
`j` standing in for predecessor blocks `j*k .. j*k+k-1` (`k = L / n`). In
training, each group independently takes the successor's block with
probability `p` (one draw per group per batch) and the predecessor's
frozen blocks otherwise, so the successor learns to act inside the
predecessor; `p` stays constant or grows linearly
(`TheseusReplacementSchedule`). Outside training every group takes the
successor, so evaluating the mixed model evaluates the successor; at the
end `theseus_successor` gives the successor alone as an ordinary model.
"""

import keras
from keras import ops

from kerasnlp4su.models.transformer_model import TransformerModel
from kerasnlp4su.training._blocks import transformer_blocks

_SUCCESSOR = "Successor-{}"


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class TheseusChoice(keras.layers.Layer):
    """`[predecessor, successor] -> one of them`: the successor with probability `replace_rate` in
    training (one draw per batch), always the successor in inference.

    `replace_rate` is a non-trainable variable, so a schedule can change it
    between steps of a compiled `fit`.

    Example:
    >>> choice = TheseusChoice(replace_rate=1.0)
    >>> a, b = keras.ops.zeros((2, 3)), keras.ops.ones((2, 3))
    >>> float(keras.ops.sum(choice([a, b], training=True)))
    6.0
    """

    def __init__(self, replace_rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.initial_rate = _check_rate(replace_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.replace_rate = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_rate),
            trainable=False, name="replace_rate")

    def call(self, inputs, training=None):
        predecessor, successor = inputs
        if not training:
            return successor
        draw = keras.random.uniform((), seed=self.seed_generator)
        return ops.where(draw < ops.cast(self.replace_rate, draw.dtype), successor, predecessor)

    def compute_mask(self, inputs, mask=None):
        # Both branches carry the same padding mask; pass it on so a token-level
        # head masks padding in the loss as it did in the predecessor.
        return mask[1] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "replace_rate": self.initial_rate, "seed": self.seed}


def _check_rate(rate):
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"replace_rate must be in [0, 1], got {rate}")
    return rate


class TheseusReplacementSchedule(keras.callbacks.Callback):
    """Set every `TheseusChoice`'s rate to `min(1, base_rate + slope * step)` before each batch.

    `slope=0` keeps `p = base_rate` (the paper's constant replacement);
    a positive slope is its linear curriculum `p_t = min(1, k t + b)`.

    Example:
    >>> schedule = TheseusReplacementSchedule(base_rate=0.3, slope=1e-3)
    >>> schedule.rate(200)
    0.5
    >>> model.fit(x, y, callbacks=[schedule])  # doctest: +SKIP
    """

    def __init__(self, base_rate=0.5, slope=0.0):
        super().__init__()
        self.base_rate, self.slope, self.step = _check_rate(base_rate), float(slope), 0

    def rate(self, step):
        return min(1.0, self.base_rate + self.slope * step)

    def on_train_batch_begin(self, batch, logs=None):
        rate = self.rate(self.step)
        for layer in self.model.layers:
            if isinstance(layer, TheseusChoice):
                layer.replace_rate.assign(rate)
        self.step += 1


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class TheseusPart(keras.Model):
    """A piece of the predecessor (a block or the head) used as one layer of the mixed model.

    The padding mask on its input reaches its layers as it did in the
    predecessor, and its outputs carry only the masks those layers give
    them: a tagger head's output keeps the mask, a pooled output has none
    (a plain sub-model would copy the input's mask onto any output).

    Example:
    >>> x = keras.Input((None, 4))
    >>> part = TheseusPart(x, keras.layers.Dense(2)(x), name="Head")
    >>> tuple(part(keras.ops.ones((1, 3, 4))).shape)
    (1, 3, 2)
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None  # the inner layers have set their outputs' masks already


def theseus_model(predecessor, successor_layers, replace_rate=0.5, init_layers=None, seed=None):
    """The mixed predecessor/successor model to train with `compile` + `fit`.

    `predecessor`: a fine-tuned model built on `build_transformer_model`
    (its layers `Transformer-i-*`), whose head reads only the last block's
    output. `successor_layers`: the successor's block count `n`, dividing
    the predecessor's `L`. Successor block `j` starts as a copy of
    predecessor block `init_layers[j]` (default: block `j`, the bottom
    layers, as the paper and bert4keras do). The predecessor's blocks are
    frozen (in place); its embeddings and head are shared with the successor
    and keep training, as in the paper. Returns the model; pair it with
    `TheseusReplacementSchedule` for a changing rate, and call
    `theseus_successor` after training.

    Example:
    >>> mixed = theseus_model(classifier, successor_layers=1, replace_rate=0.5)  # doctest: +SKIP
    >>> mixed.compile("adam", "sparse_categorical_crossentropy")  # doctest: +SKIP
    >>> mixed.fit(x, y, callbacks=[TheseusReplacementSchedule(0.5)])  # doctest: +SKIP
    >>> small = theseus_successor(mixed)  # embeddings, 1 block, head  # doctest: +SKIP
    """
    blocks = transformer_blocks(predecessor, "theseus_model")
    total, count = len(blocks), int(successor_layers)
    if count < 1 or total % count:
        raise ValueError(f"theseus_model: successor_layers={successor_layers} must divide the "
                         f"predecessor's {total} blocks")
    group = total // count
    init_layers = list(range(count)) if init_layers is None else [int(i) for i in init_layers]
    if len(init_layers) != count or not all(0 <= i < total for i in init_layers):
        raise ValueError(f"theseus_model: init_layers={init_layers} must name {count} predecessor "
                         f"blocks in [0, {total})")
    try:
        head = TheseusPart(blocks.outputs[-1], predecessor.outputs, name="Theseus-Head")
    except ValueError as error:
        raise ValueError(f"theseus_model: the head of {predecessor.name!r} must read only the last "
                         f"block's output ({error})") from None
    predecessor_blocks = [
        TheseusPart([blocks.inputs[i], blocks.mask], blocks.outputs[i], name=f"Predecessor-{i}")
        for i in range(total)]
    for block in predecessor_blocks:
        block.trainable = False

    hidden, mask = blocks.inputs[0], blocks.mask
    for j in range(count):
        source = predecessor_blocks[init_layers[j]]
        successor = keras.models.clone_model(source)
        successor.set_weights(source.get_weights())
        successor.name = _SUCCESSOR.format(j)
        successor.trainable = True
        old = hidden
        for i in range(j * group, (j + 1) * group):
            old = predecessor_blocks[i]([old, mask])
        new = successor([hidden, mask])
        hidden = TheseusChoice(replace_rate, seed=None if seed is None else seed + j,
                               name=f"Theseus-Choice-{j}")([old, new])
    return TransformerModel(predecessor.inputs, head(hidden), name="theseus")


def theseus_successor(mixed):
    """The successor alone from a `theseus_model`: embeddings, its `n` blocks, the head.

    The result shares its weights with `mixed` and predicts exactly what
    `mixed` predicts outside training; save it like any model.

    Example:
    >>> small = theseus_successor(mixed)  # doctest: +SKIP
    >>> small.save("successor.keras")  # doctest: +SKIP
    """
    names = {layer.name for layer in mixed.layers}
    if _SUCCESSOR.format(0) not in names or "Theseus-Head" not in names:
        raise ValueError(f"theseus_successor: {mixed.name!r} is not a theseus_model "
                         "(no 'Successor-0' / 'Theseus-Head')")
    count = 0
    while _SUCCESSOR.format(count) in names:
        count += 1
    hidden, mask = mixed.get_layer(_SUCCESSOR.format(0))._inbound_nodes[0].arguments.args[0]
    for j in range(count):
        hidden = mixed.get_layer(_SUCCESSOR.format(j))([hidden, mask])
    return TransformerModel(mixed.inputs, mixed.get_layer("Theseus-Head")(hidden), name="successor")
