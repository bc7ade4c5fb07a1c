"""Hypothesis properties for tokenizers and padding/truncation helpers."""

import string
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerasnlp4su.snippets import (lowercase_and_normalize, sequence_padding, text_segmentate,
                                  truncate_sequences)
from kerasnlp4su.tokenizers import Tokenizer

CJK = "我爱中国人民语言模型你好世界的是北京天气很今日"
PUNCT = "，。！？、：；“”（）《》.,!?'\"()-/:;[]{}<>=+*&%$#@^_`~|\\"
VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list(CJK)
    + ["hello", "world", "un", "##aff", "##able", "play", "##ing", "it"]
    + list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase]
    + list(string.ascii_uppercase) + ["##" + c for c in string.ascii_uppercase]
    + list(string.digits) + ["##" + c for c in string.digits]
    + list(PUNCT) + ["é", "##é", "😀", "##😀"]
)
TOKEN_DICT = {t: i for i, t in enumerate(VOCAB)}

# Characters the vocabulary fully covers (so no [UNK] can appear) ...
IN_VOCAB = string.ascii_letters + string.digits + CJK + PUNCT + "é😀"
# ... plus everything awkward: spaces, controls, format chars, accents,
# private use, final sigma, CJK Ext-B tail, Hangul, ligatures.
AWKWARD = (" \t\n\r\u3000\xa0\u2028\x0b\x85\x00\x07\u200b\u200d\ufffd"
           "\u0301\u0300ÉèÜßİΣς\ue000\U0002B820\u2e43한ﬁＡ１\U0001F972")

clean_text = st.text(alphabet=IN_VOCAB + " ", max_size=60)
any_text = st.text(alphabet=IN_VOCAB + AWKWARD, max_size=60) | st.text(max_size=30)

TOKENIZERS = {
    (lower, engine): Tokenizer(TOKEN_DICT, do_lower_case=lower, engine=engine)
    for lower in (False, True)
    for engine in ("hf", "python")
}
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def dropped(ch):
    return ch in "\x00\ufffd" or unicodedata.category(ch) in ("Cc", "Cf")


@FAST
@given(text=any_text, lower=st.booleans())
def test_engines_agree(text, lower):
    hf, py = TOKENIZERS[lower, "hf"], TOKENIZERS[lower, "python"]
    assert hf.tokenize(text) == py.tokenize(text)
    assert hf.encode(text, return_offsets=True) == py.encode(text, return_offsets=True)
    # The numpy batch path (auto engine) gives the same ids.
    assert hf.encode_batch([text, text + " x"])[0] == [
        py.encode(text)[0], py.encode(text + " x")[0]]


@FAST
@given(text=any_text, lower=st.booleans())
def test_rematch_maps_into_text_and_onto_token(text, lower):
    tk = TOKENIZERS[lower, "python"]
    tokens = tk.tokenize(text)
    mapping = tk.rematch(text, tokens)
    assert len(mapping) == len(tokens)
    assert mapping[0] == [] and mapping[-1] == []
    flat = [i for m in mapping for i in m]
    assert all(0 <= i < len(text) for i in flat)
    assert flat == sorted(flat)  # tokens appear in text order
    for token, m in zip(tokens[1:-1], mapping[1:-1]):
        assert m, token
        # The covered characters, normalised, spell the token.
        chars = "".join(
            lowercase_and_normalize(text[i]) if lower else text[i]
            for i in sorted(set(m)) if not dropped(text[i])
        )
        if "\u03a3" not in text:  # 'Σ' lowers by context ('ς' or 'σ')
            assert tk.stem(token) in chars


@FAST
@given(text=clean_text, lower=st.booleans())
def test_decode_then_tokenize_is_stable(text, lower):
    tk = TOKENIZERS[lower, "hf"]
    token_ids, _ = tk.encode(text)
    assert 1 not in token_ids  # the alphabet is fully covered
    decoded = tk.decode(token_ids)
    assert tk.tokenize(decoded) == tk.tokenize(text)


@FAST
@given(text=any_text, maxlen=st.integers(2, 12), lower=st.booleans())
def test_maxlen_keeps_ends(text, maxlen, lower):
    tk = TOKENIZERS[lower, "hf"]
    full = tk.tokenize(text)
    cut = tk.tokenize(text, maxlen=maxlen)
    assert len(cut) == min(len(full), maxlen)
    assert cut[0] == "[CLS]" and cut[-1] == "[SEP]"
    assert cut[:-1] == full[:len(cut) - 1]


