"""Character classes and normalisation shared by the WordPiece engines.

These predicates define the reference (bert4keras) semantics. The fast HF
engine is only trusted on text whose characters it classifies the same way;
see ``_hf_engine.py``.
"""

import functools
import unicodedata

from kerasnlp4su.snippets import lowercase_and_normalize  # noqa: F401

# Character classes used by the basic (pre-WordPiece) tokenizer.
KEEP, SPLIT, SPACE, DROP = 0, 1, 2, 3

# CJK unified / compatibility ideograph blocks, as in official BERT.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# Full-width and CJK punctuation after which ``decode`` glues the next token
# without a space (same set as bert4keras, so decoded text matches it).
CJK_PUNCTUATION = (
    "\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d"
    "\uff0f\uff1a\uff1b\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f"
    "\uff40\uff5b\uff5c\uff5d\uff5e\uff5f\uff60\uff62\uff63\uff64\u3000\u3001"
    "\u3003\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f\u3010\u3011\u3014"
    "\u3015\u3016\u3017\u3018\u3019\u301a\u301b\u301c\u301d\u301e\u301f\u3030"
    "\u303e\u303f\u2013\u2014\u2018\u2019\u201b\u201c\u201d\u201e\u201f\u2026"
    "\u2027\ufe4f\ufe51\ufe54\u00b7\uff01\uff1f\uff61\u3002"
)


def is_cjk_character(ch):
    """CJK unified / compatibility ideographs (the ranges BERT pads)."""
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def is_space(ch):
    return ch in " \n\r\t" or unicodedata.category(ch) == "Zs"


def is_punctuation(ch):
    # ASCII symbols such as "$", "^", "`" are not Unicode P* but BERT treats
    # them as punctuation, so the ASCII ranges are listed explicitly.
    code = ord(ch)
    return (
        33 <= code <= 47
        or 58 <= code <= 64
        or 91 <= code <= 96
        or 123 <= code <= 126
        or unicodedata.category(ch).startswith("P")
    )


def is_control(ch):
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_dropped(ch):
    return ch == "\x00" or ch == "\ufffd" or is_control(ch)


@functools.lru_cache(maxsize=1 << 16)
def char_class(ch):
    # Order matters: "\t\n\r" are Cc but count as spaces, exactly as bert4keras
    # checks punctuation/CJK first, then spaces, then control characters.
    if is_punctuation(ch) or is_cjk_character(ch):
        return SPLIT
    if is_space(ch):
        return SPACE
    if is_dropped(ch):
        return DROP
    return KEEP


def basic_words(text):
    """Split already-normalised text into BERT 'words' (pre-WordPiece)."""
    out = []
    for ch in text:
        cls = char_class(ch)
        if cls == KEEP:
            out.append(ch)
        elif cls == SPLIT:
            out.append(" ")
            out.append(ch)
            out.append(" ")
        elif cls == SPACE:
            out.append(" ")
    return "".join(out).split()


def char_pieces(text, lower):
    """Normalised form of every original character, one string per char.

    ``str.lower`` is context sensitive for the Greek final sigma, so the
    whole text is lowered once and cut back into per-character pieces;
    lowering only ever expands a character (e.g. U+0130 -> 2 chars), which
    makes the cut unambiguous and keeps indices in the *original* text.
    """
    if not lower:
        return [ch if not is_dropped(ch) else "" for ch in text]
    lowered = text.lower()
    pieces, pos = [], 0
    same_length = len(lowered) == len(text)
    for ch in text:
        n = 1 if same_length or ch == "\u03a3" else len(ch.lower())
        piece = lowered[pos:pos + n]
        pos += n
        piece = unicodedata.normalize("NFD", piece)
        pieces.append(
            "".join(
                c for c in piece
                if unicodedata.category(c) != "Mn" and not is_dropped(c)
            )
        )
    return pieces
