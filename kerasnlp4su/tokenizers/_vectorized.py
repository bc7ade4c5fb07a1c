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
        unk = tokenizer._token_unk_id
        self._single = np.full(_N, unk, dtype=np.int64)
        for token, i in tokenizer._token_dict.items():
            if len(token) == 1 and tokenizer._word_maxlen >= 1:
                self._single[ord(token)] = i
        self._unsafe = np.zeros(_N, bool)  # characters HF must not see
        if tokenizer._hf is not None:
            from kerasnlp4su.tokenizers._hf_engine import unsafe_ranges

            for lo, hi in unsafe_ranges(self._lower):
                self._unsafe[lo:hi + 1] = True
        self._all_safe = False
        self._reset_memo()

    def _reset_memo(self):
        # Memo of multi-character words: word -> row; row r's ids are
        # pool[row_start[r]:row_start[r] + row_len[r]] (numpy, so a batch
        # gathers every occurrence's ids without a Python loop).
        self._rows = {}
        self._pool = np.zeros(1024, np.int64)
        self._pool_size = 0
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
            if self._all_safe or tk._unsafe.search(joined) is None:
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

    def encode_batch(self, texts, start, end, maxlen, truncate_from):
        """``encode_batch`` of single texts, ends and truncation done in numpy.

        ``start``/``end`` are ids or None. Returns ``(ids, segments)`` lists,
        or None for a case this path does not cover (it then falls back to
        the list path); the result equals ``Tokenizer.encode`` per text.
        """
        ends = int(start is not None) + int(end is not None)
        if maxlen is not None and (
            truncate_from not in ("right", "left") or maxlen < ends + 1
        ):
            return None  # degenerate limits: keep the reference loop
        flat, per_text = self.encode_flat(texts)
        n = len(per_text)
        if maxlen is not None:
            keep = np.minimum(per_text, maxlen - ends)
        else:
            keep = per_text
        # Which ids of each text survive: the first `keep` ("right"
        # truncation drops the tail before token_end) or the last ("left"
        # drops the head after token_start).
        src_first = np.cumsum(per_text) - per_text
        if maxlen is not None and truncate_from == "left":
            src_first = src_first + (per_text - keep)
        lengths = keep + ends
        dst_first = np.cumsum(lengths) - lengths
        out = np.empty(int(lengths.sum()), dtype=np.int64)
        body = dst_first + int(start is not None)
        total = int(keep.sum())
        within = np.arange(total) - np.repeat(np.cumsum(keep) - keep, keep)
        out[np.repeat(body, keep) + within] = flat[np.repeat(src_first, keep) + within]
        if start is not None:
            out[dst_first] = start
        if end is not None:
            out[dst_first + lengths - 1] = end
        out = out.tolist()
        bounds = np.concatenate(([0], np.cumsum(lengths))).tolist()
        batch_ids = [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        batch_segments = [[0] * c for c in lengths.tolist()]
        assert len(batch_ids) == n
        return batch_ids, batch_segments

    def encode_flat(self, texts):
        """All ids of all texts as one array, plus the id count per text."""
        n = len(texts)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        joined = "\n".join(texts)  # "\n" is a space: words never straddle
        if self._lower:
            joined = joined.lower()
            if not joined.isascii():
                joined = unicodedata.normalize("NFD", joined)
        cp = np.frombuffer(
            joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32
        )
        cls = self._classes[cp]
        # Text index per character: text j owns the newline ranks
        # [first_j, first_j + newlines inside text j]; lower-casing can change
        # lengths but never creates or removes a newline.
        newline = cp == 10
        text_of = np.cumsum(newline) - newline
        if len(joined) and joined.count("\n") != n - 1:  # some text has its own newlines
            inner = np.fromiter((t.count("\n") for t in texts), np.int64, n)
            text_of = np.repeat(np.arange(n), inner + 1)[text_of]
        keep = cls != _text.DROP
        if not keep.all():
            cp, cls, text_of = cp[keep], cls[keep], text_of[keep]

        solid = cls != _text.SPACE
        split = cls == _text.SPLIT
        prev_solid = np.concatenate(([False], solid[:-1]))
        next_solid = np.concatenate((solid[1:], [False]))
        prev_split = np.concatenate(([False], split[:-1]))
        next_split = np.concatenate((split[1:], [False]))
        starts = np.flatnonzero(solid & (~prev_solid | split | prev_split))
        ends = np.flatnonzero(solid & (~next_solid | split | next_split)) + 1

        word_len = ends - starts
        counts = np.ones(len(starts), dtype=np.int64)
        flat = self._single[cp[starts]]
        multi = np.flatnonzero(word_len > 1)
        if len(multi):
            flat, counts = self._with_multi(cp, starts, ends, multi, flat, counts)
        per_text = np.bincount(
            text_of[starts], weights=counts, minlength=n
        ).astype(np.int64)
        return flat, per_text

    def _with_multi(self, cp, starts, ends, multi, single_ids, counts):
        """Splice the WordPiece ids of multi-character words into the batch.

        The multi-character words are cut out with one ``str.split`` (every
        other character becomes a space; a SPLIT or SPACE character always
        separates two such words, and no KEEP character is whitespace to
        ``str.split``), looked up in the memo with one ``map``, and their ids
        gathered from the memo's pool in numpy. Only words never seen before
        run the Python WordPiece.
        """
        m_start, m_end = starts[multi], ends[multi]
        inside = np.zeros(len(cp) + 1, np.int64)
        np.add.at(inside, m_start, 1)
        np.add.at(inside, m_end, -1)
        inside = np.cumsum(inside[:-1]).astype(bool)
        masked = np.where(inside, cp, np.uint32(32))
        words = masked.tobytes().decode("utf-32-le", "surrogatepass").split()
        if len(words) != len(multi):  # cannot happen; keep the slow exact path
            clean = cp.tobytes().decode("utf-32-le", "surrogatepass")
            words = [clean[s:e] for s, e in zip(m_start.tolist(), m_end.tolist())]
        self._all_safe = not self._unsafe[masked].any()
        rows = self._rows_of(words)
        m_counts = self._row_len[rows]
        total = int(m_counts.sum())
        offsets = np.cumsum(m_counts) - m_counts
        within = np.arange(total) - np.repeat(offsets, m_counts)
        m_flat = self._pool[np.repeat(self._row_start[rows], m_counts) + within]

        counts[multi] = m_counts
        out = np.empty(int(counts.sum()), dtype=np.int64)
        first_slot = np.cumsum(counts) - counts
        single = np.flatnonzero(counts == 1)
        out[first_slot[single]] = single_ids[single]
        out[np.repeat(first_slot[multi], m_counts) + within] = m_flat
        return out, counts


def _grow(array, size):
    """`array` with room for at least `size` items (amortised doubling)."""
    if size <= len(array):
        return array
    bigger = np.zeros(max(size, 2 * len(array)), array.dtype)
    bigger[:len(array)] = array
    return bigger
