"""SimBERT / RoFormer-Sim: one UniLM model trained on generation and CLS similarity together.

Su Jianlin's "鱼与熊掌兼得：融合检索和生成的SimBERT模型" (https://kexue.fm/archives/7427)
and RoFormer-Sim (archives/8454). Batches hold each similar pair twice,
`[CLS] a [SEP] b [SEP]` next to `[CLS] b [SEP] a [SEP]`, under the UniLM
mask (segment 0 never sees segment 1, so the [CLS] vector encodes the first
sentence alone). The loss is the seq2seq cross-entropy on the second
segment plus an in-batch similarity loss: the L2-normalised [CLS] vectors,
scaled cosine similarities (scale 30), every row's positive its pair
partner (rows `2i` and `2i+1`), itself excluded. The trained model then
generates similar sentences (`Seq2SeqDecoder.random_sample`) and retrieves
them by [CLS] cosine (`simbert_encoder`).
"""

import keras
from keras import ops

from kerasnlp4su.models.transformer_model import TransformerModel


def similarity_loss(vectors, scale=30.0):
    """SimBERT's in-batch loss: rows `2i` and `2i+1` are each other's positive; mean over rows.

    `vectors`: `(batch, dim)` with an even batch. Cross-entropy of
    `softmax(scale * cos(v_i, v_j))` over `j != i` against the partner.

    Example:
    >>> v = keras.ops.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> round(float(similarity_loss(v)), 4)
    0.0
    """
    vectors = vectors / ops.maximum(ops.norm(vectors, axis=-1, keepdims=True), 1e-12)
    logits = scale * ops.matmul(vectors, ops.transpose(vectors))
    batch = ops.shape(vectors)[0]
    logits = logits - 1e12 * ops.eye(batch, dtype=logits.dtype)  # a row is not its own match
    index = ops.arange(batch)
    partners = index + 1 - 2 * (index % 2)  # 0<->1, 2<->3, ...
    return ops.mean(keras.losses.sparse_categorical_crossentropy(partners, logits,
                                                                 from_logits=True))


def seq2seq_loss(token_ids, segment_ids, probs):
    """UniLM cross-entropy: position `t` predicts token `t + 1`, only where segment id is 1.

    Example:
    >>> ids = keras.ops.array([[2, 5, 3, 6, 3]]); seg = keras.ops.array([[0, 0, 0, 1, 1]])
    >>> probs = keras.ops.full((1, 5, 8), 1 / 8)
    >>> round(float(seq2seq_loss(ids, seg, probs)), 4)  # log(8)
    2.0794
    """
    mask = ops.cast(segment_ids[:, 1:], probs.dtype)
    loss = keras.losses.sparse_categorical_crossentropy(token_ids[:, 1:], probs[:, :-1])
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class SimBertLoss(keras.layers.Layer):
    """Adds `seq2seq_loss + similarity_weight * similarity_loss(cls)`; returns the probabilities.

    Inputs: `[token_ids, segment_ids, cls_vectors, probs]`.

    Example:
    >>> layer = SimBertLoss(scale=30.0)
    >>> layer.get_config()["scale"]
    30.0
    """

    def __init__(self, scale=30.0, similarity_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.similarity_weight = float(scale), float(similarity_weight)

    def call(self, inputs):
        token_ids, segment_ids, vectors, probs = inputs
        self.add_loss(seq2seq_loss(token_ids, segment_ids, probs)
                      + self.similarity_weight * similarity_loss(vectors, self.scale))
        return probs

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape[3]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale,
                "similarity_weight": self.similarity_weight}


def _check(model, caller):
    if len(model.outputs) != 2 or len(model.outputs[1].shape) != 3:
        raise ValueError(
            f"{caller}: model {model.name!r} must output [pooled vector, MLM probabilities]: build it "
            "with application='unilm', with_pool='linear', with_mlm=True")


def simbert_model(model, scale=30.0, similarity_weight=1.0):
    """The SimBERT training model: compile with an optimizer only (the loss is built in), then fit on
    pairs encoded twice, `(a, b)` and `(b, a)` in adjacent rows, with `y=None`.

    `model`: `build_transformer_model(..., application="unilm",
    with_pool="linear", with_mlm=True)`; its weights are shared.

    Example:
    >>> bert = build_transformer_model(config, ckpt, application="unilm", with_pool="linear",
    ...                                with_mlm=True)  # doctest: +SKIP
    >>> train = simbert_model(bert)  # doctest: +SKIP
    >>> train.compile(keras.optimizers.Adam(1e-4))  # doctest: +SKIP
    >>> train.fit([token_ids, segment_ids], None, batch_size=32)  # doctest: +SKIP
    """
    _check(model, "simbert_model")
    vectors, probs = model.outputs
    probs = SimBertLoss(scale, similarity_weight, name="SimBert-Loss")(
        list(model.inputs) + [vectors, probs])
    return TransformerModel(model.inputs, probs, name="simbert_training")


def simbert_encoder(model):
    """`[token_ids, segment_ids] -> L2-normalised [CLS] vectors`, for retrieval by dot product.

    Example:
    >>> encoder = simbert_encoder(bert)  # doctest: +SKIP
    >>> vectors = encoder.predict([token_ids, np.zeros_like(token_ids)])  # doctest: +SKIP
    """
    _check(model, "simbert_encoder")
    normalised = keras.layers.UnitNormalization(name="SimBert-Normalize")(model.outputs[0])
    return TransformerModel(model.inputs, normalised, name="simbert_encoder")
