"""Moved to `kerasnlp4su.decoding.viterbi`; this path stays importable for earlier code."""
from kerasnlp4su.decoding.viterbi import ViterbiDecoder  # noqa: F401
