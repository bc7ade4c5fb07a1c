"""Prompt-based classification: PET cloze scoring, P-tuning prompt embeddings, NSP zero-shot.

- PET ("必须要GPT3吗？不，BERT的MLM模型也能小样本学习", https://kexue.fm/archives/7764):
  a template turns a text into a cloze ("很[MASK]。{text}") and a verbalizer
  maps each label to a word ("好", "差"); the MLM's probabilities of the
  label words at the [MASK] position classify the text with no training
  (zero-shot) or after fine-tuning on a few examples (few-shot).
- P-tuning ("P-tuning：自动构建模版，释放语言模型潜能", https://kexue.fm/archives/8295):
  the template's words are replaced by virtual tokens whose embeddings are
  the only trained weights; the backbone and every other embedding row stay
  frozen (a head the checkpoint lacks may train with them).
- NSP zero-shot (Sun et al. 2021, "NSP-BERT", discussed by Su Jianlin on
  kexue.fm): the pretrained next-sentence head scores "does this label
  sentence continue the text?" per label.
"""

import re

import keras
import numpy as np
from keras import ops

from kerasnlp4su.models.transformer_model import TransformerModel
from kerasnlp4su.snippets import sequence_padding


# ---------------------------------------------------------------- PET
class ClozeTemplate:
    """A PET pattern and verbalizer: texts -> `[token_ids, segment_ids, mask_positions]`.

    `pattern` holds `{text}` once and `{mask}` once; `{mask}` becomes as many
    `[MASK]` tokens as each label word has tokens (all label words must have
    the same number). `verbalizer` is `{label index: word}` for labels
    `0..L-1`. Texts are truncated so that the whole cloze fits `maxlen`.
    Bracketed vocabulary tokens in the pattern (`[unused1]`, P-tuning's
    virtual tokens) stay single tokens.

    Example:
    >>> template = ClozeTemplate(tokenizer, "很{mask}。{text}", {0: "差", 1: "好"})  # doctest: +SKIP
    >>> token_ids, segment_ids, positions = template.encode(["质量不错"])  # doctest: +SKIP
    >>> positions  # doctest: +SKIP
    array([[2]], dtype=int32)
    """

    def __init__(self, tokenizer, pattern, verbalizer, maxlen=64):
        if pattern.count("{text}") != 1 or pattern.count("{mask}") != 1:
            raise ValueError(f"pattern {pattern!r} must contain '{{text}}' and '{{mask}}' once each")
        if sorted(verbalizer) != list(range(len(verbalizer))) or len(verbalizer) < 2:
            raise ValueError(f"verbalizer keys must be the labels 0..L-1 (L >= 2), got "
                             f"{sorted(verbalizer)}")
        self.tokenizer, self.pattern, self.maxlen = tokenizer, pattern, int(maxlen)
        self._unk = tokenizer.token_to_id("[UNK]")
        words = [self._ids(verbalizer[label], pattern=False) for label in range(len(verbalizer))]
        lengths = {len(w) for w in words}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"verbalizer words must all have the same number (>= 1) of tokens; "
                             f"{verbalizer} tokenise to {words}")
        self.label_token_ids = np.array(words, dtype="int32")  # (labels, mask length)
        self.mask_id = tokenizer.token_to_id("[MASK]")
        self.cls_id = tokenizer.token_to_id("[CLS]")
        self.sep_id = tokenizer.token_to_id("[SEP]")

    def _ids(self, text, pattern=True):
        """Token ids without [CLS]/[SEP]; in the pattern, `[unused1]`-style vocabulary tokens stay whole."""
        ids = []
        for piece in re.split(r"(\[[^\[\]\s]+\])", text) if pattern else [text]:
            if not piece:
                continue
            token_id = self.tokenizer.token_to_id(piece) if piece.startswith("[") else None
            if token_id is not None and piece != "[UNK]" and token_id != self._unk:
                ids.append(token_id)
            else:
                ids.extend(self.tokenizer.tokens_to_ids(self.tokenizer.tokenize(piece)[1:-1]))
        return ids

    def encode_one(self, text):
        """`(token_ids, mask_positions)` of one cloze, with [CLS] and [SEP]."""
        before, after = self.pattern.split("{text}")
        k = self.label_token_ids.shape[1]
        pieces = []
        for part in (before, None, after):
            if part is None:
                pieces.append(("text", self._ids(text)))
                continue
            left, _, right = part.partition("{mask}")
            pieces.append(("fixed", self._ids(left)))
            if "{mask}" in part:
                pieces.append(("mask", [self.mask_id] * k))
                pieces.append(("fixed", self._ids(right)))
        fixed = sum(len(ids) for kind, ids in pieces if kind != "text") + 2
        room = self.maxlen - fixed
        if room < 1:
            raise ValueError(f"maxlen {self.maxlen} leaves no room for the text next to the "
                             f"pattern {self.pattern!r} ({fixed} tokens)")
        ids, positions = [self.cls_id], []
        for kind, piece in pieces:
            if kind == "text":
                piece = piece[:room]
            if kind == "mask":
                positions = list(range(len(ids), len(ids) + k))
            ids.extend(piece)
        return ids + [self.sep_id], positions

    def encode(self, texts):
        """`[token_ids, segment_ids, mask_positions]` for a list of texts, padded to `maxlen`."""
        rows = [self.encode_one(text) for text in texts]
        token_ids = sequence_padding([ids for ids, _ in rows], length=self.maxlen)
        positions = np.array([p for _, p in rows], dtype="int32")
        return [token_ids, np.zeros_like(token_ids), positions]


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class ClozeScores(keras.layers.Layer):
    """Label probabilities from MLM probabilities at the mask positions.

    Inputs `[mlm_probs (B, T, V), mask_positions (B, k)]`; `label_token_ids`
    `(L, k)`. A label's score is `sum_j log p(label word token j at mask j)`
    and the output is the softmax of the scores over the labels, i.e. the
    label words' probabilities renormalised among themselves (for k = 1).

    Example:
    >>> layer = ClozeScores([[5], [7]])
    >>> probs = keras.ops.ones((1, 3, 10)) / 10
    >>> tuple(layer([probs, keras.ops.array([[1]])]).shape)
    (1, 2)
    """

    def __init__(self, label_token_ids, **kwargs):
        super().__init__(**kwargs)
        self.label_token_ids = np.asarray(label_token_ids, dtype="int32")
        if self.label_token_ids.ndim != 2:
            raise ValueError(f"label_token_ids must be (labels, mask length), got shape "
                             f"{self.label_token_ids.shape}")
        # The padding mask of the MLM output ends here: the output is per text.
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        probs, positions = inputs
        labels, k = self.label_token_ids.shape
        # Only the label words' columns, then only the mask rows.
        columns = ops.take(probs, self.label_token_ids.T.reshape(-1), axis=-1)  # (B, T, k*L)
        rows = ops.one_hot(ops.cast(positions, "int32"), ops.shape(probs)[1],
                           dtype=columns.dtype)  # (B, k, T)
        at_masks = ops.reshape(ops.einsum("bkt,btc->bkc", rows, columns), (-1, k, k, labels))
        # Token j of every label word at mask j.
        own = ops.stack([at_masks[:, j, j, :] for j in range(k)], axis=1)  # (B, k, L)
        scores = ops.sum(ops.log(ops.maximum(own, 1e-12)), axis=1)
        return ops.softmax(scores, axis=-1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], self.label_token_ids.shape[0])

    def get_config(self):
        config = super().get_config()
        config["label_token_ids"] = self.label_token_ids.tolist()
        return config


