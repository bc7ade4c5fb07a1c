"""Beam search and sampling around a next-token `predict` (NumPy, any model).

`AutoRegressiveDecoder` keeps bert4keras's API (`wraps`, `predict`,
`beam_search`, `random_sample`, `last_token`, `first_output_ids`), so a
bert4keras decoder subclass runs after changing its imports. The search
itself is NumPy; only `predict` touches a model.

Differences from bert4keras 0.11.5 (all deliberate):

* `minlen`: the end token is masked out while it would finish a sequence
  shorter than `minlen`; bert4keras let it through and then kept decoding
  after it, which could leave an end token inside a returned sequence.
* `states` returned by `predict` follow the beams: when they offer a
  `reorder(indices)` method (as the cached decoders' states do) the
  decoder calls it with the rows it keeps. Other states pass through
  unchanged, as in bert4keras. Subclasses may override `reorder_states`.
* `beam_search` / `random_sample` accept `constraint=` (a `Trie` or any
  `prefix -> allowed ids` callable) and `random_sample` accepts `rng=`.
* Beams whose score is `-inf` (every allowed continuation exhausted) are
  dropped rather than kept as padding.
"""

import functools

import keras
import numpy as np

from kerasnlp4su.layers.pooling import TokenSelect

__all__ = ["AutoRegressiveDecoder", "softmax", "top_k_top_p_filter"]


def softmax(x, axis=-1):
    """Numerically stable NumPy softmax."""
    x = np.asarray(x, dtype="float64")
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def top_k_top_p_filter(probas, topk=None, topp=None):
    """Zero out all but the sampling support of each row, then renormalise.

    `topk` keeps the `topk` most likely tokens; `topp` then keeps the
    smallest set of most likely tokens whose total probability reaches
    `topp` (the token that crosses the threshold is kept). Both apply in
    that order, as in bert4keras. Returns an array of `probas`'s shape.

    Example:
    >>> top_k_top_p_filter(np.array([[0.5, 0.3, 0.15, 0.05]]), topp=0.8)
    array([[0.625, 0.375, 0.   , 0.   ]])
    """
    probas = np.array(probas, dtype="float64")
    if topk is not None:
        topk = int(topk)
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if topk < probas.shape[-1]:
            drop = np.argpartition(-probas, topk - 1, axis=-1)[:, topk:]
            np.put_along_axis(probas, drop, 0.0, axis=-1)
        probas /= probas.sum(axis=-1, keepdims=True)
    if topp is not None:
        order = np.argsort(-probas, axis=-1, kind="stable")
        sorted_probas = np.take_along_axis(probas, order, axis=-1)
        # Mass strictly before each token: a token stays while the tokens
        # ahead of it have not yet reached topp.
        before = np.cumsum(sorted_probas, axis=-1) - sorted_probas
        drop = before >= topp
        drop[:, 0] = False
        sorted_probas[drop] = 0.0
        np.put_along_axis(probas, order, sorted_probas, axis=-1)
        probas /= probas.sum(axis=-1, keepdims=True)
    return probas

