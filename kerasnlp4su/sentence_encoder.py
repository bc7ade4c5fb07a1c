"""Sentence embeddings with the API sentence-transformers users know.

`SentenceEncoder.from_hf(path)` reads a sentence-transformers (or plain HF
BERT-style) folder: weights, `vocab.txt`, the pooling of `1_Pooling/` and a
`Normalize` module; `SentenceEncoder.from_checkpoint(...)` wraps an
official TF1 release for bert4keras users. `encode(texts)` returns a
float32 NumPy array, one row per text, in the order given.

Why it is fast: the whole input is tokenized in one batched call, texts are
grouped by token length so a batch carries almost no padding, each batch
is cut to its longest row (rounded up to `length_multiple`, which bounds
the number of distinct shapes a backend compiles for), and the forward
pass plus pooling runs as one frozen graph (`kerasnlp4su.inference`).
"""

import json
import os
import sys
import warnings

import keras
import numpy as np

from kerasnlp4su.inference import freeze
from kerasnlp4su.layers.pooling import GlobalMaxPooling1D, MaskedGlobalAveragePooling, TokenSelect

__all__ = ["POOLING_MODES", "SentenceEncoder", "quantizable_layer", "read_sentence_transformers_config"]

POOLING_MODES = ("mean", "cls", "max")
# Texts tokenized (and length-sorted) together: bounds the padded id array of a huge input.
_CHUNK = 16384
# sentence-transformers `1_Pooling/config.json` flag -> our pooling name.
_ST_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                     "pooling_mode_max_tokens": "max"}


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e


def read_sentence_transformers_config(path):
    """`{'pooling', 'normalize', 'maxlen', 'do_lower_case'}` found in a model folder.

    Reads `modules.json` (which modules, where), the pooling module's
    `config.json`, `sentence_bert_config.json` (`max_seq_length`) and
    `tokenizer_config.json` (`do_lower_case`). Keys the folder does not
    settle are None. Pooling modes other than mean/cls/max raise.

    Example:
    >>> read_sentence_transformers_config("all-MiniLM-L6-v2/")  # doctest: +SKIP
    {'pooling': 'mean', 'normalize': True, 'maxlen': 256, 'do_lower_case': True}
    """
    found = {"pooling": None, "normalize": None, "maxlen": None, "do_lower_case": None}
    pooling_dir = os.path.join(path, "1_Pooling")
    modules_path = os.path.join(path, "modules.json")
    if os.path.exists(modules_path):
        modules = _read_json(modules_path)
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        found["normalize"] = "Normalize" in kinds
        for module, kind in zip(modules, kinds):
            if kind == "Pooling":
                pooling_dir = os.path.join(path, module.get("path", "1_Pooling"))
    elif os.path.isdir(os.path.join(path, "2_Normalize")):
        found["normalize"] = True
    pooling_path = os.path.join(pooling_dir, "config.json")
    if os.path.exists(pooling_path):
        flags = _read_json(pooling_path)
        on = sorted(k for k, v in flags.items() if k.startswith("pooling_mode") and v)
        known = [_ST_POOLING_FLAGS[k] for k in on if k in _ST_POOLING_FLAGS]
        if len(on) != 1 or len(known) != 1:
            raise ValueError(
                f"{pooling_path}: SentenceEncoder supports exactly one of "
                f"{sorted(_ST_POOLING_FLAGS)} set to true; the file sets {on or 'none'}")
        found["pooling"] = known[0]
    st_config = os.path.join(path, "sentence_bert_config.json")
    if os.path.exists(st_config):
        found["maxlen"] = _read_json(st_config).get("max_seq_length")
    tokenizer_config = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(tokenizer_config):
        found["do_lower_case"] = _read_json(tokenizer_config).get("do_lower_case")
    return found


def _vocab_is_uncased(vocab_path):
    """True when no ordinary token of the vocabulary has an upper-case letter."""
    with open(vocab_path, encoding="utf-8") as f:
        for line in f:
            token = line.strip()
            if token and not token.startswith("[") and token != token.lower():
                return False
    return True


