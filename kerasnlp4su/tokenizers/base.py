"""Shared encode / truncate logic for the WordPiece and SentencePiece tokenizers."""

import contextlib
import gc
import numbers

import numpy as np

from kerasnlp4su.snippets import _pop_many, _truncation_counts, sequence_padding


def _check_text(text, what="text"):
    if isinstance(text, str):
        return
    if isinstance(text, (bytes, bytearray)):
        raise TypeError(
            "%s must be str, got bytes; decode it first, e.g. "
            "text.decode('utf-8')" % what
        )
    raise TypeError("%s must be str, got %s" % (what, type(text).__name__))


def _truncate(maxlen, index, sides):
    """bert4keras ``truncate_sequences`` over parallel lists.

    ``sides`` is a list of tuples of equally long lists (tokens, offsets, ...);
    every list in a tuple loses the same positions.
    """
    sides = [s for s in sides if s is not None and s[0]]
    if sum(len(s[0]) for s in sides) <= maxlen:
        return
    counts = _truncation_counts(maxlen, [len(s[0]) for s in sides])
    for side, count in zip(sides, counts):
        for seq in side:
            _pop_many(seq, index, count)


def _check_padded(padded):
    """Width for ``encode_batch(padded=...)``: None (the longest) or an int."""
    if padded is False or padded is True:
        return None
    if isinstance(padded, numbers.Integral) and padded >= 0:
        return int(padded)
    raise ValueError(
        "padded must be True, False or a non-negative int width, got %r" % (padded,)
    )


def _fit_width(array, width):
    """Cut or zero-pad the columns of a padded 2-D batch to ``width``."""
    if width is None or array.shape[1] == width:
        return array
    if array.shape[1] > width:
        return np.ascontiguousarray(array[:, :width])
    return np.pad(array, [(0, 0), (0, width - array.shape[1])])


