"""The numpy ``encode_batch`` fast path (single texts) equals ``encode`` per text."""

import gc
import random
import unicodedata

import numpy as np
import pytest

from kerasnlp4su.snippets import sequence_padding
from kerasnlp4su.tokenizers import Tokenizer, _vectorized
from test_tokenizers import MIXED_TEXTS, VOCAB


def _texts(seed, count=60):
    rng = random.Random(seed)
    alphabet = [t for t in VOCAB if not t.startswith(("[", "##"))] + list(" 123456789xyzé\u0301")
    texts = ["".join(rng.choice(alphabet) + (" " if rng.random() < 0.3 else "")
                     for _ in range(rng.randint(0, 40))) for _ in range(count)]
    # Inner newlines, context-sensitive lower-casing, private use, marks to
    # reorder, Hangul (decomposed by NFD), a Greek letter with a tonos.
    tricky = ["a\nb\n\nc 中\n", "ΟΣΟΣ ΣΑ", "x\ue000y", "e\u0323\u0301 ẹ́", "가나다", "Ἄλφα ǅ"]
    return texts + list(MIXED_TEXTS) + tricky + ["", " ", "a"]


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("ends", [("[CLS]", "[SEP]"), (None, "[SEP]"), ("[CLS]", None), (None, None)])
def test_fast_batch_equals_encode(lower, ends):
    token_dict = {t: i for i, t in enumerate(VOCAB)}
    tk = Tokenizer(token_dict, do_lower_case=lower, token_start=ends[0], token_end=ends[1])
    # encode() of one text takes the numpy path too, so the reference is
    # the pure-Python engine.
    ref = Tokenizer(token_dict, do_lower_case=lower, token_start=ends[0], token_end=ends[1],
                    engine="python")
    texts = _texts(int(lower) + 2 * len([e for e in ends if e]))
    for maxlen in (None, 1, 2, 3, 5, 17, 512):
        for truncate_from in ("right", "left", 1, -3):
            try:
                single = [ref.encode(t, maxlen=maxlen, truncate_from=truncate_from) for t in texts]
            except IndexError:
                continue  # a degenerate int index the reference itself rejects
            except ValueError as error:
                # maxlen leaves no room for the special tokens: the batch path must refuse too.
                assert "too small" in str(error)
                with pytest.raises(ValueError, match="too small"):
                    tk.encode_batch(texts, maxlen=maxlen, truncate_from=truncate_from)
                continue
            ids_b, segs_b = tk.encode_batch(texts, maxlen=maxlen, truncate_from=truncate_from)
            assert ids_b == [s[0] for s in single], (maxlen, truncate_from)
            assert segs_b == [s[1] for s in single], (maxlen, truncate_from)
            one = [tk.encode(t, maxlen=maxlen, truncate_from=truncate_from) for t in texts]
            assert one == single, (maxlen, truncate_from)


def test_gc_state_restored():
    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)})
    assert gc.isenabled()
    tk.encode_batch(["我爱", "中国"])
    assert gc.isenabled()
    gc.disable()
    try:
        tk.encode_batch(["我爱", "中国"])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_word_memo_overflow_resets():
    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)})
    texts = _texts(7)
    expected = [tk.encode(t)[0] for t in texts]
    tk.encode_batch(texts[:3])
    tk._vectorized._CACHE_LIMIT = 4  # far fewer than the batch's distinct words
    assert tk.encode_batch(texts)[0] == expected
    assert tk.encode_batch(texts[::-1])[0] == expected[::-1]


