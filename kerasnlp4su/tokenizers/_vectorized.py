"""Batched WordPiece ids with numpy: the throughput path of ``encode_batch``.

HF ``tokenizers`` pays roughly a microsecond per word (each CJK character is
a word), which on CJK text is barely faster than bert4keras. Here a whole
batch is classified at once with code-point lookup tables built from
Python's own ``unicodedata``: single-character words (CJK, punctuation) are
mapped to ids by one table lookup, and only multi-character words go
through the Python WordPiece, memoised per word. Because the tables come
from the same predicates as the reference path, the ids are identical by
construction (tests compare them on random text anyway).

Only ids are produced (no token strings or offsets).
"""

import functools
import itertools
import threading
import unicodedata

import numpy as np

from kerasnlp4su.tokenizers import _text

_N = 0x110000


@functools.lru_cache(maxsize=None)
def class_table(lower):
    """uint8 char class (``_text.KEEP/SPLIT/SPACE/DROP``) per code point."""
    cats = list(map(unicodedata.category, map(chr, range(_N))))
    names = sorted(set(cats))
    code = {c: i for i, c in enumerate(names)}
    cat = np.fromiter(map(code.__getitem__, cats), dtype=np.uint8, count=_N)

    def where(*wanted):
        return np.isin(cat, [code[w] for w in wanted if w in code])

    table = np.full(_N, _text.KEEP, dtype=np.uint8)
    # Assigned in increasing priority: bert4keras tests punctuation/CJK
    # first, then spaces, then control characters.
    table[where("Cc", "Cf")] = _text.DROP
    table[[0, 0xFFFD]] = _text.DROP
    if lower:
        table[where("Mn")] = _text.DROP  # accents stripped after NFD
    # ``str.split()`` also splits at KEEP characters such as U+2028.
    isspace = np.fromiter(map(str.isspace, map(chr, range(_N))), bool, _N)
    table[isspace & (table == _text.KEEP)] = _text.SPACE
    table[where("Zs")] = _text.SPACE
    table[[ord(c) for c in " \t\n\r"]] = _text.SPACE
    table[where(*[n for n in names if n.startswith("P")])] = _text.SPLIT
    for lo, hi in ((33, 47), (58, 64), (91, 96), (123, 126)):
        table[lo:hi + 1] = _text.SPLIT
    for lo, hi in _text.CJK_RANGES:
        table[lo:hi + 1] = _text.SPLIT
    table.setflags(write=False)
    return table


