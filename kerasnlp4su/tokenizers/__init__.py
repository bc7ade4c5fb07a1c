"""Tokenizers with the bert4keras API.

``Tokenizer`` (BERT WordPiece; HF ``tokenizers`` fast path, pure-Python
reference path with identical output) and ``SpTokenizer`` (SentencePiece).
"""

from kerasnlp4su.tokenizers.base import TokenizerBase
from kerasnlp4su.tokenizers.sentencepiece_tokenizer import SpTokenizer
from kerasnlp4su.tokenizers.wordpiece import Tokenizer, load_vocab, save_vocab

__all__ = ["SpTokenizer", "Tokenizer", "TokenizerBase", "load_vocab", "save_vocab"]
