"""SentencePiece tokenizer with the bert4keras ``SpTokenizer`` API."""

import os

from kerasnlp4su.tokenizers.base import TokenizerBase


class SpTokenizer(TokenizerBase):
    """Wrapper of a SentencePiece model (ALBERT, T5, mT5, ...).

    Same interface as ``Tokenizer``; ``token_start``/``token_end`` default
    to ``[CLS]``/``[SEP]`` as in bert4keras — pass ``token_start=None,
    token_end="</s>"`` for T5-style models. Tokens missing from the model map
    to the unknown id (SentencePiece semantics).

    Example:

    >>> tokenizer = SpTokenizer("spm.model", token_start=None,
    ...                         token_end="</s>")         # doctest: +SKIP
    >>> ids, segs = tokenizer.encode("hello world")   # doctest: +SKIP
    >>> tokenizer.decode(ids)                         # doctest: +SKIP
    'hello world'
    """

    def __init__(self, sp_model_path, **kwargs):
        super().__init__(**kwargs)
        import sentencepiece as spm

        sp_model_path = os.fspath(sp_model_path)
        if not os.path.isfile(sp_model_path):
            raise FileNotFoundError(
                "SentencePiece model not found: %s" % sp_model_path
            )
        self.sp_model = spm.SentencePieceProcessor()
        try:
            self.sp_model.Load(sp_model_path)
        except (OSError, RuntimeError) as e:
            raise ValueError(
                "cannot read SentencePiece model %r: not a valid (or a truncated) "
                ".model file (%s)" % (sp_model_path, str(e).strip().splitlines()[0] if str(e) else "")
            ) from e
        self._vocab_size = self.sp_model.get_piece_size()
        # Models trained with pad_id=-1 have no padding piece.
        pad_id = self.sp_model.pad_id()
        self._token_pad = (
            self.sp_model.id_to_piece(pad_id) if pad_id >= 0 else None
        )
        self._token_unk = self.sp_model.id_to_piece(self.sp_model.unk_id())
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, "_token_%s" % name)
            token_id = None if token is None else self.sp_model.piece_to_id(token)
            setattr(self, "_token_%s_id" % name, token_id)
        self._check_ends_known(
            lambda token: token == self._token_unk
            or self.sp_model.piece_to_id(token) != self.sp_model.unk_id(),
            "a piece of %s" % sp_model_path, hint=" (e.g. token_end='</s>' for T5)")

    def token_to_id(self, token):
        return self.sp_model.piece_to_id(token)

    def tokens_to_ids(self, tokens):
        return [self.sp_model.piece_to_id(t) for t in tokens]

    def id_to_token(self, i):
        """The piece for id ``i``; ``""`` for ids beyond the vocabulary."""
        return self.sp_model.id_to_piece(i) if i < self._vocab_size else ""

    def decode(self, ids):
        """Text from ids; control pieces (``<s>``, ``</s>``, pad) vanish."""
        tokens = [
            self._token_translate_inv.get(t) or t
            for t in self.ids_to_tokens(ids)
        ]
        return self.sp_model.decode_pieces(tokens)

    def _tokenize(self, text):
        if self._pre_tokenize is not None:
            text = " ".join(self._pre_tokenize(text))
        return self.sp_model.encode_as_pieces(text)

    def _tokenize_many(self, texts):
        if self._pre_tokenize is not None:
            texts = [" ".join(self._pre_tokenize(t)) for t in texts]
        return self.sp_model.encode(list(texts), out_type=str)

    def _is_special(self, i):
        return (
            self.sp_model.is_control(i)
            or self.sp_model.is_unknown(i)
            or self.sp_model.is_unused(i)
        )

    def _is_decodable(self, i):
        return i < self._vocab_size and not self._is_special(i)
