"""Tokenizers with the bert4keras API.

``Tokenizer`` (BERT WordPiece; HF ``tokenizers`` fast path, pure-Python
reference path with identical output) and ``SpTokenizer`` (SentencePiece).
"""

# bert4keras's tokenizers module re-exported these snippets; scripts import them from here.
from kerasnlp4su.snippets import (  # noqa: F401
    convert_to_unicode,
    is_py2,
    is_string,
    lowercase_and_normalize,
    open,
    truncate_sequences,
)
from kerasnlp4su.tokenizers.base import TokenizerBase
from kerasnlp4su.tokenizers.sentencepiece_tokenizer import SpTokenizer
from kerasnlp4su.tokenizers.wordpiece import Tokenizer, load_vocab, save_vocab

__all__ = ["SpTokenizer", "Tokenizer", "TokenizerBase", "load_vocab", "save_vocab"]
