"""Decoding: search, constraints, KV-cached transformer decoders and Viterbi.

* `search`: `AutoRegressiveDecoder` (bert4keras API: beam search and
  top-k/top-p sampling around any next-token `predict`), `softmax`,
  `top_k_top_p_filter`. NumPy only.
* `constraints`: `Trie`, a prefix tree restricting generation to stored
  token-id sequences.
* `cached`: `Seq2SeqDecoder` (UniLM), `LMDecoder` and `EncoderDecoderDecoder`
  (T5), ready-made decoders
  for a `Transformer` builder that feed only the new token each step,
  keeping earlier keys/values in a `KVCache` (`kerasnlp4su.models.cache`).
  `generate(list_of_inputs, topk)` decodes a batch (greedy or beam, prompts
  of different lengths) with the whole search in one compiled loop
  (`tf.function` / `jax.jit`); `beam_search` uses it for one example.
* `beam`: that search as tensor operations (`BeamState`, `advance`).
* `viterbi`: `ViterbiDecoder`, the best label path of a linear-chain CRF.

`LastToken` (now `kerasnlp4su.layers.pooling.TokenSelect(-1)`) stays
importable here for code and `.keras` files that used it.
"""

from kerasnlp4su.decoding.cached import EncoderDecoderDecoder, LMDecoder, Seq2SeqDecoder
from kerasnlp4su.decoding.constraints import Trie
from kerasnlp4su.decoding.search import AutoRegressiveDecoder, softmax, top_k_top_p_filter
from kerasnlp4su.decoding.viterbi import ViterbiDecoder
from kerasnlp4su.layers.pooling import LastToken
from kerasnlp4su.models.cache import KVCache

__all__ = [
    "AutoRegressiveDecoder", "EncoderDecoderDecoder", "KVCache", "LMDecoder", "LastToken", "Seq2SeqDecoder", "Trie",
    "ViterbiDecoder", "softmax", "top_k_top_p_filter",
]
