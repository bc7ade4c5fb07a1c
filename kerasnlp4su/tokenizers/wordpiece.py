"""BERT WordPiece tokenizer with bert4keras semantics and an HF fast path."""

import os
import re

from kerasnlp4su.snippets import lowercase_and_normalize
from kerasnlp4su.tokenizers import _text
from kerasnlp4su.tokenizers.base import TokenizerBase, _check_text


def load_vocab(dict_path, encoding="utf-8", simplified=False, startswith=None):
    """Read a BERT ``vocab.txt`` into ``{token: id}`` (id = line index).

    Only the first whitespace-separated field of a line is used, so
    ``token<TAB>count`` files work too; a blank line is the token ``""``.
    A leading byte-order mark is dropped. Errors name the file and line: a
    missing or empty file, bytes that are not valid ``encoding`` (pass e.g.
    ``encoding="gbk"``), and duplicate tokens (which would shift every later
    id off its embedding row).

    With ``simplified=True`` tokens that the tokenizer can never produce
    (multi-character tokens containing CJK characters or punctuation, e.g.
    ``"##中"`` or ``"，，"``) are dropped and ``(new_token_dict, keep_tokens)``
    is returned: ``keep_tokens[new_id] == old_id``, the list to pass as
    ``keep_tokens=`` when building the model. Tokens in ``startswith`` come
    first, in that order.

    >>> token_dict = load_vocab("vocab.txt")                    # doctest: +SKIP
    >>> token_dict, keep_tokens = load_vocab(
    ...     "vocab.txt", simplified=True,
    ...     startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])  # doctest: +SKIP
    """
    dict_path = os.fspath(dict_path)
    try:
        with open(dict_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError("vocabulary file not found: %s" % dict_path) from None
    except IsADirectoryError:
        raise IsADirectoryError(
            "vocabulary path %s is a directory; pass the vocab.txt file in it" % dict_path
        ) from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            "%s, line %d: cannot decode as %s (%s); pass encoding=..."
            % (dict_path, line, encoding, e.reason)
        ) from None
    if text.startswith("\ufeff"):
        # A byte-order mark (vocabularies saved by Windows editors) is not
        # part of the first token: kept, "[PAD]" would silently become unknown.
        text = text[1:]
    # Universal newlines, as iterating a text-mode file does.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError("vocabulary file %s is empty" % dict_path)

    token_dict, first_line = {}, {}
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        token = fields[0] if fields else line.strip()
        if token in token_dict:
            # Silently renumbering would misalign ids with embedding rows.
            raise ValueError(
                "%s: duplicate token %r on line %d (first on line %d)"
                % (dict_path, token, lineno, first_line[token])
            )
        token_dict[token] = len(token_dict)
        first_line[token] = lineno

    if not simplified:
        return token_dict

    new_token_dict, keep_tokens = {}, []
    for token in startswith or []:
        if token not in token_dict:
            raise ValueError("startswith token %r is not in %s" % (token, dict_path))
        if token not in new_token_dict:
            new_token_dict[token] = len(new_token_dict)
            keep_tokens.append(token_dict[token])
    for token, i in sorted(token_dict.items(), key=lambda kv: kv[1]):
        if token not in new_token_dict and not Tokenizer._is_redundant(token):
            new_token_dict[token] = len(new_token_dict)
            keep_tokens.append(i)
    return new_token_dict, keep_tokens


def save_vocab(dict_path, token_dict, encoding="utf-8"):
    """Write ``token_dict`` (e.g. a simplified one) as a ``vocab.txt``."""
    with open(dict_path, "w", encoding=encoding) as f:
        for token, _ in sorted(token_dict.items(), key=lambda kv: kv[1]):
            f.write(token + "\n")


_DECODE_GLUE = re.compile(
    "(%s) " % "|".join(re.escape(p) for p in _text.CJK_PUNCTUATION + "+-/={(<[")
)
_DECODE_CONTRACTION = re.compile(r"' (re|m|s|t|ve|d|ll) ")
_DECODE_DECIMAL = re.compile(r"(\d\.) (\d)")
_DECODE_SPACES = re.compile(" +")


