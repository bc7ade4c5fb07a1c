"""Tokenizer tests: exact bert4keras semantics, engine identity, references.

Expected values below were produced by bert4keras 0.11.5's pure-Python
Tokenizer on the same vocabulary; the independent reference is
``transformers.BertTokenizer`` (pure Python).
"""

import random
import string

import pytest

from kerasnlp4su.tokenizers import SpTokenizer, Tokenizer, load_vocab, save_vocab
from kerasnlp4su.tokenizers import _hf_engine, _text

VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"]
    + list("我爱中国人民语言模型你好世界的是北京天气很今日")
    + ["hello", "world", "the", "model", "token", "##ing", "##izer", "un",
       "##aff", "##able", "play", "##ed", "it", "re", "bon", "tres"]
    + list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase]
    + list(string.ascii_uppercase) + ["##" + c for c in string.ascii_uppercase]
    + list(string.digits) + ["##" + c for c in string.digits]
    + list("，。！？、：；“”（）《》") + list(".,!?'\"()-/:;[]{}<>=+*&%$#@^_`~|\\")
    + ["é", "##é", "è", "##è", "😀", "##😀", "中国", "##中", "，，"]
)

# Mixed scripts, emoji, accents (composed and decomposed), control and
# format characters, characters HF classifies differently (private use,
# U+2E43, CJK Ext-B tail, final sigma), odd whitespace, long words.
MIXED_TEXTS = [
    "Hello, World! 我爱北京天安门。",
    "Crème brûlée très bon😀😀 ok",
    "token\u200bizer\x00 te\x07st\ufffd",
    "unaffable playing xyzzy",
    "3.14 it's A-B/C (中国) e.g. a+b=c",
    "İstanbul ΟΔΟΣ Σίσυφος",
    "private\ue000use \U0001F972 new emoji, dash\u2e43here",
    "ext-b \U0002B820 tail \U00020000 head",
    "tab\tnew\nline\r\n  spaces\u3000ideo\u2028graphic\x0bvt\x85nel",
    "“引号” （括号） 《书名》 …… —— ·",
    "e\u0301te\u0301 decomposed, É upper",
    "한국어 ﬁ ligature Ａ full-width １２",
    "x" * 150 + " tail",
    "",
    "   \t\n ",
    "\u200b\u200d",
]


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def token_dict(vocab_path):
    return load_vocab(vocab_path)


def ids(tokens):
    index = {t: i for i, t in enumerate(VOCAB)}
    return [index.get(t, 1) for t in tokens]


# ----------------------------------------------------------------- load_vocab
def test_load_vocab_ids_are_line_numbers(token_dict):
    assert len(token_dict) == len(VOCAB) == 223
    assert token_dict["[PAD]"] == 0 and token_dict["[SEP]"] == 3
    assert token_dict["我"] == 6 and token_dict["##😀"] == 219


def test_load_vocab_first_field_and_blank_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"[PAD]\t0\r\n[UNK] 17\n\nfoo\n")
    assert load_vocab(path) == {"[PAD]": 0, "[UNK]": 1, "": 2, "foo": 3}


def test_load_vocab_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_vocab(tmp_path / "nope.txt")


def test_load_vocab_bad_encoding_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"[PAD]\n[UNK]\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 3: cannot decode as utf-8"):
        load_vocab(path)
    assert load_vocab(path, encoding="latin-1")["ÿþ"] == 2