def _mlm_output(model):
    outputs = model.outputs
    vocab = [o for o in outputs if len(o.shape) == 3]
    if len(vocab) != 1:
        raise ValueError("the model needs exactly one (batch, length, vocab) MLM output; build it "
                         "with with_mlm=True")
    return vocab[0]


def cloze_classifier(mlm_model, template):
    """A model `[token_ids, segment_ids, mask_positions] -> label probabilities` (PET).

    `mlm_model`: e.g. `build_transformer_model(..., with_mlm=True)`, whose
    MLM output is softmax probabilities over the vocabulary; `template`: a
    `ClozeTemplate` (or an `(L, k)` array of label token ids). The layers are
    shared, so predicting gives zero-shot PET and `compile` + `fit` with
    `sparse_categorical_crossentropy` gives few-shot PET.

    Example:
    >>> mlm = build_transformer_model(config, checkpoint, with_mlm=True)  # doctest: +SKIP
    >>> pet = cloze_classifier(mlm, template)  # doctest: +SKIP
    >>> pet.predict(template.encode(texts)).argmax(-1)  # zero-shot  # doctest: +SKIP
    """
    label_ids = getattr(template, "label_token_ids", template)
    positions = keras.Input((np.shape(label_ids)[1],), dtype="int32", name="Input-Mask-Position")
    probs = ClozeScores(label_ids, name="PET-Label-Probs")([_mlm_output(mlm_model), positions])
    return TransformerModel([*mlm_model.inputs[:2], positions], probs)