class Tokenizer(TokenizerBase):
    """BERT WordPiece tokenizer, compatible with bert4keras's ``Tokenizer``.

    Output is identical to bert4keras's pure-Python tokenizer: basic
    tokenization (optional lower-casing with accent stripping, CJK characters
    and punctuation split off, control characters dropped), then greedy
    longest-match WordPiece with ``##`` continuations. A word that cannot be
    split (or is longer than ``word_maxlen``) is kept whole as a token and
    maps to the ``[UNK]`` id.

    Args:
        token_dict: ``{token: id}`` or a path to ``vocab.txt``.
        do_lower_case: lower-case and strip accents (uncased models).
        word_maxlen: longer words become one unknown token (bert4keras: 200;
            official BERT uses 100).
        engine: ``"auto"`` (HF ``tokenizers`` when it can give identical
            output, else Python), ``"hf"`` or ``"python"``.
        token_start, token_end, pre_tokenize, token_translate: see
            ``TokenizerBase``.

    Example:

    >>> tokenizer = Tokenizer("vocab.txt", do_lower_case=True)  # doctest: +SKIP
    >>> tokenizer.tokenize("语言模型")                          # doctest: +SKIP
    ['[CLS]', '语', '言', '模', '型', '[SEP]']
    >>> token_ids, segment_ids = tokenizer.encode("你好", "世界")  # doctest: +SKIP
    >>> batch_ids, batch_segs = tokenizer.encode_batch(texts, maxlen=128)  # doctest: +SKIP

    The HF engine is used only for text whose every character both engines
    treat alike (see ``_hf_engine.py``); other text silently takes the
    Python path, so results never depend on the engine. ``encode_batch``
    without offsets uses a numpy batch path built on the same character
    tables as the Python path (see ``_vectorized.py``).
    """

    def __init__(
        self,
        token_dict,
        do_lower_case=False,
        word_maxlen=200,
        engine="auto",
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
    ):
        super().__init__(
            token_start=token_start,
            token_end=token_end,
            pre_tokenize=pre_tokenize,
            token_translate=token_translate,
        )
        if isinstance(token_dict, (str, os.PathLike)):
            token_dict = load_vocab(token_dict)
        if not isinstance(token_dict, dict):
            raise TypeError(
                "token_dict must be a dict or a vocab path, got %s"
                % type(token_dict).__name__
            )
        self._do_lower_case = bool(do_lower_case)
        self._token_dict = token_dict
        self._token_dict_inv = {v: k for k, v in token_dict.items()}
        self._vocab_size = len(token_dict)
        self._word_maxlen = word_maxlen
        # Pieces longer than the longest vocab entry can never match, so the
        # greedy search starts there instead of at the end of the word.
        self._max_piece_len = max((len(t) for t in token_dict), default=0)
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, "_token_%s" % name)
            setattr(self, "_token_%s_id" % name, token_dict.get(token))
        self._check_ends_known(token_dict.__contains__, "in the vocabulary")

        if engine not in ("auto", "hf", "python"):
            raise ValueError("engine must be 'auto', 'hf' or 'python'")
        reason = self._hf_unavailable_reason()
        if engine == "hf" and reason:
            raise ValueError("engine='hf' is unavailable: %s" % reason)
        self.engine = "python" if engine == "python" or reason else "hf"
        self._hf = None
        self._vectorized = None
        if self.engine == "hf":
            from kerasnlp4su.tokenizers import _hf_engine

            self._hf = _hf_engine.build_wordpiece(
                token_dict, self._token_unk, self._do_lower_case, word_maxlen
            )
            self._unsafe = _hf_engine.unsafe_pattern(self._do_lower_case)

    def _vectorizer(self):
        # The numpy batch path reproduces the reference ids exactly, but has
        # no token strings, so it cannot apply token_translate/pre_tokenize.
        # It beats HF even on one text: HF pays ~1 us per CJK character.
        if self.engine == "python" or self._token_translate:
            return None
        if self._vectorized is None:
            from kerasnlp4su.tokenizers._vectorized import VectorizedWordPiece

            self._vectorized = VectorizedWordPiece(self)
        return self._vectorized

    def _ids_many(self, texts):
        vectorized = self._vectorizer()
        return None if vectorized is None else vectorized.encode_ids(texts)

    def _encode_one(self, text, maxlen, truncate_from):
        vectorized = self._vectorizer()
        if vectorized is None:
            return None
        return vectorized.encode_one(text, self._token_start_id, self._token_end_id,
                                     maxlen, truncate_from)

    def _encode_many(self, texts, maxlen, truncate_from, padded=False):
        vectorized = self._vectorizer()
        if vectorized is None:
            return None
        encode = vectorized.encode_padded if padded else vectorized.encode_batch
        return encode(texts, self._token_start_id, self._token_end_id, maxlen,
                      truncate_from)

    def _hf_unavailable_reason(self):
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            return "the `tokenizers` package is not installed"
        if self._pre_tokenize is not None:
            return "pre_tokenize is set"
        if self._token_unk_id is None:
            return "the vocabulary has no %s token" % self._token_unk
        return None

    # -- ids ---------------------------------------------------------------
    def token_to_id(self, token):
        i = self._token_dict.get(token)
        if i is None:
            if self._token_unk_id is None:
                raise KeyError(
                    "token %r is not in the vocabulary, which has no %s"
                    % (token, self._token_unk)
                )
            return self._token_unk_id
        return i

    def tokens_to_ids(self, tokens):
        if self._token_unk_id is None:
            return [self.token_to_id(t) for t in tokens]
        get, unk = self._token_dict.get, self._token_unk_id
        return [get(t, unk) for t in tokens]

    def id_to_token(self, i):
        return self._token_dict_inv[i]

    # -- tokenization ------------------------------------------------------
    def _use_hf(self, text):
        return self._hf is not None and not self._unsafe.search(text)

    def _tokenize(self, text, pre_tokenize=True):
        if pre_tokenize and self._use_hf(text):
            return self._hf_tokens(text, self._hf.encode(text, add_special_tokens=False))
        return self._py_tokenize(text, pre_tokenize)

    def _tokenize_many(self, texts):
        return [t for t, _ in self._run_many(texts, offsets=False)]

    def _tokenize_with_offsets(self, text):
        return self._run_many([text], offsets=True)[0]

    def _tokenize_many_with_offsets(self, texts):
        return self._run_many(texts, offsets=True)

    def _run_many(self, texts, offsets):
        for text in texts:
            _check_text(text)
        results = [None] * len(texts)
        fast = [i for i, t in enumerate(texts) if self._use_hf(t)]
        if fast:
            encodings = self._hf.encode_batch(
                [texts[i] for i in fast], add_special_tokens=False
            )
            for i, enc in zip(fast, encodings):
                tokens = self._hf_tokens(texts[i], enc)
                results[i] = (tokens, enc.offsets if offsets else None)
        for i, text in enumerate(texts):
            if results[i] is None:
                tokens = self._py_tokenize(text)
                spans = self._spans(text, tokens) if offsets else None
                results[i] = (tokens, spans)
        return results

    def _hf_tokens(self, text, encoding):
        tokens = encoding.tokens
        if self._token_unk in tokens:
            # HF says [UNK] where bert4keras keeps the normalised word itself.
            spans = encoding.offsets
            for j, token in enumerate(tokens):
                if token == self._token_unk:
                    start, end = spans[j]
                    tokens[j] = "".join(
                        _text.char_pieces(text[start:end], self._do_lower_case)
                    )
        return tokens

    def _py_tokenize(self, text, pre_tokenize=True):
        """Reference path: a direct transcription of bert4keras's algorithm."""
        if self._do_lower_case:
            text = lowercase_and_normalize(text)
        if pre_tokenize and self._pre_tokenize is not None:
            tokens = []
            for word in self._pre_tokenize(text):
                if word in self._token_dict:
                    tokens.append(word)
                else:
                    tokens.extend(self._py_tokenize(word, False))
            return tokens
        tokens = []
        for word in _text.basic_words(text):
            tokens.extend(self._word_piece_tokenize(word))
        return tokens

    def _word_piece_tokenize(self, word):
        """Greedy longest-match-first split of one word into vocab pieces."""
        if len(word) > self._word_maxlen:
            return [word]
        vocab, pieces, start = self._token_dict, [], 0
        while start < len(word):
            end = min(len(word), start + self._max_piece_len)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            if end == start:
                return [word]
            pieces.append(piece)
            start = end
        return pieces

    def _spans(self, text, tokens):
        mapping = self.rematch(text, tokens)
        return [(m[0], m[-1] + 1) if m else (0, 0) for m in mapping]

    # -- text reconstruction -------------------------------------------------
    def decode(self, ids, tokens=None):
        """Readable text from ids (or ``tokens``), bert4keras style.

        Special ``[...]`` tokens are dropped, ``##`` pieces glued, CJK
        characters written without spaces, and spaces after opening or CJK
        punctuation, inside contractions and decimals removed. Lower-casing
        and dropped characters cannot be undone.

        >>> tokenizer.decode(tokenizer.encode("我爱NLP!")[0])  # doctest: +SKIP
        '我爱NLP!'
        """
        tokens = tokens or self.ids_to_tokens(ids)
        tokens = [t for t in tokens if not self._is_special(t)]
        parts = []
        last = ""  # the last character written so far
        for i, token in enumerate(tokens):
            if token[:2] == "##":
                piece = token[2:]
            elif len(token) == 1 and self._is_cjk_character(token):
                piece = token
            elif len(token) == 1 and self._is_punctuation(token):
                piece = token + " "
            elif i > 0 and last and self._is_cjk_character(last):
                piece = token
            else:
                piece = " " + token
            parts.append(piece)
            if piece:
                last = piece[-1]
        text = _DECODE_SPACES.sub(" ", "".join(parts))
        text = _DECODE_CONTRACTION.sub(r"'\1 ", text)
        text = _DECODE_GLUE.sub(r"\1", text)
        text = _DECODE_DECIMAL.sub(r"\1\2", text)
        return text.strip()

    def rematch(self, text, tokens):
        """For each token, the indices of the characters of ``text`` it covers.

        Special ``[...]`` tokens map to ``[]``. Works for any token list the
        tokenizer could have produced from ``text`` (e.g. ``tokenize(text)``
        including ``[CLS]``/``[SEP]``). For spans of the fast engine use
        ``encode(..., return_offsets=True)``.

        >>> tokenizer.rematch("Hi 你", ["[CLS]", "hi", "你", "[SEP]"])  # doctest: +SKIP
        [[], [0, 1], [3], []]
        """
        _check_text(text)
        pieces = _text.char_pieces(text, self._do_lower_case)
        char_mapping = []
        for i, piece in enumerate(pieces):
            char_mapping.extend([i] * len(piece))
        normalized = "".join(pieces)

        token_mapping, offset = [], 0
        for token in tokens:
            if self._is_special(token):
                token_mapping.append([])
                continue
            token = self.stem(token)
            start = normalized.find(token, offset)
            if start < 0:
                raise ValueError(
                    "token %r not found in the normalised text after "
                    "position %d; were the tokens produced from this text?"
                    % (token, offset)
                )
            end = start + len(token)
            token_mapping.append(char_mapping[start:end])
            offset = end
        return token_mapping

    # -- bert4keras static helpers ------------------------------------------
    @staticmethod
    def stem(token):
        """The token without a leading ``##``."""
        return token[2:] if token[:2] == "##" else token

    @staticmethod
    def _is_space(ch):
        return _text.is_space(ch)

    @staticmethod
    def _is_punctuation(ch):
        return _text.is_punctuation(ch)

    @staticmethod
    def _cjk_punctuation():
        return _text.CJK_PUNCTUATION

    @staticmethod
    def _is_cjk_character(ch):
        return _text.is_cjk_character(ch)

    @staticmethod
    def _is_control(ch):
        return _text.is_control(ch)

    @staticmethod
    def _is_special(ch):
        return bool(ch) and ch[0] == "[" and ch[-1] == "]"

    @staticmethod
    def _is_redundant(token):
        """True for tokens the basic tokenizer can never produce."""
        if len(token) > 1:
            return any(
                _text.is_cjk_character(ch) or _text.is_punctuation(ch)
                for ch in Tokenizer.stem(token)
            )
        return False
