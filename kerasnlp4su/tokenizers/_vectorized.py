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
        self._words = {}

    def _word_ids(self, word):
        ids = self._words.get(word)
        if ids is None:
            tk = self._tokenizer
            ids = tk.tokens_to_ids(tk._word_piece_tokenize(word))
            if len(self._words) >= self._CACHE_LIMIT:
                self._words.clear()
            self._words[word] = ids
        return ids

    def encode_ids(self, texts):
        """List of id lists (no start/end tokens), one per text."""
        n = len(texts)
        if n == 0:
            return []
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
        rank = np.cumsum(newline) - newline
        inner = np.fromiter((t.count("\n") for t in texts), np.int64, n)
        text_of = np.repeat(np.arange(n), inner + 1)[rank]
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
        flat = flat.tolist()
        out, pos = [], 0
        for c in per_text.tolist():
            out.append(flat[pos:pos + c])
            pos += c
        return out

    def _with_multi(self, cp, starts, ends, multi, single_ids, counts):
        """Splice the WordPiece ids of multi-character words into the batch.

        Words are deduplicated by (length, two 64-bit polynomial hashes)
        computed with cumulative sums, so the Python WordPiece (and string
        slicing) runs once per distinct word rather than once per occurrence.
        Hash collisions need equal-length words <= word_maxlen whose two
        independent 64-bit hashes both collide (longer words are all unknown).
        """
        m_start, m_end = starts[multi], ends[multi]
        m_len = m_end - m_start
        # Position of every character inside its word (outside words: junk
        # that is never read).
        marker = np.zeros(len(cp), dtype=np.int64)
        marker[m_start] = m_start
        pos = np.arange(len(cp)) - np.maximum.accumulate(marker)
        values = cp.astype(np.uint64) + np.uint64(1)
        hashes = []
        for base in (_BASE1, _BASE2):
            powers = _powers(base, int(pos.max()) + 1)
            prefix = np.concatenate(
                ([np.uint64(0)], np.cumsum(values * powers[pos], dtype=np.uint64))
            )
            hashes.append(prefix[m_end] - prefix[m_start])
        h1, h2 = hashes
        _, first, inverse = np.unique(h1, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        rep = first[inverse]
        if not (
            np.array_equal(h2[rep], h2) and np.array_equal(m_len[rep], m_len)
        ):
            # h1 collided: group by the full (length, h1, h2) key instead.
            key = np.stack([m_len.astype(np.uint64), h1, h2], axis=1)
            _, first, inverse = np.unique(
                key, axis=0, return_index=True, return_inverse=True
            )
            inverse = inverse.reshape(-1)

        clean = cp.tobytes().decode("utf-32-le", "surrogatepass")
        unique_ids = [
            self._word_ids(clean[s:e])
            for s, e in zip(m_start[first].tolist(), m_end[first].tolist())
        ]
        u_len = np.fromiter(map(len, unique_ids), np.int64, len(unique_ids))
        u_flat = np.fromiter(
            (i for ids in unique_ids for i in ids), np.int64, int(u_len.sum())
        )
        u_first = np.cumsum(u_len) - u_len

        counts[multi] = u_len[inverse]
        out = np.empty(int(counts.sum()), dtype=np.int64)
        first_slot = np.cumsum(counts) - counts
        single = np.flatnonzero(counts == 1)
        out[first_slot[single]] = single_ids[single]
        m_counts = counts[multi]
        within = np.arange(int(m_counts.sum())) - np.repeat(
            np.cumsum(m_counts) - m_counts, m_counts
        )
        out[np.repeat(first_slot[multi], m_counts) + within] = u_flat[
            np.repeat(u_first[inverse], m_counts) + within
        ]
        return out, counts


_BASE1 = np.uint64(0x9E3779B97F4A7C15)
_BASE2 = np.uint64(0xC2B2AE3D27D4EB4F)


@functools.lru_cache(maxsize=8)
def _powers_cached(base, n):
    powers = np.ones(n, dtype=np.uint64)  # base**0 .. base**(n-1) mod 2**64
    with np.errstate(over="ignore"):
        powers[1:] = np.cumprod(np.full(n - 1, base, dtype=np.uint64))
    return powers


def _powers(base, n):
    # Reuse a cached table that is long enough (cheap slices).
    size = 1 << max(n - 1, 0).bit_length()
    return _powers_cached(int(base), size)[:n]