# ----------------------------------------------------------- P-tuning
@keras.saving.register_keras_serializable(package="kerasnlp4su")
class PromptEmbedding(keras.layers.Layer):
    """Trainable vectors for virtual-token ids, spliced over a frozen token embedding.

    Inputs `[token_ids, token_embeddings]`: wherever `token_ids` holds one of
    `prompt_ids`, the output is that prompt's own trainable row; elsewhere
    the embedding passes through unchanged. Only the prompt rows get
    gradients from these positions.

    Example:
    >>> layer = PromptEmbedding([5, 6], output_dim=4)
    >>> ids = keras.ops.array([[2, 5, 9, 6]])
    >>> tuple(layer([ids, keras.ops.zeros((1, 4, 4))]).shape)
    (1, 4, 4)
    """

    def __init__(self, prompt_ids, output_dim, initial_rows=None, **kwargs):
        super().__init__(**kwargs)
        self.prompt_ids = [int(i) for i in prompt_ids]
        if len(set(self.prompt_ids)) != len(self.prompt_ids) or not self.prompt_ids:
            raise ValueError(f"prompt_ids must be distinct and non-empty, got {prompt_ids}")
        self.output_dim = int(output_dim)
        self._initial_rows = None if initial_rows is None else np.asarray(initial_rows)
        self.supports_masking = True

    def build(self, input_shape):
        initial = self._initial_rows
        initializer = ("glorot_uniform" if initial is None
                       else (lambda shape, dtype: ops.cast(initial, dtype)))
        self.prompts = self.add_weight(name="prompts", shape=(len(self.prompt_ids), self.output_dim),
                                       initializer=initializer)

    def call(self, inputs, mask=None):
        ids, embedded = inputs
        hits = ops.cast(ops.equal(ops.expand_dims(ids, -1), np.array(self.prompt_ids, "int32")),
                        embedded.dtype)  # (B, T, prompts)
        prompt_vectors = ops.einsum("btn,nd->btd", hits, ops.cast(self.prompts, embedded.dtype))
        keep = 1.0 - ops.sum(hits, axis=-1, keepdims=True)
        return embedded * keep + prompt_vectors

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[1]

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]

    def get_config(self):
        config = super().get_config()
        config.update(prompt_ids=list(self.prompt_ids), output_dim=self.output_dim)
        return config