def _padded_reference(batch, width):
    rows = [list(r) for r in batch]
    if not rows:
        return np.zeros((0, width or 0), np.int64)
    return sequence_padding(rows, length=width)


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("ends", [("[CLS]", "[SEP]"), (None, "[SEP]"), (None, None)])
def test_padded_batch_equals_sequence_padding(lower, ends):
    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)}, do_lower_case=lower,
                   token_start=ends[0], token_end=ends[1])
    texts = _texts(11 + int(lower))
    for maxlen in (None, 2, 5, 17):
        for truncate_from in ("right", "left", 1):
            ids, segments = tk.encode_batch(texts, maxlen=maxlen, truncate_from=truncate_from)
            for padded in (True, 0, 3, 64):
                width = None if padded is True else padded
                got_ids, got_segments = tk.encode_batch(
                    texts, maxlen=maxlen, truncate_from=truncate_from, padded=padded)
                assert got_ids.dtype == got_segments.dtype == np.int64
                np.testing.assert_array_equal(got_ids, _padded_reference(ids, width))
                np.testing.assert_array_equal(got_segments, _padded_reference(segments, width))


def test_padded_batch_other_paths():
    """Pairs, offsets, one text, no text: padded still equals sequence_padding."""
    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)})
    first, second = ["我爱中国", "语言模型 unaffable"], ["你好", "中国"]
    ids, segments = tk.encode_batch(first, second, maxlen=7)
    got = tk.encode_batch(first, second, maxlen=7, padded=True)
    np.testing.assert_array_equal(got[0], sequence_padding(ids))
    np.testing.assert_array_equal(got[1], sequence_padding(segments))
    assert got[1].max() == 1  # the second segment survives padding
    ids, segments, offsets = tk.encode_batch(first, return_offsets=True)
    got = tk.encode_batch(first, return_offsets=True, padded=True)
    np.testing.assert_array_equal(got[0], sequence_padding(ids))
    assert got[2] == offsets
    one = tk.encode_batch(["我爱"], padded=True)[0]
    np.testing.assert_array_equal(one, [tk.encode("我爱")[0]])
    none = tk.encode_batch([], padded=True)
    assert none[0].shape == none[1].shape == (0, 0)
    python = Tokenizer({t: i for i, t in enumerate(VOCAB)}, engine="python")
    np.testing.assert_array_equal(python.encode_batch(first, padded=5)[0],
                                  sequence_padding(tk.encode_batch(first)[0], length=5))


@pytest.mark.parametrize("bad", [-1, 2.5, "longest", None])
def test_padded_rejects_bad_width(bad):
    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)})
    with pytest.raises(ValueError, match="padded must be True, False or a non-negative int"):
        tk.encode_batch(["我爱", "中国"], padded=bad)


def test_partial_nfd_equals_unicodedata():
    """The batch path normalises only runs of NFD-unstable characters."""
    table = _vectorized._unstable_table()
    codes = np.arange(0x110000)
    flagged = set(codes[table].tolist())
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        if unicodedata.combining(ch) or unicodedata.normalize("NFD", ch) != ch:
            assert c in flagged, hex(c)
    rng = random.Random(5)
    alphabet = list("aeiouAEIOU ñ가각中\u0344\u0f73\u1e9b\u0323\u0307\u0301") + [
        chr(c) for c in range(0x300, 0x370)] + [chr(rng.randrange(0x20, 0x30000)) for _ in range(2000)]
    alphabet = [ch for ch in alphabet if not 0xD800 <= ord(ch) <= 0xDFFF]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        unstable = table[_vectorized._code_points(text)]
        assert _vectorized._nfd(text, unstable) == unicodedata.normalize("NFD", text), repr(text)


def test_encode_from_threads_and_after_pickling():
    """The shared word memo stays consistent under threads and pickling."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)}, do_lower_case=True)
    texts = _texts(21, count=300)
    expected = [tk.encode(t, maxlen=9) for t in texts]
    tk = Tokenizer({t: i for i, t in enumerate(VOCAB)}, do_lower_case=True)
    tk.encode_batch(texts[:2])
    tk._vectorized._CACHE_LIMIT = 8  # resets race with lookups unless locked
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: tk.encode(t, maxlen=9), texts * 4))
    assert got == expected * 4
    clone = pickle.loads(pickle.dumps(tk))
    assert [clone.encode(t, maxlen=9) for t in texts] == expected
    assert clone.encode_batch(texts, maxlen=9) == tuple(map(list, zip(*expected)))
