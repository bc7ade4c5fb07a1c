"""The numpy ``encode_batch`` fast path (single texts) equals ``encode`` per text."""

import gc
import random

import pytest

from kerasnlp4su.tokenizers import Tokenizer
from test_tokenizers import MIXED_TEXTS, VOCAB


def _texts(seed, count=60):
    rng = random.Random(seed)
    alphabet = [t for t in VOCAB if not t.startswith(("[", "##"))] + list(" 123456789xyzé\u0301")
    texts = ["".join(rng.choice(alphabet) + (" " if rng.random() < 0.3 else "")
                     for _ in range(rng.randint(0, 40))) for _ in range(count)]
    return texts + list(MIXED_TEXTS) + ["", " ", "a"]


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("ends", [("[CLS]", "[SEP]"), (None, "[SEP]"), ("[CLS]", None), (None, None)])
def test_fast_batch_equals_encode(lower, ends):
    token_dict = {t: i for i, t in enumerate(VOCAB)}
    tk = Tokenizer(token_dict, do_lower_case=lower, token_start=ends[0], token_end=ends[1])
    texts = _texts(int(lower) + 2 * len([e for e in ends if e]))
    for maxlen in (None, 1, 2, 3, 5, 17, 512):
        for truncate_from in ("right", "left", 1, -3):
            try:
                single = [tk.encode(t, maxlen=maxlen, truncate_from=truncate_from) for t in texts]
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