class VectorizedWordPiece:
    """ids of ``Tokenizer._py_tokenize`` for many texts at once."""

    _CACHE_LIMIT = 1 << 20

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._lower = tokenizer._do_lower_case
        self._classes = class_table(self._lower)
        # One id table serves both kinds of word: entry c < _N is the id of
        # the one-character word chr(c) (a CJK character or punctuation);
        # memoised multi-character words own rows appended after it.
        unk = tokenizer._token_unk_id
        self._single = np.full(_N, unk, dtype=np.int32)
        for token, i in tokenizer._token_dict.items():
            if len(token) == 1 and tokenizer._word_maxlen >= 1:
                self._single[ord(token)] = i
        # The word memo grows (and resets) while texts are encoded; data
        # pipelines call encode() from several threads at once.
        self._lock = threading.Lock()
        self._reset_memo()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _reset_memo(self):
        # Memo of runs of KEEP characters: word -> row; row r's ids are
        # pool[row_start[r]:row_start[r] + row_len[r]] (numpy, so a batch
        # gathers every occurrence's ids without a Python loop).
        self._rows = {}
        self._pool = np.concatenate((self._single, np.zeros(1024, np.int32)))
        self._pool_size = _N
        self._row_start = np.zeros(1024, np.int64)
        self._row_len = np.zeros(1024, np.int64)

    def _add_rows(self, words):
        """WordPiece new words and append them to the memo."""
        lengths, flat = self._word_pieces(words)
        first = len(self._rows)
        count = first + len(words)
        size = self._pool_size + len(flat)
        self._pool = _grow(self._pool, size)
        self._row_start = _grow(self._row_start, count)
        self._row_len = _grow(self._row_len, count)
        self._pool[self._pool_size:size] = flat
        self._row_start[first:count] = self._pool_size + np.cumsum(lengths) - lengths
        self._row_len[first:count] = lengths
        self._pool_size = size
        self._rows.update(zip(words, range(first, count)))

    def _word_pieces(self, words):
        """``(lengths, flat ids)`` of the WordPiece split of normalised words.

        The words hold no space, punctuation or CJK character and are
        already lower-cased/normalised (normalising again changes nothing).
        When no character is one HF and Python treat differently (the same
        safety table as ``Tokenizer._use_hf``) and no word is longer than
        ``word_maxlen`` (bert4keras then keeps the word itself), HF's Rust
        WordPiece splits them all in one call on the space-joined words,
        grouped back by its word index; otherwise the Python WordPiece runs
        per word.
        """
        tk = self._tokenizer
        if (tk._hf is not None and words
                and max(map(len, words)) <= tk._word_maxlen):
            joined = " ".join(words)
            if tk._unsafe.search(joined) is None:
                encoding = tk._hf.encode(joined, add_special_tokens=False)
                flat = np.asarray(encoding.ids, np.int64)
                word_of = np.asarray(encoding.word_ids, np.int64)
                lengths = np.bincount(word_of, minlength=len(words))
                if (len(lengths) == len(words) and lengths.all()
                        and np.all(np.diff(word_of) >= 0)):
                    return lengths.astype(np.int64), flat
        pieces = [tk.tokens_to_ids(tk._word_piece_tokenize(w)) for w in words]
        lengths = np.fromiter(map(len, pieces), np.int64, len(pieces))
        flat = np.fromiter(itertools.chain.from_iterable(pieces), np.int64,
                           int(lengths.sum()))
        return lengths, flat

    def _rows_of(self, words):
        """Memo row of every word (adding the unseen ones)."""
        get = self._rows.get
        rows = np.fromiter(map(get, words, itertools.repeat(-1)), np.int64, len(words))
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            missing_words = [words[i] for i in missing.tolist()]
            new = list(dict.fromkeys(missing_words))
            if len(self._rows) + len(new) > self._CACHE_LIMIT:
                self._reset_memo()
                new = list(dict.fromkeys(words))
                self._add_rows(new)
                return np.fromiter(map(self._rows.__getitem__, words), np.int64, len(words))
            self._add_rows(new)
            rows[missing] = np.fromiter(map(self._rows.__getitem__, missing_words),
                                        np.int64, len(missing))
        return rows

    def encode_ids(self, texts):
        """List of id lists (no start/end tokens), one per text."""
        flat, per_text = self.encode_flat(texts)
        flat = flat.tolist()
        bounds = np.concatenate(([0], np.cumsum(per_text))).tolist()
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @staticmethod
    def _end_count(start, end, maxlen, truncate_from):
        """How many of start/end are added, or None for limits left to the reference.

        An int ``truncate_from`` or a ``maxlen`` with no room for one id
        keeps the reference loop (and its exact errors and edge cases).
        """
        ends = int(start is not None) + int(end is not None)
        if maxlen is not None and (
            truncate_from not in ("right", "left") or maxlen < ends + 1
        ):
            return None
        return ends

    def _layout(self, texts, start, end, maxlen, truncate_from):
        """Ids of every text with its ends and truncation applied.

        Returns ``(flat, src_first, keep, lengths)`` or None for a case this
        path does not cover (the caller then takes the list path): text i's
        output is ``[start] + flat[src_first[i]:][:keep[i]] + [end]`` (the
        ends present when not None), ``lengths[i]`` long.
        """
        ends = self._end_count(start, end, maxlen, truncate_from)
        if ends is None:
            return None
        flat, per_text = self.encode_flat(texts)
        keep = per_text if maxlen is None else np.minimum(per_text, maxlen - ends)
        # "right" truncation drops the tail before token_end, "left" drops
        # the head after token_start.
        src_first = np.cumsum(per_text) - per_text
        if maxlen is not None and truncate_from == "left":
            src_first = src_first + (per_text - keep)
        return flat, src_first, keep, keep + ends

    def _scatter(self, out, dst_first, layout, start, end):
        """Write each text's ids into ``out.flat`` from ``dst_first[i]``."""
        flat, src_first, keep, lengths = layout
        body = dst_first + int(start is not None)
        total = int(keep.sum())
        shift = np.repeat(body - (np.cumsum(keep) - keep), keep)
        src_shift = np.repeat(src_first - body, keep)
        dst = np.arange(total) + shift
        out = out.reshape(-1)  # a view: ``out`` is contiguous
        out[dst] = flat[dst + src_shift]
        if start is not None:
            out[dst_first] = start
        if end is not None:
            out[dst_first + lengths - 1] = end

    def encode_batch(self, texts, start, end, maxlen, truncate_from):
        """``encode_batch`` of single texts, ends and truncation done in numpy.

        ``start``/``end`` are ids or None. Returns ``(ids, segments)`` lists,
        or None for a case this path does not cover (it then falls back to
        the list path); the result equals ``Tokenizer.encode`` per text.
        """
        layout = self._layout(texts, start, end, maxlen, truncate_from)
        if layout is None:
            return None
        lengths = layout[-1]
        dst_first = np.cumsum(lengths) - lengths
        out = np.empty(int(lengths.sum()), dtype=np.int64)
        self._scatter(out, dst_first, layout, start, end)
        out = out.tolist()
        bounds = np.concatenate(([0], np.cumsum(lengths))).tolist()
        batch_ids = [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        batch_segments = [[0] * c for c in lengths.tolist()]
        return batch_ids, batch_segments

    def encode_one(self, text, start, end, maxlen, truncate_from):
        """``Tokenizer.encode`` of one text: ``(ids, segments)`` lists, or None.

        The batch layout's numpy bookkeeping costs more than it saves on a
        single text, so truncation and the ends are plain list operations.
        """
        ends = self._end_count(start, end, maxlen, truncate_from)
        if ends is None:
            return None
        ids = self.encode_flat([text])[0].tolist()
        if maxlen is not None and len(ids) > maxlen - ends:
            keep = maxlen - ends
            ids = ids[:keep] if truncate_from == "right" else ids[len(ids) - keep:]
        if start is not None:
            ids.insert(0, start)
        if end is not None:
            ids.append(end)
        return ids, [0] * len(ids)

    def encode_padded(self, texts, start, end, maxlen, truncate_from):
        """Like ``encode_batch``, as 2-D arrays padded with 0 at the end.

        Equals ``sequence_padding`` of ``encode_batch``'s lists (the longest
        text sets the width), without building the lists.
        """
        layout = self._layout(texts, start, end, maxlen, truncate_from)
        if layout is None:
            return None
        lengths = layout[-1]
        width = int(lengths.max()) if len(lengths) else 0
        ids = np.zeros((len(lengths), width), dtype=np.int64)
        self._scatter(ids, np.arange(len(lengths)) * width, layout, start, end)
        return ids, np.zeros_like(ids)  # single texts: every segment id is 0

    def encode_flat(self, texts):
        """All ids of all texts as one array, plus the id count per text."""
        with self._lock:
            return self._encode_flat(texts)

    def _encode_flat(self, texts):
        n = len(texts)
        if n == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        joined = "\n".join(texts)  # "\n" is a space: words never straddle
        if self._lower:
            joined = joined.lower()
        cp = _code_points(joined)
        if self._lower and not joined.isascii():
            unstable = _unstable_table()[cp]
            if unstable.any():
                cp = _code_points(_nfd(joined, unstable))
        cls = self._classes[cp]
        dropped = cls == _text.DROP
        if dropped.any():
            kept = ~dropped
            cp, cls = cp[kept], cls[kept]

        # A word is one SPLIT character (CJK, punctuation) or a run of KEEP
        # characters; SPACE characters only separate.
        letter = cls == _text.KEEP
        run_start = letter.copy()
        run_start[1:] &= ~letter[:-1]
        word_first = np.flatnonzero(run_start | (cls == _text.SPLIT))
        if not len(word_first):
            return np.zeros(0, np.int32), np.zeros(n, np.int64)
        # Every word's ids sit at pool[src:src + count]: a SPLIT character's
        # id at its code point, a run's at its memo row (the runs are cut
        # out with one str.split: no KEEP character is whitespace to it).
        src = cp[word_first].astype(np.int64)
        counts = np.ones(len(word_first), np.int64)
        runs = np.flatnonzero(letter[word_first])
        if len(runs):
            masked = np.where(letter, cp, np.uint32(32))
            words = masked.tobytes().decode("utf-32-le", "surrogatepass").split()
            if len(words) != len(runs):  # cannot happen; fail loudly, not wrongly
                raise AssertionError("word split disagrees with the run count")
            rows = self._rows_of(words)
            src[runs] = self._row_start[rows]
            counts[runs] = self._row_len[rows]
        first_id = np.cumsum(counts) - counts
        total = int(first_id[-1] + counts[-1])
        flat = self._pool[np.arange(total) + np.repeat(src - first_id, counts)]

        # Ids per text, from where the separating newlines fall among the
        # words (lower-casing never creates or removes a newline).
        newlines = np.flatnonzero(cp == 10)
        if len(newlines) != n - 1:  # some text has its own newlines
            inner = np.fromiter((t.count("\n") for t in texts), np.int64, n)
            newlines = newlines[np.cumsum(inner)[:-1] + np.arange(n - 1)]
        bounds = np.append(first_id, total)[np.searchsorted(word_first, newlines)]
        per_text = np.diff(bounds, prepend=0, append=total)
        return flat, per_text


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _nfd(text, unstable):
    """``unicodedata.normalize("NFD", text)``, touching only what can change.

    ``unstable`` marks the characters of ``text`` set in ``_unstable_table``.
    NFD works independently between the other characters (their own NFD,
    combining class 0: canonical reordering never crosses them), so only the
    runs of unstable characters are normalised; a few accented words then
    cost a few slices instead of a pass over all the text.
    """
    edges = np.flatnonzero(np.diff(unstable, prepend=False, append=False)).tolist()
    pieces = []
    stable_from = 0
    normalize = unicodedata.normalize
    for first, stop in zip(edges[::2], edges[1::2]):
        pieces.append(text[stable_from:first])
        pieces.append(normalize("NFD", text[first:stop]))
        stable_from = stop
    pieces.append(text[stable_from:])
    return "".join(pieces)


@functools.lru_cache(maxsize=None)
def _unstable_table():
    """bool per code point: may change under NFD or reorder (combining class)."""
    table = np.zeros(_N, bool)
    for c in range(_N):
        ch = chr(c)
        if unicodedata.combining(ch) or (
            unicodedata.decomposition(ch) and unicodedata.normalize("NFD", ch) != ch
        ):
            table[c] = True
    table[0xAC00:0xD7A4] = True  # Hangul syllables decompose algorithmically
    table.setflags(write=False)
    return table


def _grow(array, size):
    """`array` with room for at least `size` items (amortised doubling)."""
    if size <= len(array):
        return array
    bigger = np.zeros(max(size, 2 * len(array)), array.dtype)
    bigger[:len(array)] = array
    return bigger