def _pad_rows(rows, width):
    if not rows:
        return np.zeros((0, width or 0), np.int64)
    return sequence_padding(rows, length=width).astype(np.int64, copy=False)


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic GC while a batch builds many small (acyclic) lists.

    Building ~20k id lists triggers dozens of collections, each walking every
    object the process holds (hundreds of thousands once Keras/TF are
    imported): that alone halved ``encode_batch`` throughput. Reference
    counting still frees everything; the GC is re-enabled afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class TokenizerBase:
    """bert4keras-style tokenizer interface.

    Subclasses implement ``_tokenize``, ``token_to_id``, ``id_to_token`` and
    ``decode``; optionally ``_tokenize_many`` (batched) and
    ``_tokenize_with_offsets``.

    Args:
        token_start: token prepended by ``tokenize`` (``None`` for none).
        token_end: token appended by ``tokenize`` (``None`` for none).
        pre_tokenize: optional callable ``text -> list of words`` run first
            (e.g. ``jieba.lcut`` for word-level vocabularies).
        token_translate: dict replacing tokens after tokenization (and
            reversed by ``SpTokenizer.decode``).
    """

    def __init__(
        self,
        token_start="[CLS]",
        token_end="[SEP]",
        pre_tokenize=None,
        token_translate=None,
    ):
        self._token_pad = "[PAD]"
        self._token_unk = "[UNK]"
        self._token_mask = "[MASK]"
        self._token_start = token_start
        self._token_end = token_end
        self._pre_tokenize = pre_tokenize
        self._token_translate = dict(token_translate or {})
        self._token_translate_inv = {
            v: k for k, v in self._token_translate.items()
        }

    # -- hooks ------------------------------------------------------------
    def _tokenize(self, text):
        raise NotImplementedError

    def _tokenize_many(self, texts):
        return [self._tokenize(t) for t in texts]

    def _tokenize_with_offsets(self, text):
        raise NotImplementedError(
            "%s does not provide offsets" % type(self).__name__
        )

    def _tokenize_many_with_offsets(self, texts):
        return [self._tokenize_with_offsets(t) for t in texts]

    def _ids_many(self, texts):
        """Optional batched shortcut: id lists (no ends) or None."""
        return None

    def _encode_one(self, text, maxlen, truncate_from):
        """Optional shortcut for one text: ``(ids, segments)`` or None."""
        return None

    def _encode_many(self, texts, maxlen, truncate_from, padded=False):
        """Optional batched shortcut for single texts: ``(ids, segments)`` or None.

        With ``padded`` the pair is two 2-D arrays as ``sequence_padding``
        gives them (padded with 0 at the end to the longest row).
        """
        return None

    def token_to_id(self, token):
        raise NotImplementedError

    def id_to_token(self, i):
        raise NotImplementedError

    def decode(self, ids):
        raise NotImplementedError

    # -- public API -------------------------------------------------------
    def tokens_to_ids(self, tokens):
        return [self.token_to_id(token) for token in tokens]

    def ids_to_tokens(self, ids):
        return [self.id_to_token(i) for i in ids]

    def _translate(self, tokens):
        if not self._token_translate:
            return tokens
        get = self._token_translate.get
        return [get(t) or t for t in tokens]

    def _add_ends(self, tokens, offsets=None):
        if self._token_start is not None:
            tokens.insert(0, self._token_start)
            if offsets is not None:
                offsets.insert(0, (0, 0))
        if self._token_end is not None:
            tokens.append(self._token_end)
            if offsets is not None:
                offsets.append((0, 0))

    def tokenize(self, text, maxlen=None):
        """Tokens with ``token_start``/``token_end``, cut to ``maxlen``.

        Truncation drops tokens from the end, keeping ``token_end``.
        """
        _check_text(text)
        self._check_maxlen(maxlen)
        tokens = self._translate(list(self._tokenize(text)))
        self._add_ends(tokens)
        if maxlen is not None:
            index = int(self._token_end is not None) + 1
            _truncate(maxlen, -index, [(tokens,)])
        return tokens

    def truncate_sequence(
        self, maxlen, first_sequence, second_sequence=None, pop_index=-1
    ):
        """Legacy bert4keras (<= 0.9) pair truncation, in place.

        Pops at ``pop_index`` from the strictly longer list, and from the
        second list on ties (unlike ``truncate_sequences``, which pops from
        the first on ties). Kept for code written against older bert4keras.
        """
        second_sequence = [] if second_sequence is None else second_sequence
        counts = _truncation_counts(
            maxlen, [len(second_sequence), len(first_sequence)]
        )
        _pop_many(second_sequence, pop_index, counts[0])
        _pop_many(first_sequence, pop_index, counts[1])

    def _check_ends_known(self, is_known, where, hint=""):
        """Refuse a start/end token the vocabulary lacks.

        It would otherwise silently become the unknown token at the start or
        end of every text. ``where`` completes "is not ..." in the message.
        """
        for name in ("start", "end"):
            token = getattr(self, "_token_%s" % name)
            if token is not None and not is_known(token):
                raise ValueError(
                    "token_%s %r is not %s; pass the vocabulary's own %s token%s, "
                    "or token_%s=None for none" % (name, token, where, name, hint, name)
                )

    def _check_maxlen(self, maxlen, paired=False, pattern="S*E*E"):
        """``maxlen`` must leave room for the start/end tokens it keeps.

        A smaller limit would make truncation pop ``[CLS]``/``[SEP]`` (or
        fail with an IndexError), giving ids no model was trained on.
        """
        if maxlen is None:
            return
        if isinstance(maxlen, bool) or not isinstance(maxlen, numbers.Integral):
            raise TypeError("maxlen must be an int or None, got %r" % (maxlen,))
        start = int(self._token_start is not None)
        end = int(self._token_end is not None)
        if not paired:
            needed = start + end
        elif pattern == "S*E*E":
            needed = start + 2 * end
        else:
            needed = 2 * (start + end)
        if maxlen < needed:
            raise ValueError(
                "maxlen=%d is too small: the %s keeps %d special token(s) (%s)"
                % (maxlen, "text pair" if paired else "text",
                   needed, ", ".join(t for t in (self._token_start, self._token_end) if t))
            )

    def _truncate_index(self, truncate_from):
        if truncate_from == "right":
            return -int(self._token_end is not None) - 1
        if truncate_from == "left":
            return int(self._token_start is not None)
        if isinstance(truncate_from, int):
            return truncate_from
        raise ValueError(
            "truncate_from must be 'right', 'left' or an int, got %r"
            % (truncate_from,)
        )

    def _side(self, text, tokens, offsets, name):
        """Tokens (and offsets) for one input, which may be pre-tokenized."""
        if tokens is not None:
            tokens = self._translate(list(tokens))
            self._add_ends(tokens, offsets)
            return tokens, offsets
        if isinstance(text, (list, tuple)):
            if offsets is not None:
                raise ValueError(
                    "return_offsets=True needs raw text, not a token list"
                )
            return list(text), None  # already tokens: used as given
        _check_text(text, name)
        return None

    def _assemble(self, first, second, maxlen, pattern, truncate_from,
                  to_ids=None):
        """Truncate and convert tokenized sides to (ids, segments, offsets)."""
        to_ids = to_ids or self.tokens_to_ids
        first_tokens, first_offsets = first
        second_tokens, second_offsets = second if second else (None, None)
        if maxlen is not None:
            index = self._truncate_index(truncate_from)
            if second is not None and pattern == "S*E*E":
                maxlen += 1  # the second [CLS] is dropped below
            sides = [
                (first_tokens,) if first_offsets is None
                else (first_tokens, first_offsets)
            ]
            if second is not None:
                sides.append(
                    (second_tokens,) if second_offsets is None
                    else (second_tokens, second_offsets)
                )
            _truncate(maxlen, index, sides)

        token_ids = to_ids(first_tokens)
        segment_ids = [0] * len(token_ids)
        offsets = list(first_offsets) if first_offsets is not None else None
        if second is not None:
            if pattern == "S*E*E":
                skip = int(bool(self._token_start))
                second_tokens = second_tokens[skip:]
                if second_offsets is not None:
                    second_offsets = second_offsets[skip:]
            second_ids = to_ids(second_tokens)
            token_ids.extend(second_ids)
            segment_ids.extend([1] * len(second_ids))
            if offsets is not None:
                offsets.extend(second_offsets)
        return token_ids, segment_ids, offsets

    def encode(
        self,
        first_text,
        second_text=None,
        maxlen=None,
        pattern="S*E*E",
        truncate_from="right",
        return_offsets=False,
    ):
        """``(token_ids, segment_ids)`` for one text or a text pair.

        Args:
            first_text, second_text: strings, or already-tokenized lists
                (used as given, ends included).
            maxlen: total length limit. Tokens are removed one at a time from
                the longer side (the first on ties): from its end, before
                ``token_end``, for ``truncate_from="right"``; after
                ``token_start`` for ``"left"``; or at an int position.
            pattern: ``"S*E*E"`` gives ``[CLS] a [SEP] b [SEP]``; any other
                value keeps the second ``[CLS]``: ``[CLS] a [SEP] [CLS] b [SEP]``.
            return_offsets: also return ``(start, end)`` character spans into
                the text each token came from (``(0, 0)`` for the added
                start/end tokens).
        """
        self._check_maxlen(maxlen, second_text is not None, pattern)
        if second_text is None and not return_offsets and isinstance(first_text, str):
            fast = self._encode_one(first_text, maxlen, truncate_from)
            if fast is not None:
                return fast
        texts = [first_text] if second_text is None else [first_text, second_text]
        sides = self._encode_sides(texts, return_offsets)
        first = sides[0]
        second = sides[1] if second_text is not None else None
        token_ids, segment_ids, offsets = self._assemble(
            first, second, maxlen, pattern, truncate_from
        )
        if return_offsets:
            return token_ids, segment_ids, offsets
        return token_ids, segment_ids

    def _encode_sides(self, texts, return_offsets):
        results, raw = [], []
        for i, text in enumerate(texts):
            side = self._side(text, None, [] if return_offsets else None, "text")
            results.append(side)
            if side is None:
                raw.append(i)
        if raw:
            raw_texts = [texts[i] for i in raw]
            if return_offsets:
                tokenized = self._tokenize_many_with_offsets(raw_texts)
            else:
                tokenized = [(t, None) for t in self._tokenize_many(raw_texts)]
            for i, (tokens, offsets) in zip(raw, tokenized):
                offsets = list(offsets) if offsets is not None else None
                results[i] = self._side(None, tokens, offsets, None)
        return results

    def encode_batch(
        self,
        first_texts,
        second_texts=None,
        maxlen=None,
        pattern="S*E*E",
        truncate_from="right",
        return_offsets=False,
        padded=False,
    ):
        """Batched ``encode``: returns ``(batch_token_ids, batch_segment_ids)``.

        Equivalent to ``[encode(a, b, ...) for a, b in zip(...)]`` but
        tokenizes the whole batch at once (``Tokenizer``: a vectorised numpy
        path for ids, HF ``tokenizers`` when offsets are requested).
        With ``return_offsets=True`` a third list of offsets is returned.

        ``padded=True`` returns the ids and segments as 2-D int64 arrays,
        exactly ``sequence_padding(batch_token_ids)`` and
        ``sequence_padding(batch_segment_ids)`` (0 after the end of each row,
        as wide as the longest row); ``padded=n`` pads or cuts to ``n``
        columns like ``sequence_padding(..., length=n)``. For single texts
        ``Tokenizer`` builds the arrays directly, which skips making
        millions of Python ints and is the fastest way to model inputs.

        >>> ids, segs = tokenizer.encode_batch(["语言模型", "你好"], padded=True)
        >>> ids.shape
        (2, 6)
        """
        self._check_maxlen(maxlen, second_texts is not None, pattern)
        width = _check_padded(padded)
        first_texts = list(first_texts)
        if second_texts is not None:
            second_texts = list(second_texts)
            if len(second_texts) != len(first_texts):
                raise ValueError(
                    "first_texts and second_texts differ in length: %d vs %d"
                    % (len(first_texts), len(second_texts))
                )
        if padded is not False and second_texts is None and not return_offsets:
            if all(isinstance(t, str) for t in first_texts):
                fast = self._encode_many(first_texts, maxlen, truncate_from, padded=True)
                if fast is not None:
                    return tuple(_fit_width(a, width) for a in fast)
        with _gc_paused():
            result = self._encode_batch(first_texts, second_texts, maxlen, pattern,
                                        truncate_from, return_offsets)
        if padded is False:
            return result
        return tuple(_pad_rows(r, width) for r in result[:2]) + result[2:]

    def _encode_batch(self, first_texts, second_texts, maxlen, pattern,
                      truncate_from, return_offsets):
        texts = first_texts + (second_texts or [])
        if (second_texts is None and not return_offsets
                and all(isinstance(t, str) for t in texts)):
            fast = self._encode_many(texts, maxlen, truncate_from)
            if fast is not None:
                return fast
        to_ids = None
        id_lists = None
        if not return_offsets and all(isinstance(t, str) for t in texts):
            id_lists = self._ids_many(texts)
        if id_lists is not None:
            # Work on ids directly; start/end become their ids.
            start, end = self._token_start, self._token_end
            start = None if start is None else self.token_to_id(start)
            end = None if end is None else self.token_to_id(end)
            sides = []
            for ids in id_lists:
                if start is not None:
                    ids.insert(0, start)
                if end is not None:
                    ids.append(end)
                sides.append((ids, None))
            to_ids = list
        else:
            sides = self._encode_sides(texts, return_offsets)
        n = len(first_texts)
        batch_ids, batch_segments, batch_offsets = [], [], []
        for i in range(n):
            second = sides[n + i] if second_texts is not None else None
            ids, segments, offsets = self._assemble(
                sides[i], second, maxlen, pattern, truncate_from, to_ids
            )
            batch_ids.append(ids)
            batch_segments.append(segments)
            batch_offsets.append(offsets)
        if return_offsets:
            return batch_ids, batch_segments, batch_offsets
        return batch_ids, batch_segments