class AutoRegressiveDecoder:
    """Beam search and random sampling around a user's next-token `predict` (bert4keras API).

    Subclass it and write `predict(self, inputs, output_ids, states)`
    returning the next-token distribution of each row of `output_ids`,
    decorated with `@AutoRegressiveDecoder.wraps(default_rtype=...,
    use_states=...)`: `default_rtype='probas'` when it returns
    probabilities, `'logits'` when it returns pre-softmax scores;
    `use_states=True` when it returns `(scores, states)`.

    `start_id=None` starts from an empty output (UniLM: the source already
    ends with [SEP]); `minlen` and `maxlen` count `output_ids`, start token
    included.

    Example:
    >>> class Title(AutoRegressiveDecoder):
    ...     @AutoRegressiveDecoder.wraps(default_rtype="probas")
    ...     def predict(self, inputs, output_ids, states):
    ...         token_ids = np.concatenate([inputs[0], output_ids], 1)
    ...         segment_ids = np.concatenate([inputs[1], np.ones_like(output_ids)], 1)
    ...         return self.last_token(model).predict([token_ids, segment_ids], verbose=0)
    >>> Title(start_id=None, end_id=3, maxlen=32).beam_search([ids, segs], topk=3)  # doctest: +SKIP
    """

    def __init__(self, start_id, end_id, maxlen, minlen=1):
        self.start_id = start_id
        self.end_id = end_id
        self.maxlen = int(maxlen)
        self.minlen = int(minlen)
        self.models = {}
        if start_id is None:
            self.first_output_ids = np.empty((1, 0), dtype=int)
        else:
            self.first_output_ids = np.array([[start_id]])

    # ------------------------------------------------------------ the hooks
    @staticmethod
    def wraps(default_rtype="probas", use_states=False):
        """Decorate `predict` with temperature, `rtype` conversion and optional states.

        The decorated method takes `(inputs, output_ids, states,
        temperature=1, rtype=default_rtype)` and always returns
        `(scores, states)`: probabilities for `rtype='probas'`,
        log-probabilities for `rtype='logits'`.
        """
        if default_rtype not in ("probas", "logits"):
            raise ValueError(f"default_rtype must be 'probas' or 'logits', got {default_rtype!r}")

        def decorator(predict):
            @functools.wraps(predict)
            def wrapped(self, inputs, output_ids, states, temperature=1, rtype=default_rtype):
                if rtype not in ("probas", "logits"):
                    raise ValueError(f"rtype must be 'probas' or 'logits', got {rtype!r}")
                result = predict(self, inputs, output_ids, states)
                scores, states = result if use_states else (result, None)
                scores = np.asarray(keras.ops.convert_to_numpy(scores), dtype="float64")
                if default_rtype == "logits":
                    probas = softmax(scores / temperature)
                elif temperature != 1:
                    # p ** (1/T), renormalised, is softmax(log p / T).
                    probas = np.power(scores, 1.0 / temperature)
                    probas /= probas.sum(axis=-1, keepdims=True)
                else:
                    probas = scores
                if rtype == "probas":
                    return probas, states
                # The epsilon keeps zero-probability tokens finite, as in
                # bert4keras, so beams never go to -inf by themselves.
                return np.log(probas + 1e-12), states

            return wrapped

        return decorator

    def predict(self, inputs, output_ids, states=None):
        """Next-token scores for each row of `output_ids`; override and decorate with `wraps`."""
        raise NotImplementedError

    def last_token(self, model):
        """A model with `model`'s inputs that outputs only the last position of each output."""
        if model not in self.models:
            outputs = [TokenSelect(-1)(output) for output in model.outputs]
            self.models[model] = keras.Model(model.inputs,
                                             outputs[0] if len(outputs) == 1 else outputs)
        return self.models[model]

    def reorder_states(self, states, indices):
        """Make `states` follow the kept rows `indices` (beam selection, finished rows dropped)."""
        if states is not None and hasattr(states, "reorder"):
            return states.reorder(indices)
        return states

    # ---------------------------------------------------------- the masks
    def _allowed(self, scores, output_ids, end_counts, min_ends, constraint):
        """Boolean `(rows, vocab)` mask of tokens allowed next, or None when all are."""
        allowed = None
        start = self.first_output_ids.shape[1]
        if constraint is not None:
            allowed = np.zeros(scores.shape, dtype=bool)
            for row, ids in enumerate(output_ids):
                tokens = list(constraint(ids[start:].tolist()))
                if not tokens and self.end_id is not None:
                    # The prefix left the constraint: finish it rather than
                    # leave a row with nothing to choose.
                    tokens = [self.end_id]
                allowed[row, tokens] = True
        if self.end_id is not None and output_ids.shape[1] + 1 < self.minlen:
            # Only an end token that would finish the sequence is too early;
            # with min_ends > 1 the intermediate ones are part of the output.
            finishing = end_counts + 1 >= min_ends
            if finishing.any():
                if allowed is None:
                    allowed = np.ones(scores.shape, dtype=bool)
                allowed[finishing, self.end_id] = False
        return allowed

    # ------------------------------------------------------------ decoding
    def beam_search(self, inputs, topk, states=None, temperature=1, min_ends=1, constraint=None):
        """Return the best sequence found by a beam search of width `topk`.

        A sequence finishes when it ends with `end_id` and holds at least
        `min_ends` end tokens. Finished beams that are not the best at that
        step are dropped (the beam narrows), as in bert4keras; the search
        returns once the best beam has finished, or after `maxlen` steps.
        """
        inputs = [np.array([i]) for i in inputs]
        output_ids, output_scores = self.first_output_ids, np.zeros(1)
        end_counts = np.zeros(1, dtype=int)
        for step in range(self.maxlen):
            scores, states = self.predict(inputs, output_ids, states, temperature, "logits")
            allowed = self._allowed(scores, output_ids, end_counts, min_ends, constraint)
            if allowed is not None:
                scores = np.where(allowed, scores, -np.inf)
            scores = output_scores[:, None] + scores
            width = min(topk, scores.size)
            if step == 0:
                inputs = [np.repeat(i, width, axis=0) for i in inputs]
            flat = np.argpartition(scores, -width, axis=None)[-width:]
            rows, tokens = np.divmod(flat, scores.shape[1])
            output_scores = scores.ravel()[flat]
            output_ids = np.concatenate([output_ids[rows], tokens[:, None]], 1)
            keep = np.isfinite(output_scores)
            if not keep.any():
                keep[np.argmax(output_scores)] = True
            is_end = output_ids[:, -1] == self.end_id
            end_counts = (output_ids == self.end_id).sum(1)
            if output_ids.shape[1] >= self.minlen:
                best = output_scores.argmax()
                if is_end[best] and end_counts[best] >= min_ends:
                    return output_ids[best]
                keep &= ~is_end | (end_counts < min_ends)
            if not keep.all():
                output_ids, output_scores = output_ids[keep], output_scores[keep]
                end_counts, rows = end_counts[keep], rows[keep]
                # All input rows are copies of one example: any len(rows) will do.
                inputs = [i[:len(rows)] for i in inputs]
                topk = len(rows)
            states = self.reorder_states(states, rows)
        return output_ids[output_scores.argmax()]

    def random_sample(self, inputs, n, topk=None, topp=None, states=None, temperature=1,
                      min_ends=1, constraint=None, rng=None):
        """Draw `n` sequences by ancestral sampling; returns a list of id arrays.

        Each step samples from the `topk` most likely tokens and/or the
        smallest top set with probability `topp` (see
        `top_k_top_p_filter`). Finished sequences are returned in the order
        they finish; unfinished ones follow after `maxlen` steps. `rng` is a
        `numpy.random.Generator`; by default the global `numpy.random`
        state is used (so `np.random.seed` works as with bert4keras).
        """
        inputs = [np.array([i]) for i in inputs]
        output_ids = self.first_output_ids
        end_counts = np.zeros(1, dtype=int)
        uniform = rng.random if rng is not None else np.random.random
        results = []
        for step in range(self.maxlen):
            probas, states = self.predict(inputs, output_ids, states, temperature, "probas")
            allowed = self._allowed(probas, output_ids, end_counts, min_ends, constraint)
            if allowed is not None:
                masked = np.where(allowed, probas, 0.0)
                # Every allowed token may have underflowed to 0: fall back
                # to a uniform choice among them.
                empty = masked.sum(axis=1) <= 0
                masked[empty] = allowed[empty]
                probas = masked
            probas = probas / probas.sum(axis=1, keepdims=True)
            rows = np.arange(len(output_ids))
            if step == 0:
                rows = np.zeros(n, dtype=int)
                probas, output_ids, end_counts = probas[rows], output_ids[rows], end_counts[rows]
                inputs = [np.repeat(i, n, axis=0) for i in inputs]
            probas = top_k_top_p_filter(probas, topk, topp)
            cdf = np.cumsum(probas, axis=1)
            draws = uniform((len(probas), 1)) * cdf[:, -1:]
            sample_ids = np.minimum((cdf <= draws).sum(axis=1), probas.shape[1] - 1)
            # Never land on a zero-probability token through rounding at a cdf plateau.
            sample_ids = np.where(np.take_along_axis(probas, sample_ids[:, None], 1)[:, 0] > 0,
                                  sample_ids, probas.argmax(axis=1))
            output_ids = np.concatenate([output_ids, sample_ids[:, None]], 1)
            is_end = output_ids[:, -1] == self.end_id
            end_counts = (output_ids == self.end_id).sum(1)
            if output_ids.shape[1] >= self.minlen:
                done = is_end & (end_counts >= min_ends)
                if done.any():
                    results.extend(output_ids[done])
                    keep = ~done
                    output_ids, end_counts, rows = output_ids[keep], end_counts[keep], rows[keep]
                    inputs = [i[keep] for i in inputs]
                    if len(output_ids) == 0:
                        break
            states = self.reorder_states(states, rows)
        results.extend(output_ids)
        return results