def naive_truncate(maxlen, index, *sequences):
    """The obvious loop: pop from the first longest until it fits."""
    sequences = [s for s in sequences if s]
    while sum(map(len, sequences)) > maxlen:
        i = int(np.argmax([len(s) for s in sequences]))
        sequences[i].pop(index)
    return sequences


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    maxlen=st.integers(0, 120),
    index=st.sampled_from([-1, -2, 0, 1]),
)
def test_truncate_sequences_matches_naive_loop(lengths, maxlen, index):
    seqs = [list(range(100 * k, 100 * k + n)) for k, n in enumerate(lengths)]
    expected_seqs = [list(s) for s in seqs]
    try:
        expected = naive_truncate(maxlen, index, *expected_seqs)
    except IndexError:
        with pytest.raises(IndexError):
            truncate_sequences(maxlen, index, *seqs)
        return
    assert truncate_sequences(maxlen, index, *seqs) == expected
    assert seqs == expected_seqs


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 8), min_size=1, max_size=5),
    length=st.none() | st.integers(0, 10),
    mode=st.sampled_from(["post", "pre"]),
    value=st.integers(-5, 5),
)
def test_sequence_padding_properties(lengths, length, mode, value):
    seqs = [np.arange(1, n + 1) * 10 for n in lengths]
    out = sequence_padding(seqs, length=length, value=value, mode=mode)
    target = max(lengths) if length is None else length
    assert out.shape == (len(seqs), target)
    for row, seq in zip(out, seqs):
        kept = seq[:target]
        pad = target - len(kept)
        if mode == "post":
            np.testing.assert_array_equal(row[:len(kept)], kept)
            assert (row[len(kept):] == value).all()
        else:
            np.testing.assert_array_equal(row[pad:], kept)
            assert (row[:pad] == value).all()


@settings(max_examples=100, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)),
                       min_size=1, max_size=4))
def test_sequence_padding_seq_dims_2(shapes):
    mats = [np.full(s, i + 1) for i, s in enumerate(shapes)]
    out = sequence_padding(mats, seq_dims=2, value=-1)
    rows, cols = max(s[0] for s in shapes), max(s[1] for s in shapes)
    assert out.shape == (len(mats), rows, cols)
    for i, (r, c) in enumerate(shapes):
        assert (out[i, :r, :c] == i + 1).all()
        assert (out[i] == -1).sum() == rows * cols - r * c


def _normalised(tk, text, start, end, lower):
    return "".join(
        lowercase_and_normalize(text[i]) if lower else text[i]
        for i in range(start, end) if not dropped(text[i])
    )


@FAST
@given(first=any_text, second=any_text, lower=st.booleans(),
       engine=st.sampled_from(["hf", "python"]))
def test_encode_offsets_map_back_into_each_text(first, second, lower, engine):
    tk = TOKENIZERS[lower, engine]
    ids, segments, offsets = tk.encode(first, second, return_offsets=True)
    tokens = tk.tokenize(first) + tk.tokenize(second)[1:]
    assert len(ids) == len(segments) == len(offsets) == len(tokens)
    assert ids == tk.encode(first, second)[0]
    for segment, text in ((0, first), (1, second)):
        spans = [(o, t) for o, s, t in zip(offsets, segments, tokens)
                 if s == segment and t not in ("[CLS]", "[SEP]")]
        previous_end = 0
        for (start, end), token in spans:
            # Inside this side's text, in order, never overlapping.
            assert previous_end <= start < end <= len(text), (token, start, end)
            previous_end = end
            if "\u03a3" not in text:
                assert tk.stem(token) in _normalised(tk, text, start, end, lower)
    special = [o for o, t in zip(offsets, tokens) if t in ("[CLS]", "[SEP]")]
    assert special == [(0, 0)] * 3


@FAST
@given(text=any_text, lower=st.booleans())
def test_decode_encode_is_a_fixed_point(text, lower):
    # decode loses what tokenization cannot keep (case, accents, unknown
    # words, spacing); after one round trip nothing more changes.
    tk = TOKENIZERS[lower, "hf"]
    once = tk.decode(tk.encode(text)[0])
    twice = tk.decode(tk.encode(once)[0])
    assert twice == once
    assert tk.encode(twice)[0] == tk.encode(once)[0]


@FAST
@given(first=any_text, second=any_text, maxlen=st.integers(3, 20), lower=st.booleans(),
       truncate_from=st.sampled_from(["right", "left"]))
def test_pair_truncation_keeps_structure(first, second, maxlen, lower, truncate_from):
    tk = TOKENIZERS[lower, "hf"]
    ids, segments = tk.encode(first, second, maxlen=maxlen, truncate_from=truncate_from)
    full_ids, full_segments = tk.encode(first, second)
    assert len(ids) == min(maxlen, len(full_ids))
    assert ids[0] == 2 and ids.count(2) == 1 and ids.count(3) == 2 and ids[-1] == 3
    n_first = segments.count(0)
    assert segments == [0] * n_first + [1] * (len(ids) - n_first) and ids[n_first - 1] == 3
    # Each side keeps an in-order run of its own tokens (a prefix or a suffix).
    a, b = ids[1:n_first - 1], ids[n_first:-1]
    full_a = full_ids[1:full_segments.count(0) - 1]
    full_b = full_ids[full_segments.count(0):-1]
    if truncate_from == "right":
        assert a == full_a[:len(a)] and b == full_b[:len(b)]
    else:
        assert a == full_a[len(full_a) - len(a):] and b == full_b[len(full_b) - len(b):]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.text(alphabet="abc中文", min_size=1, max_size=6), min_size=1,
                      max_size=12),
       seps=st.lists(st.sampled_from("。！，"), min_size=11, max_size=11),
       maxlen=st.integers(7, 30))
def test_text_segmentate_loses_nothing_and_respects_maxlen(parts, seps, maxlen):
    text = "".join(p + s for p, s in zip(parts, seps))
    pieces = text_segmentate(text, maxlen, seps="。！，")
    assert "".join(pieces) == text
    # Every separator-delimited part fits, so every piece fits.
    assert all(0 < len(p) <= maxlen for p in pieces), pieces