class _DtypePolicy:
    """Builds layers under a dtype policy, restoring the global one afterwards."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        self.saved = keras.config.dtype_policy()
        if self.dtype is not None:
            keras.config.set_dtype_policy(self.dtype)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.saved)


def _policy_name(dtype):
    if dtype in (None, "float32"):
        return None
    if dtype in ("bfloat16", "mixed_bfloat16"):
        return "mixed_bfloat16"
    if dtype in ("float16", "mixed_float16"):
        return "mixed_float16"
    raise ValueError(f"dtype must be None, 'float32', 'bfloat16' or 'float16', got {dtype!r}")


def quantizable_layer(layer):
    """The layers `SentenceEncoder(quantize="int8")` quantizes: all but the precision-sensitive ones.

    A `filters` function for `keras.Model.quantize`: False for the attention
    projections (query, key, value, output) and the feed-forward output
    projection, whose int8 rounding moves the embeddings most; True for the
    rest (the token and segment tables, the feed-forward intermediate
    projection, ...). On all-MiniLM-L6-v2 (300 sentences of mixed length),
    cosine to the float32 embeddings: every layer quantized mean 0.9973,
    min 0.9922; this selection mean 0.9994, min 0.9980.

    >>> encoder = SentenceEncoder.from_hf("all-MiniLM-L6-v2/", quantize="int8")   # doctest: +SKIP
    >>> every_layer = SentenceEncoder.from_hf("all-MiniLM-L6-v2/", quantize="int8",
    ...                                       quantize_filter=None)                # doctest: +SKIP
    """
    path = layer.path or layer.name
    parent, _, name = path.rpartition("/")
    if "MultiHead" in parent:
        return False
    return not (parent.endswith("FeedForward") and name == "output")


class SentenceEncoder:
    """Texts in, fixed-size sentence vectors out (`encode`), like sentence-transformers.

    Args:
        model: a kerasnlp4su encoder `keras.Model` (inputs `[token_ids]` or
            `[token_ids, segment_ids]`, output `(batch, length, hidden)`),
            or a `Transformer` builder.
        tokenizer: a kerasnlp4su `Tokenizer` (its `encode_batch` is used).
        pooling: `'mean'` (over non-padding tokens), `'cls'` (the first
            token) or `'max'` (over non-padding tokens).
        normalize: L2-normalise the vectors by default.
        maxlen: longest token sequence (longer texts are cut), `[CLS]` and
            `[SEP]` included.
        quantize: `'int8'` quantizes the model's weights first
            (`keras.Model.quantize`); see the README for its speed.
        quantize_filter: which layers `quantize` quantizes (Keras's
            `filters`): by default `quantizable_layer`, everything but the
            attention projections and the feed-forward output projection;
            `None` quantizes every layer that can be.
        length_multiple: each batch is padded to a multiple of this many
            tokens (JAX/PyTorch compile once per shape).

    Example:
    >>> encoder = SentenceEncoder.from_hf("all-MiniLM-L6-v2/")      # doctest: +SKIP
    >>> vectors = encoder.encode(["A man plays a guitar.", "Someone plays music."])
    >>> vectors.shape                                                # doctest: +SKIP
    (2, 384)
    >>> float(vectors[0] @ vectors[1])                               # doctest: +SKIP
    0.62

    `encode` keeps the order of `texts`. The frozen graph holds a copy of
    the weights: after changing `encoder.model`'s weights call `refresh()`.
    """

    def __init__(self, model, tokenizer, pooling="mean", normalize=False, maxlen=512,
                 quantize=None, length_multiple=8, quantize_filter=quantizable_layer):
        model = getattr(model, "model", model)
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model or a Transformer builder, "
                            f"got {type(model).__name__}")
        if len(model.inputs) not in (1, 2) or len(model.outputs) != 1 \
                or len(model.outputs[0].shape) != 3:
            raise ValueError(
                f"model must take [token_ids] or [token_ids, segment_ids] and return one "
                f"(batch, length, hidden) tensor; {model.name!r} takes {len(model.inputs)} "
                f"inputs and returns {[tuple(o.shape) for o in model.outputs]}")
        if not hasattr(tokenizer, "encode_batch"):
            raise TypeError(f"tokenizer must be a kerasnlp4su tokenizer with encode_batch, "
                            f"got {type(tokenizer).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = self._check_pooling(pooling)
        self.normalize = bool(normalize)
        self.maxlen = self._check_maxlen(maxlen)
        self.length_multiple = int(length_multiple)
        if self.length_multiple < 1:
            raise ValueError(f"length_multiple must be >= 1, got {length_multiple}")
        if quantize is not None:
            with warnings.catch_warnings():
                # Keras names every weightless layer (Add, Dropout, ...) it leaves alone.
                warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
                self.model.quantize(quantize, filters=quantize_filter)
        self.quantize = quantize
        self._frozen = {}

    # ------------------------------------------------------------ loading
    @classmethod
    def from_hf(cls, path, pooling=None, normalize=None, maxlen=None, dtype=None,
                quantize=None, do_lower_case=None, **kwargs):
        """An encoder from a sentence-transformers / HF BERT-style folder.

        The folder holds `config.json`, `model.safetensors` (or
        `pytorch_model.bin`) and `vocab.txt`; `1_Pooling/config.json`,
        `modules.json` (a `Normalize` module), `sentence_bert_config.json`
        and `tokenizer_config.json` are read when present. Arguments left
        None take the folder's values (else mean pooling, no normalisation,
        the model's longest position). `dtype='bfloat16'` computes under
        `mixed_bfloat16` (the output stays float32). Other keyword arguments
        go to the constructor.

        Example:
        >>> encoder = SentenceEncoder.from_hf("all-MiniLM-L6-v2/")  # doctest: +SKIP
        """
        from kerasnlp4su.models.hf import load_hf_model
        from kerasnlp4su.tokenizers import Tokenizer

        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"sentence model folder {path!r} not found")
        vocab = os.path.join(path, "vocab.txt")
        if not os.path.exists(vocab):
            raise FileNotFoundError(
                f"{vocab} not found: SentenceEncoder.from_hf reads BERT-style (WordPiece) "
                f"folders with a vocab.txt")
        found = read_sentence_transformers_config(path)
        if do_lower_case is None:
            do_lower_case = found["do_lower_case"]
        if do_lower_case is None:
            do_lower_case = _vocab_is_uncased(vocab)
        with _DtypePolicy(_policy_name(dtype)):
            model = load_hf_model(path)
        if maxlen is None:
            maxlen = found["maxlen"] or _position_limit(model)
        return cls(model, Tokenizer(vocab, do_lower_case=bool(do_lower_case)),
                   pooling=pooling or found["pooling"] or "mean",
                   normalize=found["normalize"] if normalize is None else normalize,
                   maxlen=maxlen, quantize=quantize, **kwargs)

    @classmethod
    def from_checkpoint(cls, config_path, checkpoint_path, dict_path, pooling="mean",
                        normalize=False, maxlen=None, model="bert", do_lower_case=True,
                        dtype=None, quantize=None, **kwargs):
        """An encoder from an official TF1 release (bert4keras's three paths).

        Example:
        >>> encoder = SentenceEncoder.from_checkpoint(
        ...     "chinese_L-12_H-768_A-12/bert_config.json",
        ...     "chinese_L-12_H-768_A-12/bert_model.ckpt",
        ...     "chinese_L-12_H-768_A-12/vocab.txt", pooling="cls")  # doctest: +SKIP
        """
        from kerasnlp4su.models import build_transformer_model
        from kerasnlp4su.tokenizers import Tokenizer

        with _DtypePolicy(_policy_name(dtype)):
            encoder = build_transformer_model(config_path, checkpoint_path, model=model)
        if maxlen is None:
            maxlen = _position_limit(encoder)
        return cls(encoder, Tokenizer(dict_path, do_lower_case=do_lower_case), pooling=pooling,
                   normalize=normalize, maxlen=maxlen, quantize=quantize, **kwargs)

    # ------------------------------------------------------------ checks
    @staticmethod
    def _check_pooling(pooling):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        return pooling

    @staticmethod
    def _check_maxlen(maxlen):
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 3:
            raise ValueError(f"maxlen must be an int >= 3 ([CLS] text [SEP]), got {maxlen!r}")
        return int(maxlen)

    @staticmethod
    def _check_texts(texts):
        if isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
            raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}: {text!r:.60}")
        return texts

    # ------------------------------------------------------------ inference
    @property
    def dimension(self):
        """Length of one sentence vector."""
        return int(self.model.outputs[0].shape[-1])

    def pooled_model(self, pooling=None):
        """`keras.Model`: the encoder followed by the pooling (no normalisation)."""
        pooling = self._check_pooling(pooling or self.pooling)
        pooled = self._pooled_outputs([pooling])[0]
        return keras.Model(self.model.inputs, pooled, name=f"{self.model.name}_{pooling}")

    def _pooled_outputs(self, modes):
        hidden, token_ids = self.model.outputs[0], self.model.inputs[0]
        outputs = []
        # float32 pooling: a bfloat16 sum over a long sentence loses digits.
        for mode in modes:
            if mode == "mean":
                outputs.append(MaskedGlobalAveragePooling(dtype="float32", name="mean_pooling")(
                    [hidden, token_ids]))
            elif mode == "cls":
                outputs.append(TokenSelect(0, dtype="float32", name="cls_pooling")(hidden))
            else:
                keep = keras.ops.not_equal(token_ids, 0)
                outputs.append(GlobalMaxPooling1D(dtype="float32", name="max_pooling")(
                    hidden, mask=keep))
        return outputs

    def refresh(self):
        """Forget the frozen graphs (call after changing the model's weights)."""
        self._frozen.clear()

    def _forward(self, pooling):
        """`fn(inputs) -> vectors`; one frozen graph gives all poolings (they cost next to nothing
        beside the encoder, and freezing costs seconds)."""
        if "all" not in self._frozen:
            model = keras.Model(self.model.inputs, self._pooled_outputs(POOLING_MODES),
                                name=f"{self.model.name}_pooled")
            self._frozen["all"] = freeze(model)
        frozen, index = self._frozen["all"], POOLING_MODES.index(pooling)
        return lambda inputs: frozen(inputs)[index]

    def encode(self, texts, batch_size=32, normalize=None, pooling=None, maxlen=None,
               show_progress=False):
        """Sentence vectors of `texts`: a float32 array `(len(texts), dimension)`.

        A single str gives one vector `(dimension,)`. `normalize`, `pooling`
        and `maxlen` override the encoder's settings for this call.

        Example:
        >>> encoder.encode(["first text", "second text"], normalize=True).shape  # doctest: +SKIP
        (2, 384)
        """
        single = isinstance(texts, str)
        texts = self._check_texts([texts] if single else texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        maxlen = self.maxlen if maxlen is None else self._check_maxlen(maxlen)
        pooling = self._check_pooling(pooling or self.pooling)
        normalize = self.normalize if normalize is None else bool(normalize)
        forward = self._forward(pooling)
        with_segments = len(self.model.inputs) == 2

        vectors = np.empty((len(texts), self.dimension), np.float32)
        progress = _Progress(len(texts)) if show_progress else None
        for start in range(0, len(texts), _CHUNK):
            ids, _ = self.tokenizer.encode_batch(texts[start:start + _CHUNK], maxlen=maxlen,
                                                 padded=True)
            ids = ids.astype(np.int32, copy=False)
            lengths = np.count_nonzero(ids, axis=1)
            # Longest first, like sentence-transformers: a memory problem shows at once.
            order = np.argsort(-lengths, kind="stable")
            for first in range(0, len(order), batch_size):
                rows = order[first:first + batch_size]
                width = -(-int(lengths[rows[0]]) // self.length_multiple) * self.length_multiple
                batch = ids[rows, :min(max(width, 1), ids.shape[1])]
                inputs = [batch, np.zeros_like(batch)] if with_segments else [batch]
                vectors[start + rows] = forward(inputs)
                if progress:
                    progress.update(len(rows))
        if progress:
            progress.close()
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return vectors[0] if single else vectors


def _position_limit(model):
    """The longest sequence the position embedding covers (512 when unknown)."""
    for layer in model.layers:
        if "position" in layer.name.lower() and getattr(layer, "weights", None):
            return int(layer.weights[0].shape[0])
    return 512


class _Progress:
    """tqdm when installed, else a line on stderr every tenth of the work."""

    def __init__(self, total):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.bar = tqdm(total=total, desc="encode", unit="text") if tqdm else None
        self.total, self.done, self.shown = total, 0, 0

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.done * 10 // max(self.total, 1) > self.shown:
            self.shown = self.done * 10 // max(self.total, 1)
            print(f"encode: {self.done}/{self.total}", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
