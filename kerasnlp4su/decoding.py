"""Autoregressive decoding: beam search, sampling, KV-cached seq2seq/LM decoders, prefix trees.

`AutoRegressiveDecoder` keeps bert4keras's API (`wraps`, `predict`,
`beam_search`, `random_sample`, `last_token`, `first_output_ids`), so a
bert4keras decoder subclass runs after changing its imports.
`Seq2SeqDecoder` (UniLM) and `LMDecoder` are ready-made decoders for a
`Transformer` builder that feed only the new token each step, keeping the
keys/values of earlier tokens in a cache. `Trie` restricts generation to a
fixed set of token-id sequences. `ViterbiDecoder` (CRF tag paths) lives in
`kerasnlp4su.viterbi` and is re-exported here.

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

from kerasnlp4su.backend import no_grad
from kerasnlp4su.viterbi import ViterbiDecoder

__all__ = [
    "AutoRegressiveDecoder", "LMDecoder", "LastToken", "Seq2SeqDecoder", "Trie",
    "ViterbiDecoder", "softmax", "top_k_top_p_filter",
]


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


class Trie:
    """A prefix tree of allowed token-id sequences, usable as a decoding constraint.

    Called with the ids generated so far it returns the ids that may come
    next, so `beam_search(..., constraint=trie)` can only produce stored
    sequences (Su Jianlin's "seq2seq + prefix tree" retrieval). Give
    `end_id` to have it appended to every sequence, so the decoder also
    learns where each one stops.

    Example:
    >>> trie = Trie([[5, 6], [5, 7, 8]], end_id=3)
    >>> sorted(trie([5]))
    [6, 7]
    >>> trie([5, 6])
    [3]
    >>> [5, 7, 8, 3] in trie
    True
    """

    _END = None  # key marking "a stored sequence stops here"

    def __init__(self, sequences=(), end_id=None):
        self.end_id = end_id
        self.root = {}
        self._size = 0
        for sequence in sequences:
            self.add(sequence)

    def add(self, sequence):
        """Store one sequence of token ids (plus `end_id` when set)."""
        sequence = [int(i) for i in sequence]
        if self.end_id is not None and (not sequence or sequence[-1] != self.end_id):
            sequence.append(int(self.end_id))
        node = self.root
        for token in sequence:
            node = node.setdefault(token, {})
        if self._END not in node:
            node[self._END] = True
            self._size += 1

    def _node(self, prefix):
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return None
        return node

    def next_tokens(self, prefix):
        """Ids allowed after `prefix`; empty when `prefix` left the tree or a sequence ended."""
        node = self._node(prefix)
        if node is None:
            return []
        return [token for token in node if token is not self._END]

    __call__ = next_tokens

    def __contains__(self, sequence):
        node = self._node(sequence)
        return node is not None and self._END in node

    def __len__(self):
        return self._size

    def __iter__(self):
        stack = [(self.root, [])]
        while stack:
            node, prefix = stack.pop()
            for token, child in node.items():
                if token is self._END:
                    yield list(prefix)
                else:
                    stack.append((child, prefix + [token]))


@keras.saving.register_keras_serializable(package="kerasnlp4su")
class LastToken(keras.layers.Layer):
    """Select the last position of a `(batch, length, ...)` tensor.

    Serializable replacement for bert4keras's `Lambda(lambda x: x[:, -1])`.

    Example:
    >>> tuple(LastToken()(np.zeros((2, 5, 3))).shape)
    (2, 3)
    """

    def call(self, inputs):
        return inputs[:, -1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def compute_mask(self, inputs, mask=None):
        return None


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
            outputs = [LastToken()(output) for output in model.outputs]
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


# --------------------------------------------------------- cached decoders
class _CacheState:
    """Decoder states: a transformer KV cache, the output ids it has seen, and
    the beam reordering still to apply to it.

    `reorder` only records the row selection; the next step applies it
    inside its own traced function, so a beam-search step costs one graph
    call instead of one plus a gather per cached tensor.
    """

    def __init__(self, transformer, cache, consumed, rows=None):
        self.transformer = transformer
        self.cache = cache
        self.consumed = consumed
        self.rows = rows  # pending batch-row selection (None: keep as is)

    def reorder(self, indices):
        indices = np.asarray(indices, dtype="int32")
        rows = indices if self.rows is None else self.rows[indices]
        batch = int(keras.ops.shape(self.cache["keep"])[0])
        if len(rows) == batch and np.array_equal(rows, np.arange(batch)):
            rows = None  # greedy and unchanged beams: no gather at all
        return _CacheState(self.transformer, self.cache, self.consumed, rows)

    def resolved_cache(self):
        """The cache with the pending reordering applied (eager)."""
        if self.rows is None:
            return self.cache
        return self.transformer.reorder_cache(self.cache, keras.ops.convert_to_tensor(self.rows))


class _TransformerDecoder(AutoRegressiveDecoder):
    """Shared logic of `Seq2SeqDecoder` and `LMDecoder`."""

    #: segment id given to generated tokens.
    output_segment = 0
    #: how many batch sizes get a step traced for them (then one for any).
    max_step_traces = 4
    #: the KV cache is reserved in blocks of this many positions, so the
    #: compiled step sees few cache shapes (JAX compiles one per shape).
    cache_block = 64
    application = None

    def __init__(self, transformer, end_id, maxlen, start_id=None, minlen=1, use_cache=True,
                 compile_step=True):
        super().__init__(start_id, end_id, maxlen, minlen)
        if not hasattr(transformer, "cached_forward") or transformer.model is None:
            raise TypeError("pass the Transformer builder (build_transformer_model(..., "
                            "return_keras_model=False)), not a keras.Model")
        if transformer.application != self.application:
            raise ValueError(f"{type(self).__name__} needs application={self.application!r}, "
                             f"the transformer was built with {transformer.application!r}")
        if transformer.layer_norm_cond is not None:
            raise ValueError("conditional LayerNorm models need their own predict(); "
                             "subclass AutoRegressiveDecoder")
        self.transformer = transformer
        self.use_cache = use_cache
        backend = keras.backend.backend()
        # PyTorch runs eagerly; TensorFlow traces, JAX jit-compiles the step.
        self.compile_step = compile_step and backend in ("tensorflow", "jax")
        self._tf = self.compile_step and backend == "tensorflow"
        self.uses_segments = transformer.segment_vocab_size > 0
        # Compiled functions, built on first use.
        self._full_fn = self._prefix_fn = None
        self._step_fns = {}  # (reorders?, batch or None) -> traced / jitted step

    # ------------------------------------------------------------ inputs
    def _source(self, inputs, batch):
        """`(token_ids, segment_ids)` of the conditioning prefix, `(batch, n)` each."""
        raise NotImplementedError

    def _with_output(self, inputs, output_ids):
        token_ids, segment_ids = self._source(inputs, len(output_ids))
        output_ids = output_ids.astype("int32")
        token_ids = np.concatenate([token_ids, output_ids], 1)
        segment_ids = np.concatenate(
            [segment_ids, np.full_like(output_ids, self.output_segment)], 1)
        return token_ids, segment_ids

    def _model_inputs(self, token_ids, segment_ids):
        return [token_ids, segment_ids] if self.uses_segments else [token_ids]

    @staticmethod
    def _mlm(outputs):
        # With extra heads (pooler, NSP) the MLM probabilities come last.
        return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs

    # ----------------------------------------------------------- predict
    @AutoRegressiveDecoder.wraps(default_rtype="probas", use_states=True)
    def predict(self, inputs, output_ids, states):
        if not self.use_cache:
            token_ids, segment_ids = self._with_output(inputs, output_ids)
            return self._full_last(self._model_inputs(token_ids, segment_ids)), None
        if states is None:
            token_ids, segment_ids = self._with_output(inputs, output_ids)
            probas, cache = self._prefix(self._model_inputs(token_ids, segment_ids))
            # Room for every token this generation can add: the steps then
            # write into the buffers and keep their shapes.
            needed = token_ids.shape[1] + self.maxlen
            cache = self.transformer.reserve_cache(cache, -(-needed // self.cache_block)
                                                   * self.cache_block)
            return probas, _CacheState(self.transformer, cache, output_ids.shape[1])
        new_ids = output_ids[:, states.consumed:].astype("int32")
        new_segments = np.full_like(new_ids, self.output_segment)
        probas, cache = self._step(self._model_inputs(new_ids, new_segments), states)
        return probas, _CacheState(self.transformer, cache, output_ids.shape[1])

    def _full_last(self, model_inputs):
        """Last-position probabilities from a full forward pass (bert4keras behaviour)."""
        # Lengths change every step: only TensorFlow traces this once for all.
        if not self._tf:
            with no_grad():
                return self._mlm(self.transformer.model(model_inputs, training=False))[:, -1]
        if self._full_fn is None:
            import tensorflow as tf

            model = self.transformer.model
            spec = [tf.TensorSpec((None, None), "int32")] * len(model_inputs)
            self._full_fn = tf.function(
                lambda *x: self._mlm(model(list(x), training=False))[:, -1],
                input_signature=spec, autograph=False, reduce_retracing=True)
        return self._full_fn(*model_inputs)

    def _prefix(self, model_inputs):
        """The prefix pass: `(last probabilities, cache)`."""
        if not self._tf:  # one eager pass; JAX would compile it per prefix length
            outputs, cache = self.transformer.cached_forward(model_inputs)
            return self._mlm(outputs)[:, -1], cache
        if self._prefix_fn is None:
            self._prefix_fn = self._trace(self._prefix_graph, len(model_inputs), None)
        return self._unflatten(self._prefix_fn(*model_inputs))

    def _prefix_graph(self, *model_inputs):
        outputs, cache = self.transformer.cached_forward(list(model_inputs))
        return self._flatten(self._mlm(outputs)[:, -1], cache)

    def _step(self, model_inputs, states):
        """One cached step on the new tokens: `(last probabilities, new cache)`.

        `states.rows` (beam reordering) is applied to the cache first; when
        traced, inside the same graph as the step.
        """
        if not self.compile_step or model_inputs[0].shape[1] != 1:
            outputs, cache = self.transformer.cached_forward(model_inputs, states.resolved_cache())
            return self._mlm(outputs)[:, -1], cache
        cache = states.cache
        rows = states.rows
        extra = [rows] if rows is not None else []
        if not self._tf:
            return self._unflatten(self._jax_step(rows is not None)(
                *model_inputs, *extra, *self._flatten(None, cache)))
        # Greedy steps and unchanged beams get a trace per batch size, so the
        # dense layers see static shapes (TensorFlow then skips the shape
        # arithmetic around each matmul, ~10% of a BERT-base step), up to
        # `max_step_traces` sizes. Steps that reorder beams, whose batch
        # changes as beams finish, share one trace for any batch.
        key = True, None
        if rows is None:
            key = False, int(model_inputs[0].shape[0])
            if key not in self._step_fns and (
                    sum(b is not None for _, b in self._step_fns) >= self.max_step_traces):
                key = False, None
        if key not in self._step_fns:
            graph = self._reorder_step_graph if rows is not None else self._step_graph
            self._step_fns[key] = self._trace(graph, len(model_inputs), cache,
                                              reorder=rows is not None, batch=key[1])
        return self._unflatten(self._step_fns[key](*model_inputs, *extra, *self._flatten(None, cache)))

    @staticmethod
    def _as_cache(flat, length=None):
        """`[length, keep, k0, v0, k1, v1, ...]` (what `_flatten` makes) -> cache dict."""
        keep, kv = flat[1], flat[2:]
        layers = {index: tuple(kv[2 * index:2 * index + 2]) for index in range(len(kv) // 2)}
        return {"length": flat[0] if length is None else length, "keep": keep, "layers": layers}

    def _step_graph(self, *flat):
        n = len(flat) - 2 - 2 * self.transformer.num_hidden_layers
        outputs, new = self.transformer.cached_forward(list(flat[:n]), self._as_cache(flat[n:]))
        return self._flatten(self._mlm(outputs)[:, -1], new)

    def _reorder_step_graph(self, *flat):
        n = len(flat) - 3 - 2 * self.transformer.num_hidden_layers
        rows, cache = flat[n], self._as_cache(flat[n + 1:])
        cache = self.transformer.reorder_cache(cache, rows)
        outputs, new = self.transformer.cached_forward(list(flat[:n]), cache)
        return self._flatten(self._mlm(outputs)[:, -1], new)

    # Traced functions take and return flat tensor lists: binding nested
    # structures costs more per call than the one-token step computes.
    def _flatten(self, probas, cache):
        layers = cache["layers"]
        length = cache["length"]
        if isinstance(length, (int, np.integer)):  # a traced input, not a constant
            length = np.asarray(length, dtype="int32")
        flat = [length, cache["keep"]] + [t for index in sorted(layers) for t in layers[index]]
        return flat if probas is None else [probas] + flat

    def _unflatten(self, flat):
        # Outside compiled code the length is a Python int again: the eager
        # path checks it against the capacity.
        return flat[0], self._as_cache(flat[1:], int(flat[1]))

    def _jax_step(self, reorder):
        """The step under `jax.jit`; the model's variables are arguments, not constants.

        The cache has a reserved capacity, so shapes stay the same from step
        to step: one compile per batch size and cache block.
        """
        key = reorder, None  # jax.jit itself compiles once per batch size and capacity
        if key not in self._step_fns:
            import jax

            weights = self.transformer.model.weights
            graph = self._reorder_step_graph if reorder else self._step_graph

            def stateless(values, *flat):
                with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                    return graph(*flat)

            jitted = jax.jit(stateless)
            self._step_fns[key] = lambda *flat: jitted([w.value for w in weights], *flat)
        return self._step_fns[key]

    def _trace(self, fn, n_inputs, cache, reorder=False, batch=None):
        # Eagerly, a one-token step costs one Python dispatch per layer call
        # and op, which dominates its tiny amount of arithmetic: traced, the
        # prefix and each step run as one graph for any length (the
        # signature leaves the sequence dimensions unknown). `batch` fixes
        # the batch of the step's tokens (None: any); with `reorder` the
        # cache keeps an unknown batch, as the gather picks `batch` rows
        # from it.
        import tensorflow as tf

        length = None if cache is None else 1
        signature = [tf.TensorSpec((batch, length), "int32")] * n_inputs
        if reorder:
            signature.append(tf.TensorSpec((batch,), "int32"))
        if cache is not None:
            cache_batch = None if reorder else batch
            # length (scalar), keep-mask (batch, capacity), then keys/values
            # (batch, heads, capacity, size).
            layers = self._flatten(None, cache)[2:]
            signature += [tf.TensorSpec((), "int32"), tf.TensorSpec((cache_batch, None), "bool")]
            signature += [tf.TensorSpec((cache_batch, t.shape[1], None, t.shape[3]), t.dtype)
                          for t in layers]
        # The concrete function: calling it skips tf.function's per-call
        # signature matching (~1 ms with 2 + 2 * layers tensors).
        return tf.function(fn, input_signature=signature, autograph=False).get_concrete_function()


class Seq2SeqDecoder(_TransformerDecoder):
    """UniLM seq2seq decoder with a KV cache (`application='unilm'`).

    `inputs` is `[token_ids, segment_ids]` of the source (`[CLS] src
    [SEP]`, segment 0, as `Tokenizer.encode` returns it); generated tokens
    get segment 1. With `use_cache=True` (default) each step runs only the
    newest token through the model; `use_cache=False` recomputes the whole
    sequence every step like bert4keras. The one-token step is compiled:
    traced once with `tf.function` on TensorFlow, `jax.jit` on JAX (once per
    batch size and `cache_block` of cache capacity); PyTorch and
    `compile_step=False` run it eagerly.

    Example:
    >>> t = build_transformer_model(config, ckpt, application="unilm",
    ...                             return_keras_model=False)  # doctest: +SKIP
    >>> decoder = Seq2SeqDecoder(t, end_id=tokenizer._token_end_id, maxlen=32)  # doctest: +SKIP
    >>> token_ids, segment_ids = tokenizer.encode(text)  # doctest: +SKIP
    >>> tokenizer.decode(decoder.beam_search([token_ids, segment_ids], topk=3))  # doctest: +SKIP
    """

    output_segment = 1
    application = "unilm"

    def _source(self, inputs, batch):
        token_ids = np.asarray(inputs[0], dtype="int32")
        segment_ids = (np.asarray(inputs[1], dtype="int32") if len(inputs) > 1
                       else np.zeros_like(token_ids))
        return token_ids[:batch], segment_ids[:batch]


class LMDecoder(_TransformerDecoder):
    """Left-to-right language-model decoder with a KV cache (`application='lm'`).

    `inputs` is `[prefix_token_ids]` (a prompt, usually `[CLS] text`
    without the final [SEP]) or `[]` for unconditional generation from
    `start_id`. All tokens get segment 0.

    Example:
    >>> t = build_transformer_model(config, ckpt, application="lm",
    ...                             return_keras_model=False)  # doctest: +SKIP
    >>> decoder = LMDecoder(t, end_id=tokenizer._token_end_id, maxlen=64)  # doctest: +SKIP
    >>> prompt = tokenizer.encode(text)[0][:-1]  # doctest: +SKIP
    >>> samples = decoder.random_sample([prompt], n=4, topp=0.95)  # doctest: +SKIP
    """

    output_segment = 0
    application = "lm"

    def _source(self, inputs, batch):
        if len(inputs) == 0:
            empty = np.zeros((batch, 0), dtype="int32")
            return empty, empty
        token_ids = np.asarray(inputs[0], dtype="int32")[:batch]
        return token_ids, np.zeros_like(token_ids)