def test_load_vocab_duplicate_names_token_and_lines(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("[PAD]\na\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"duplicate token 'a' on line 4 \(first on line 2\)"):
        load_vocab(path)


def test_load_vocab_simplified(vocab_path):
    new, keep = load_vocab(
        vocab_path, simplified=True, startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    )
    # Multi-char tokens containing CJK or punctuation can never be produced
    # and go, including "[MASK]" unless listed in startswith (as bert4keras).
    assert [t for t in VOCAB if t not in new] == [
        "[MASK]", "[unused1]", "中国", "##中", "，，"]
    assert len(new) == len(keep) == 218
    assert keep[:8] == [0, 1, 2, 3, 6, 7, 8, 9] and keep[-1] == 219
    assert all(VOCAB[old] == tok for tok, old in zip(new, keep))
    new, keep = load_vocab(vocab_path, simplified=True, startswith=["[MASK]"])
    assert new["[MASK]"] == 0 and keep[:3] == [4, 6, 7]  # [PAD] etc. dropped
    with pytest.raises(ValueError, match="'\\[NOPE\\]'"):
        load_vocab(vocab_path, simplified=True, startswith=["[NOPE]"])


def test_save_vocab_roundtrip(tmp_path, token_dict):
    save_vocab(tmp_path / "out.txt", token_dict)
    assert load_vocab(tmp_path / "out.txt") == token_dict


# ------------------------------------------------------------ exact outputs
CASED = {
    "Hello, World! 我爱北京。": ["H", "##e", "##l", "##l", "##o", ",", "W", "##o",
                              "##r", "##l", "##d", "!", "我", "爱", "北", "京", "。"],
    "Crème brûlée très bon😀 ok": ["C", "##r", "##è", "##m", "##e", "brûlée", "t",
                                  "##r", "##è", "##s", "bon", "##😀", "o", "##k"],
    "token\u200bizer\x00 te\x07st\ufffd": ["token", "##izer", "t", "##e", "##s", "##t"],
    "3.14 it's A-B/C (中国)": ["3", ".", "1", "##4", "it", "'", "s", "A", "-", "B",
                              "/", "C", "(", "中", "国", ")"],
}
UNCASED = {
    "Hello, World! 我爱北京。": ["hello", ",", "world", "!", "我", "爱", "北", "京", "。"],
    "Crème brûlée très bon😀 ok": ["c", "##r", "##e", "##m", "##e", "b", "##r", "##u",
                                  "##l", "##e", "##e", "tres", "bon", "##😀", "o", "##k"],
    "unaffable playing xyzzy": ["un", "##aff", "##able", "play", "##ing", "x", "##y",
                                "##z", "##z", "##y"],
}


@pytest.mark.parametrize("engine", ["hf", "python"])
def test_tokenize_exact(token_dict, engine):
    for lower, table in ((False, CASED), (True, UNCASED)):
        tk = Tokenizer(token_dict, do_lower_case=lower, engine=engine)
        for text, expected in table.items():
            assert tk.tokenize(text) == ["[CLS]"] + expected + ["[SEP]"], text
            assert tk.encode(text)[0] == [2] + ids(expected) + [3]
    # "brûlée" cannot be split in the cased vocab: kept whole, id [UNK].
    tk = Tokenizer(token_dict, engine=engine)
    assert tk.encode("brûlée")[0] == [2, 1, 3]


@pytest.mark.parametrize("engine", ["hf", "python"])
def test_degenerate_text(token_dict, engine):
    tk = Tokenizer(token_dict, engine=engine)
    for text in ["", "   \t\n ", "\x00\u200b\ufffd\x07"]:
        assert tk.tokenize(text) == ["[CLS]", "[SEP]"]
        assert tk.encode(text) == ([2, 3], [0, 0])
    assert tk.tokenize("a\x00b\u200bc\x7f") == ["[CLS]", "a", "##b", "##c", "[SEP]"]


@pytest.mark.parametrize("engine", ["hf", "python"])
def test_long_words(token_dict, engine):
    word = "ab" * 100  # 200 chars: still split (bert4keras word_maxlen=200)
    tk = Tokenizer(token_dict, engine=engine)
    assert tk.tokenize(word)[1:-1] == ["a"] + ["##b", "##a"] * 99 + ["##b"]
    # 201 chars: one unknown token (the word itself, id [UNK]).
    assert tk.tokenize(word + "c") == ["[CLS]", word + "c", "[SEP]"]
    assert tk.encode(word + "c")[0] == [2, 1, 3]
    # word_maxlen=100 is official BERT's max_input_chars_per_word.
    tk100 = Tokenizer(token_dict, word_maxlen=100, engine=engine)
    assert tk100.encode("a" * 100)[0] == [2] + ids(["a"] + ["##a"] * 99) + [3]
    assert tk100.encode("a" * 101)[0] == [2, 1, 3]


def test_type_errors(token_dict):
    tk = Tokenizer(token_dict)
    for bad in (None, 3, 1.5):
        with pytest.raises(TypeError, match="must be str"):
            tk.tokenize(bad)
        with pytest.raises(TypeError, match="must be str"):
            tk.encode(bad)
        with pytest.raises(TypeError, match="must be str"):
            tk.encode_batch(["ok", bad])
    with pytest.raises(TypeError, match="decode it first"):
        tk.encode(b"bytes")
    with pytest.raises(TypeError, match="token_dict"):
        Tokenizer(["a", "b"])


def test_encode_pair_truncation_and_patterns(token_dict):
    tk = Tokenizer(token_dict, do_lower_case=True)
    a, b = "今天天气很好", "你好世界"
    # [CLS] 今天天气很好 [SEP] 你好世界 [SEP] = 13 tokens; maxlen 8 removes
    # from the longer side first, from its end (before [SEP]).
    assert tk.encode(a, b, maxlen=8) == (
        [2, 27, 24, 3, 16, 17, 18, 3], [0, 0, 0, 0, 1, 1, 1, 1])
    assert tk.encode(a, b, maxlen=8, truncate_from="left") == (
        [2, 26, 17, 3, 17, 18, 19, 3], [0, 0, 0, 0, 1, 1, 1, 1])
    assert tk.encode(a, b, maxlen=8, pattern="S*ES*E") == (
        [2, 27, 24, 3, 2, 16, 17, 3], [0, 0, 0, 0, 1, 1, 1, 1])
    assert tk.encode(a, b) == (
        [2, 27, 24, 24, 25, 26, 17, 3, 16, 17, 18, 19, 3], [0] * 8 + [1] * 5)
    assert tk.tokenize(a, maxlen=5) == ["[CLS]", "今", "天", "天", "[SEP]"]
    # Pre-tokenized input is used as given (and not mutated).
    tokens = ["[CLS]", "今", "天", "[SEP]"]
    assert tk.encode(tokens, maxlen=3)[0] == [2, 27, 3]
    assert tokens == ["[CLS]", "今", "天", "[SEP]"]
    with pytest.raises(ValueError, match="truncate_from"):
        tk.encode(a, maxlen=3, truncate_from="middle")


def test_legacy_truncate_sequence(token_dict):
    tk = Tokenizer(token_dict)
    a, b = [1, 2, 3, 4], [5, 6, 7, 8]
    tk.truncate_sequence(5, a, b)  # ties pop from the second list
    assert (a, b) == ([1, 2, 3], [5, 6])
    a = [1, 2, 3, 4, 5]
    tk.truncate_sequence(3, a, pop_index=0)
    assert a == [3, 4, 5]


def test_encode_batch_equals_encode(token_dict):
    texts = [t for t in MIXED_TEXTS] * 2
    for lower in (False, True):
        tk = Tokenizer(token_dict, do_lower_case=lower)
        for maxlen in (None, 6):
            ids_b, segs_b = tk.encode_batch(texts, texts[::-1], maxlen=maxlen)
            single = [tk.encode(a, b, maxlen=maxlen) for a, b in zip(texts, texts[::-1])]
            assert ids_b == [s[0] for s in single]
            assert segs_b == [s[1] for s in single]
    with pytest.raises(ValueError, match="differ in length"):
        tk.encode_batch(["a"], ["b", "c"])


@pytest.mark.parametrize("lower", [False, True])
def test_engines_identical_on_mixed_text(token_dict, lower):
    hf = Tokenizer(token_dict, do_lower_case=lower, engine="hf")
    py = Tokenizer(token_dict, do_lower_case=lower, engine="python")
    assert (hf.engine, py.engine) == ("hf", "python")
    n_fast = 0
    for text in MIXED_TEXTS:
        n_fast += not hf._unsafe.search(text)
        assert hf.tokenize(text) == py.tokenize(text), text
        got = hf.encode(text, return_offsets=True)
        want = py.encode(text, return_offsets=True)
        assert got == want, text
        # Offsets agree with the bert4keras-style rematch.
        spans = [(m[0], m[-1] + 1) if m else (0, 0)
                 for m in py.rematch(text, py.tokenize(text))]
        assert got[2] == spans, text
    assert n_fast >= 11  # most texts really took the HF path
    # Batched paths: numpy ids (auto engine) and HF offsets.
    assert hf.encode_batch(MIXED_TEXTS)[0] == [py.encode(t)[0] for t in MIXED_TEXTS]
    assert hf.encode_batch(MIXED_TEXTS, return_offsets=True)[2] == [
        py.encode(t, return_offsets=True)[2] for t in MIXED_TEXTS]


def test_unsafe_characters_take_python_path(token_dict):
    tk = Tokenizer(token_dict, do_lower_case=True)
    pattern = tk._unsafe
    for ch in ["\ue000", "\u03a3", "\U0002B820", "\u2e43", "\ud800"]:
        assert pattern.search("a" + ch), hex(ord(ch))
    for ch in "a中😀é，\u200b\x00":
        assert not pattern.search(ch), hex(ord(ch))
    # Private use: HF would drop it, bert4keras keeps it inside the word.
    assert tk.tokenize("a\ue000b") == ["[CLS]", "a\ue000b", "[SEP]"]
    # Final sigma depends on context: ς at the end of a word, σ inside.
    assert tk.tokenize("ΟΣΟΣ")[1] == "οσος"


def test_unsafe_table_matches_full_scan():
    key = (_text.unicodedata.unidata_version, _hf_engine._tokenizers_version())
    if key != _hf_engine._TABLE_VERSION:
        pytest.skip("table is for %s, running %s" % (_hf_engine._TABLE_VERSION, key))
    for lower in (False, True):
        assert _hf_engine.scan_disagreements(lower) == _hf_engine._TABLE[lower]


@pytest.mark.parametrize("lower", [False, True])
def test_matches_transformers_bert_tokenizer(vocab_path, lower):
    transformers = pytest.importorskip("transformers")
    ref = transformers.BertTokenizer(vocab_path, do_lower_case=lower)
    tk = Tokenizer(vocab_path, do_lower_case=lower, word_maxlen=100)
    # transformers additionally NFC-normalises and drops private-use /
    # unassigned characters, so those are left out here.
    texts = [
        "Hello, World! 我爱北京天安门。", "Crème brûlée très bon😀😀 ok",
        "token\u200bizer\x00 te\x07st\ufffd", "unaffable playing xyzzy",
        "3.14 it's A-B/C (中国) e.g. a+b=c", "“引号” （括号） 《书名》 …… —— ·",
        "tab\tnew\nline\r\n  spaces\u3000ideo", "x" * 150 + " tail", "a" * 100,
        "İstanbul ΟΔΟΣ", "", "   ",
    ]
    n_tokens = 0
    for text in texts:
        ours = tk.tokenize(text)[1:-1]
        theirs = ref.tokenize(text)
        # bert4keras keeps an unsplittable word as itself; BERT says [UNK].
        assert [t if t in tk._token_dict else "[UNK]" for t in ours] == theirs, text
        assert tk.encode(text)[0] == ref(text)["input_ids"], text
        n_tokens += len(theirs)
    assert n_tokens > 150


@pytest.mark.parametrize("engine", ["hf", "python"])
def test_decode(token_dict, engine):
    tk = Tokenizer(token_dict, do_lower_case=True, engine=engine)
    text = "你好，世界！Hello world's 3.14 (test) a-b 中国."
    assert tk.decode(tk.encode(text)[0]) == (
        "你好，世界！hello world's 3.14(test) a-b中国.")
    assert tk.decode([], tokens=["un", "##aff", "##able", "[SEP]"]) == "unaffable"
    assert tk.decode([2, 3]) == ""


@pytest.mark.parametrize("engine", ["hf", "python"])
def test_rematch_and_offsets(token_dict, engine):
    tk = Tokenizer(token_dict, do_lower_case=True, engine=engine)
    text = "Héllo 中\u200b国!"
    tokens = tk.tokenize(text)
    assert tokens == ["[CLS]", "hello", "中", "国", "!", "[SEP]"]
    assert tk.rematch(text, tokens) == [[], [0, 1, 2, 3, 4], [6], [8], [9], []]
    _, _, offsets = tk.encode(text, "Hi 你", return_offsets=True)
    # Second text: "h", "##i", "你" index into "Hi 你".
    assert offsets == [(0, 0), (0, 5), (6, 7), (8, 9), (9, 10), (0, 0),
                       (0, 1), (1, 2), (3, 4), (0, 0)]
    # Deliberate difference: bert4keras indexes the *lower-cased* text, which
    # is one char longer after "İ"; here indices point into the original.
    text = "İ中"
    assert tk.rematch(text, tk.tokenize(text)) == [[], [0], [1], []]
    with pytest.raises(ValueError, match="not found"):
        tk.rematch("abc", ["xyz"])


def test_token_translate_and_pre_tokenize(token_dict):
    tk = Tokenizer(token_dict, token_translate={"我": "[MASK]"})
    assert tk.tokenize("我爱") == ["[CLS]", "[MASK]", "爱", "[SEP]"]
    assert tk.encode_batch(["我爱", "我"])[0] == [[2, 4, 7, 3], [2, 4, 3]]
    # pre_tokenize keeps vocab words whole ("中国") and forces Python.
    tk = Tokenizer(token_dict, pre_tokenize=lambda s: ["中国", "人民"])
    assert tk.engine == "python"
    assert tk.tokenize("ignored") == ["[CLS]", "中国", "人", "民", "[SEP]"]
    with pytest.raises(ValueError, match="pre_tokenize"):
        Tokenizer(token_dict, pre_tokenize=str.split, engine="hf")


def test_special_ids_and_lookups(token_dict):
    tk = Tokenizer(token_dict)
    assert (tk._token_pad_id, tk._token_unk_id, tk._token_mask_id,
            tk._token_start_id, tk._token_end_id) == (0, 1, 4, 2, 3)
    assert tk.token_to_id("nope") == 1 and tk.id_to_token(6) == "我"
    assert tk.ids_to_tokens([2, 6, 3]) == ["[CLS]", "我", "[SEP]"]
    assert tk.stem("##ing") == "ing" and tk.stem("ing") == "ing"
    assert tk._is_cjk_character("中") and not tk._is_cjk_character("a")
    assert tk._is_punctuation("$") and tk._is_punctuation("，")
    assert tk._is_space("\u3000") and tk._is_control("\u200b")
    no_unk = Tokenizer({"[CLS]": 0, "[SEP]": 1, "a": 2})
    assert no_unk.engine == "python"
    with pytest.raises(KeyError, match="no \\[UNK\\]"):
        no_unk.encode("b")


# ------------------------------------------------------------- SentencePiece
@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    root = tmp_path_factory.mktemp("spm")
    corpus = root / "corpus.txt"
    rng = random.Random(0)  # enough distinct words for a 100-piece model
    words = ["the", "quick", "brown", "fox", "lazy", "dog", "keras", "hello",
             "world"] + ["".join(rng.choice(string.ascii_lowercase)
                                 for _ in range(rng.randint(3, 8)))
                         for _ in range(150)]
    lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(400)]
    lines += ["我爱自然语言处理 今天天气很好 北京欢迎你"] * 20
    corpus.write_text("\n".join(lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(root / "sp"), vocab_size=100,
        model_type="unigram", character_coverage=1.0, pad_id=0, unk_id=1,
        bos_id=2, eos_id=3, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2,
    )
    return str(root / "sp.model")


def test_sp_tokenizer(sp_model):
    tk = SpTokenizer(sp_model)
    assert tk._vocab_size == 100
    assert (tk._token_pad, tk._token_unk) == ("<pad>", "<unk>")
    assert (tk._token_pad_id, tk._token_unk_id, tk._token_start_id,
            tk._token_end_id, tk._token_mask_id) == (0, 1, 4, 5, 6)
    tokens = tk.tokenize("hello keras")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "".join(tokens[1:-1]).replace("\u2581", " ").strip() == "hello keras"
    token_ids, segment_ids = tk.encode("hello keras", "the dog")
    assert token_ids[0] == 4 and token_ids.count(5) == 2 and 4 not in token_ids[1:]
    assert segment_ids == [0] * (len(tokens)) + [1] * (len(token_ids) - len(tokens))
    assert tk.decode(tk.encode("hello world")[0][1:-1]) == "hello world"
    assert tk.id_to_token(10**6) == ""
    assert tk._is_special(0) and tk._is_special(1) and not tk._is_decodable(3)
    texts = ["the lazy dog", "今天天气很好", ""]
    assert tk.encode_batch(texts, maxlen=5)[0] == [tk.encode(t, maxlen=5)[0] for t in texts]
    assert len(tk.encode("the quick brown fox jumps", maxlen=5)[0]) == 5


def test_sp_tokenizer_t5_style_and_errors(sp_model, tmp_path):
    tk = SpTokenizer(sp_model, token_start=None, token_end="</s>")
    token_ids, _ = tk.encode("hello")
    assert token_ids[-1] == 3 and token_ids[0] != 4
    assert tk.decode(token_ids) == "hello"
    with pytest.raises(FileNotFoundError, match="missing.model"):
        SpTokenizer(str(tmp_path / "missing.model"))
    with pytest.raises(TypeError):
        tk.tokenize(None)