def ptuning_model(model, prompt_ids, embedding_name="Embedding-Token", initial_ids=None,
                  trainable=()):
    """`model` with trainable virtual tokens: only the embeddings of `prompt_ids` train.

    Returns a new model with the same inputs and outputs whose token
    embeddings pass through a `PromptEmbedding` (named
    `'{embedding_name}-Prompts'`), initialised from the rows of `initial_ids`
    (default: the rows of `prompt_ids` themselves, e.g. `[unused1]`..
    `[unused8]`; real words such as those of a hand-written template are
    the usual better start). Every layer of `model` is shared and frozen, so
    the backbone, the heads and every other embedding row stay exactly as
    they are, and the tied MLM output keeps the original table. Put the
    prompt ids into the input where the template's words would be.

    `trainable`: name prefixes of layers of `model` that train with the
    prompts, for a head the checkpoint lacks (`("MLM-",)` for a new MLM
    transform and bias); the embedding table itself can't be one of them.

    Example:
    >>> mlm = build_transformer_model(config, checkpoint, with_mlm=True)  # doctest: +SKIP
    >>> tuned = ptuning_model(mlm, prompt_ids=range(1, 9))  # doctest: +SKIP
    >>> pet = cloze_classifier(tuned, label_token_ids)  # doctest: +SKIP
    >>> # A checkpoint without its MLM head: prompts from "it was", new head trained too.
    >>> tuned = ptuning_model(mlm, [1, 2], initial_ids=tokenizer.tokens_to_ids(["it", "was"]),
    ...                       trainable=("MLM-",))  # doctest: +SKIP
    """
    table = model.get_layer(embedding_name)
    prompt_ids = [int(i) for i in prompt_ids]
    initial_ids = prompt_ids if initial_ids is None else [int(i) for i in initial_ids]
    vocab = int(table.input_dim)
    for name, ids in (("prompt_ids", prompt_ids), ("initial_ids", initial_ids)):
        if any(i < 0 or i >= vocab for i in ids):
            raise ValueError(f"{name} {ids} must lie in [0, {vocab}) of {embedding_name!r}")
    if len(initial_ids) != len(prompt_ids):
        raise ValueError(f"initial_ids {initial_ids} must give one row per prompt id "
                         f"({len(prompt_ids)})")
    trainable = (trainable,) if isinstance(trainable, str) else tuple(trainable)
    if table.name.startswith(trainable):
        raise ValueError(f"trainable {trainable} matches the embedding table {table.name!r}: "
                         "only its prompt rows may train")
    unmatched = [p for p in trainable if not any(l.name.startswith(p) for l in model.layers)]
    if unmatched:
        raise ValueError(f"trainable prefixes {unmatched} match no layer of the model")
    rows = np.asarray(ops.convert_to_numpy(table.embeddings))[initial_ids]
    prompts = PromptEmbedding(prompt_ids, rows.shape[1], initial_rows=rows,
                              name=f"{embedding_name}-Prompts")

    def call(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if layer is table and kwargs.get("mode", "embedding") == "embedding":
            outputs = prompts([args[0], outputs])
        return outputs

    for layer in model.layers:
        layer.trainable = bool(trainable) and layer.name.startswith(trainable)
    # Layers are reused (not copied), so weights stay shared with `model`.
    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


# ------------------------------------------------------ NSP zero-shot
def nsp_zero_shot(nsp_model, tokenizer, texts, label_sentences, maxlen=64, batch_size=32):
    """P(label sentence follows text) for every text and label: an `(N, L)` array.

    `nsp_model`: built with `with_nsp=True` (its NSP output is `[P(is next),
    P(not next)]`, BERT's order); the pair is encoded as
    `[CLS] text [SEP] label sentence [SEP]`. `argmax(-1)` is the zero-shot
    prediction.

    Example:
    >>> nsp = build_transformer_model(config, checkpoint, with_nsp=True)  # doctest: +SKIP
    >>> scores = nsp_zero_shot(nsp, tokenizer, ["这手机真好用"], ["我很满意。", "我很失望。"])  # doctest: +SKIP
    """
    outputs = [o for o in nsp_model.outputs if len(o.shape) == 2 and o.shape[-1] == 2]
    if len(outputs) != 1:
        raise ValueError("nsp_model needs exactly one (batch, 2) NSP output; build it with "
                         "with_nsp=True")
    scorer = TransformerModel(nsp_model.inputs[:2], outputs[0])
    pairs = [(text, sentence) for text in texts for sentence in label_sentences]
    token_ids, segment_ids = zip(*(tokenizer.encode(a, b, maxlen=maxlen) for a, b in pairs))
    x = [sequence_padding(token_ids, length=maxlen), sequence_padding(segment_ids, length=maxlen)]
    is_next = scorer.predict(x, batch_size=batch_size, verbose=0)[:, 0]
    return is_next.reshape(len(texts), len(label_sentences))
