"""Ready-made KV-cached decoders for a `Transformer` builder: `Seq2SeqDecoder`, `LMDecoder`.

Each step feeds only the new token through the model
(`Transformer.cached_forward`), keeping the keys/values of earlier tokens in
a `KVCache` (`kerasnlp4su.models.cache`). `generate` (and `beam_search`
with its plain options) runs the prefix pass once and then the whole beam or
greedy search (`kerasnlp4su.decoding.beam`) in one compiled loop: traced
once with `tf.function` on TensorFlow, `jax.jit`-compiled on JAX, eager on
PyTorch. Sampling, constraints and `min_ends` use `AutoRegressiveDecoder`'s
step-by-step search around a compiled one-token step.
"""

import keras
import numpy as np

from kerasnlp4su.backend import no_grad
from kerasnlp4su.decoding import beam
from kerasnlp4su.decoding.search import AutoRegressiveDecoder
from kerasnlp4su.models.cache import check_cache_support, grow_cache, reorder_cache
from kerasnlp4su.models.transformer import Transformer

__all__ = ["EncoderDecoderDecoder", "LMDecoder", "Seq2SeqDecoder"]


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
        batch = int(keras.ops.shape(self.cache.keep)[0])
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
        if self.application is not None and transformer.application != self.application:
            raise ValueError(f"{type(self).__name__} needs application={self.application!r}, "
                             f"the transformer was built with {transformer.application!r}")
        if transformer.layer_norm_cond is not None:
            raise ValueError("conditional LayerNorm models need their own predict(); "
                             "subclass AutoRegressiveDecoder")
        if use_cache:
            check_cache_support(transformer)  # fail here, not at the first step
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
        self._search_fns = {}  # (batch, beams, ...) -> compiled whole search
        # A cache of the structure the traced functions take and return
        # (block count, cross entries): flat tensor lists are rebuilt on it.
        self._layout = None

    # ----------------------------------------------------------- batches
    def generate(self, inputs_list, topk=1, temperature=1):
        """Decode a batch of examples at once: `[beam_search(x, topk) for x in inputs_list]`.

        Each element of `inputs_list` is what `beam_search` takes for one
        example (e.g. `[token_ids, segment_ids]`); lengths may differ.
        `topk=1` is greedy search. The prompts are right-padded into one
        batch (each row's generated tokens get the positions they would have
        alone; families without learned absolute positions, e.g. RoFormer
        or NEZHA, are batched per prompt length instead), the prefix runs
        once, and the whole search (model step, beam selection, cache
        reordering by beam parents, each example stopping at its own end
        token) runs in one compiled loop: `tf.while_loop` in a traced
        function on TensorFlow, `jax.lax.while_loop` under `jax.jit` on JAX,
        a Python loop on PyTorch. The loop stops when every example has
        finished; until then a finished example's rows still run (fixed
        shapes), masked out of the search.

        Example:
        >>> decoder = Seq2SeqDecoder(t, end_id=tokenizer._token_end_id, maxlen=32)  # doctest: +SKIP
        >>> batch = [tokenizer.encode(text) for text in texts]  # doctest: +SKIP
        >>> [tokenizer.decode(ids) for ids in decoder.generate(batch, topk=3)]  # doctest: +SKIP
        """
        inputs_list = list(inputs_list)
        topk = int(topk)
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if not self.use_cache:  # recomputation: the per-example NumPy search
            return [AutoRegressiveDecoder.beam_search(self, x, topk, temperature=temperature)
                    for x in inputs_list]
        rows = [self._prefix_row(x) for x in inputs_list]
        results = [None] * len(rows)
        for group in self._batch_groups(rows):
            outputs = self._generate_batch([rows[i] for i in group], topk, temperature)
            for i, ids in zip(group, outputs):
                results[i] = ids
        return results

    def beam_search(self, inputs, topk, states=None, temperature=1, min_ends=1, constraint=None):
        """`AutoRegressiveDecoder.beam_search`, run as one compiled loop when it can be.

        With the cache, a compiled step and the plain options (no
        `states`, `min_ends=1`, no `constraint`, `predict` not overridden)
        this is `generate([inputs], topk, temperature)[0]`, which returns
        to Python once per generation instead of once per step; otherwise
        the step-by-step search.
        """
        in_graph = (self.use_cache and self.compile_step and states is None and min_ends == 1
                    and constraint is None and type(self).predict in _BUILT_IN_PREDICTS)
        if in_graph:
            return self.generate([inputs], topk, temperature)[0]
        return super().beam_search(inputs, topk, states, temperature, min_ends, constraint)

    def _prefix_row(self, inputs):
        """One example's prefix (source, then `first_output_ids`) as 1-D model-input arrays."""
        token_ids, segment_ids = self._source([np.asarray(i)[None] for i in inputs], 1)
        first = self.first_output_ids[0].astype("int32")
        token_ids = np.concatenate([token_ids[0], first])
        segment_ids = np.concatenate([segment_ids[0], np.full_like(first, self.output_segment)])
        if len(token_ids) == 0:
            raise ValueError("generate() needs a non-empty prompt or a start_id")
        return self._model_inputs(token_ids, segment_ids)

    def _rows_may_shift(self):
        """Whether rows of different prompt lengths can share a batch (`KVCache.shift`).

        Only learned absolute positions read the per-row offset; relative
        and rotary positions would see the padding gap.
        """
        t = type(self.transformer)
        return (self.transformer.position_encoding == "learned"
                and not self.transformer.custom_position_ids
                and t.apply_embeddings is Transformer.apply_embeddings
                and t.attention_position_arguments is Transformer.attention_position_arguments)

    def _batch_groups(self, rows):
        """Index lists of the examples decoded together."""
        lengths = [len(r[0]) for r in rows]
        if self._rows_may_shift() or len(set(lengths)) == 1:
            return [list(range(len(rows)))]
        groups = {}
        for i, n in enumerate(lengths):
            groups.setdefault(n, []).append(i)
        return list(groups.values())

    def _batch_prefix_inputs(self, rows):
        """`(model inputs, last index, shift)`: right-padded prefixes, each row's last
        position, and how far each row's next token sits after its position (None: 0)."""
        lengths = np.array([len(r[0]) for r in rows], dtype="int32")
        width = int(lengths.max())
        model_inputs = []
        for k in range(len(rows[0])):
            padded = np.zeros((len(rows), width), dtype="int32")
            for i, r in enumerate(rows):
                padded[i, :lengths[i]] = r[k]
            model_inputs.append(padded)
        shift = width - lengths
        return model_inputs, lengths - 1, (shift if shift.any() else None)

    def _generate_batch(self, rows, topk, temperature):
        model_inputs, last, shift = self._batch_prefix_inputs(rows)
        extra = [] if shift is None else [shift]
        if self._tf:  # prefix, cache reservation and search: one graph call
            fn = self._tf_generate_fn(len(rows), len(model_inputs), shift is not None, topk,
                                      temperature)
            result, length = fn(*model_inputs, last, *extra)
        else:
            with no_grad():
                probas, cache = self._batch_prefix_pass(model_inputs, last, *extra)
            # Capacity in blocks: jax.jit compiles the search once per block.
            needed = int(cache.length) + self.maxlen
            cache = self.transformer.reserve_cache(cache, -(-needed // self.cache_block)
                                                   * self.cache_block)
            result, length = self._compiled_search(len(rows), topk, temperature, cache)(
                probas, cache)
        result, length = keras.ops.convert_to_numpy(result), keras.ops.convert_to_numpy(length)
        first = self.first_output_ids[0]
        return [np.concatenate([first, r[:n]]) for r, n in zip(result, length)]

    def _batch_prefix_pass(self, model_inputs, last, shift=None):
        """The prefix pass of a padded batch: `(probabilities at each row's last position,
        cache)`."""
        outputs, cache = self.transformer.cached_forward(model_inputs)
        last = keras.ops.convert_to_tensor(last, "int32")
        probas = keras.ops.take_along_axis(self._mlm(outputs), last[:, None, None], axis=1)[:, 0]
        if shift is not None:
            cache = cache._replace(shift=keras.ops.convert_to_tensor(shift, "int32"))
        return probas, cache

    def _model_step(self, token_ids, cache):
        """Next-token probabilities `(rows, vocab)` and the cache after `token_ids` `(rows, 1)`."""
        segment_ids = keras.ops.full_like(token_ids, self.output_segment)
        outputs, cache = self.transformer.cached_forward(
            self._model_inputs(token_ids, segment_ids), cache)
        return self._mlm(outputs)[:, -1], cache

    def _search(self, probas, cache, beams, temperature):
        """The whole search from the prefix's `(examples, vocab)` probabilities and a cache with
        room for `maxlen` more tokens; returns `(result ids, lengths)`. Traceable: the model
        step, the beam selection and the cache reordering run in one `keras.ops.while_loop`."""
        examples, vocab = probas.shape  # static inside the compiled functions
        if beams > vocab:
            raise ValueError(f"topk={beams} exceeds the model's vocabulary of {vocab} tokens")
        layout = cache.with_tensors([0] * len(cache.tensors()))
        first_length = self.first_output_ids.shape[1]
        maxlen, minlen, end_id = self.maxlen, self.minlen, self.end_id

        def advance(state, probas, slots):
            probas = keras.ops.cast(probas, "float32")
            if temperature != 1:  # p ** (1/T), renormalised, as AutoRegressiveDecoder.wraps does
                probas = keras.ops.power(probas, 1.0 / temperature)
                probas = probas / keras.ops.sum(probas, axis=-1, keepdims=True)
            log_probas = keras.ops.log(probas + 1e-12)
            log_probas = keras.ops.reshape(log_probas, (examples, slots, vocab))
            can_end = first_length + state.step + 1 >= minlen
            return beam.advance(state, log_probas, beams, end_id, can_end)

        def rows_of(parents, slots):  # beam parents -> cache rows
            return keras.ops.reshape(keras.ops.arange(examples)[:, None] * slots + parents, (-1,))

        state, parents = advance(beam.start(examples, beams, maxlen), probas, 1)
        if beams > 1:  # one row per example becomes one per beam
            cache = reorder_cache(cache, rows_of(parents, 1))
        cache = cache._replace(length=keras.ops.convert_to_tensor(cache.length, "int32"))
        n_state = len(state)

        def cond(*loop):
            state = beam.BeamState(*loop[:n_state])
            return keras.ops.logical_and(state.step < maxlen,
                                         keras.ops.logical_not(keras.ops.all(state.done)))

        def body(*loop):
            state = beam.BeamState(*loop[:n_state])
            cache = layout.with_tensors(loop[n_state:])
            tokens = keras.ops.take_along_axis(
                state.ids, keras.ops.full((examples, beams, 1), state.step - 1, "int32"), axis=2)
            probas, cache = self._model_step(keras.ops.reshape(tokens, (-1, 1)), cache)
            state, parents = advance(state, probas, beams)
            if beams > 1:
                cache = reorder_cache(cache, rows_of(parents, beams), self_only=True)
            return (*state, *cache.tensors())

        loop = keras.ops.while_loop(cond, body, (*state, *cache.tensors()),
                                    maximum_iterations=maxlen)
        return beam.best_unfinished(beam.BeamState(*loop[:n_state]))

    def _search_key(self, examples, beams, temperature, *structure):
        # Everything the compiled search bakes in.
        return (examples, beams, float(temperature), self.maxlen, self.minlen, self.end_id,
                self.first_output_ids.shape[1], *structure)

    def _tf_generate_fn(self, examples, n_inputs, has_shift, beams, temperature):
        """Prefix pass, reservation and search traced as one TensorFlow function.

        Sequence dimensions stay unknown (one trace for any prompt length);
        the batch is static. The cache grows by exactly `maxlen` positions.
        """
        key = self._search_key(examples, beams, temperature, "tf", n_inputs, has_shift)
        if key not in self._search_fns:
            import tensorflow as tf

            def generate(*flat):
                shift = flat[n_inputs + 1] if has_shift else None
                probas, cache = self._batch_prefix_pass(list(flat[:n_inputs]), flat[n_inputs],
                                                        shift)
                cache = grow_cache(cache, self.maxlen)
                return self._search(probas, cache, beams, temperature)

            signature = [tf.TensorSpec((examples, None), "int32")] * n_inputs
            signature += [tf.TensorSpec((examples,), "int32")] * (1 + has_shift)
            self._search_fns[key] = tf.function(generate, input_signature=signature,
                                                autograph=False).get_concrete_function()
        return self._search_fns[key]

    def _compiled_search(self, examples, beams, temperature, cache):
        """`_search` as a function of `(probas, cache)`: jitted on JAX, eager on PyTorch."""
        layout = cache.with_tensors([0] * len(cache.tensors()))
        key = self._search_key(examples, beams, temperature, len(layout.cross_kv),
                               layout.cross_keep is not None, layout.shift is not None)
        if key in self._search_fns:
            return self._search_fns[key]

        def search(probas, *flat):
            return self._search(probas, layout.with_tensors(flat), beams, temperature)

        if not self.compile_step:
            def run(probas, cache):
                with no_grad():
                    return search(probas, *self._flat_cache(cache))
        else:
            import jax

            weights = self.transformer.model.weights

            def stateless(values, probas, *flat):
                with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                    return search(probas, *flat)

            jitted = jax.jit(stateless)

            def run(probas, cache):
                return jitted([w.value for w in weights], probas, *self._flat_cache(cache))
        self._search_fns[key] = run
        return run

    @staticmethod
    def _flat_cache(cache):
        flat = cache.tensors()
        flat[0] = keras.ops.convert_to_tensor(flat[0], "int32")
        return flat

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

    def _step_graph(self, *flat):
        n = len(flat) - len(self._layout.tensors())
        outputs, new = self.transformer.cached_forward(list(flat[:n]),
                                                       self._layout.with_tensors(flat[n:]))
        return self._flatten(self._mlm(outputs)[:, -1], new)

    def _reorder_step_graph(self, *flat):
        n = len(flat) - 1 - len(self._layout.tensors())
        rows, cache = flat[n], self._layout.with_tensors(flat[n + 1:])
        cache = self.transformer.reorder_cache(cache, rows)
        outputs, new = self.transformer.cached_forward(list(flat[:n]), cache)
        return self._flatten(self._mlm(outputs)[:, -1], new)

    # Traced functions take and return flat tensor lists: binding nested
    # structures costs more per call than the one-token step computes.
    def _flatten(self, probas, cache):
        if self._layout is None:  # the structure only: no tensor outlives its trace
            self._layout = cache.with_tensors([0] * len(cache.tensors()))
        flat = cache.tensors()
        if isinstance(flat[0], (int, np.integer)):  # a traced input, not a constant
            flat[0] = np.asarray(flat[0], dtype="int32")
        return flat if probas is None else [probas] + flat

    def _unflatten(self, flat):
        # Outside compiled code the length is a Python int again: the eager
        # path checks it against the capacity.
        cache = self._layout.with_tensors(flat[1:])
        return flat[0], cache._replace(length=int(flat[1]))

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
            # length (scalar), then masks (batch, positions) and keys/values
            # (batch, heads, positions, size): positions vary, heads and
            # sizes stay static.
            signature.append(tf.TensorSpec((), "int32"))
            for t in self._flatten(None, cache)[1:]:
                shape = [cache_batch] + list(t.shape[1:])
                shape[2 if len(shape) == 4 else 1] = None
                signature.append(tf.TensorSpec(shape, t.dtype))
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


class EncoderDecoderDecoder(_TransformerDecoder):
    """Seq2seq decoding of an encoder-decoder builder (T5) with a KV cache.

    `inputs` is `[source_token_ids]`. The encoder runs once, in the first
    (prefix) pass, which also projects its output into every decoder block's
    cross-attention keys/values (the `KVCache`'s cross entries); each later
    step runs only the newest decoder token through the decoder stack.
    T5 starts decoding from token 0 (`start_id=0`, its pad id).
    `use_cache=False` reruns encoder and decoder on everything each step,
    as bert4keras's T5 examples do.

    Example:
    >>> t5 = build_transformer_model(config, ckpt, model="mt5.1.1",
    ...                              return_keras_model=False)  # doctest: +SKIP
    >>> decoder = EncoderDecoderDecoder(t5, end_id=1, maxlen=32)  # doctest: +SKIP
    >>> decoder.beam_search([source_ids], topk=3)  # doctest: +SKIP
    """

    def __init__(self, transformer, end_id, maxlen, start_id=0, minlen=1, use_cache=True,
                 compile_step=True):
        if getattr(transformer, "encoder", None) is None:
            raise TypeError("EncoderDecoderDecoder needs an encoder-decoder builder with "
                            ".encoder and .decoder (build_transformer_model(..., model='t5', "
                            "return_keras_model=False))")
        super().__init__(transformer, end_id, maxlen, start_id, minlen, use_cache, compile_step)

    def _source(self, inputs, batch):
        return np.asarray(inputs[0], dtype="int32")[:batch]

    def _prefix_row(self, inputs):
        return [np.asarray(inputs[0], dtype="int32")]

    def _batch_groups(self, rows):
        # Padded sources are masked by the encoder and the cross-attention;
        # every row's decoder starts at the same position.
        return [list(range(len(rows)))]

    def _batch_prefix_inputs(self, rows):
        lengths = [len(r[0]) for r in rows]
        sources = np.zeros((len(rows), max(lengths)), dtype="int32")
        for i, r in enumerate(rows):
            sources[i, :lengths[i]] = r[0]
        first = np.repeat(self.first_output_ids.astype("int32"), len(rows), axis=0)
        return [sources, first], np.full(len(rows), first.shape[1] - 1, "int32"), None

    def _model_step(self, token_ids, cache):
        outputs, cache = self.transformer.cached_forward([token_ids], cache)
        return outputs[:, -1], cache

    @AutoRegressiveDecoder.wraps(default_rtype="probas", use_states=True)
    def predict(self, inputs, output_ids, states):
        output_ids = output_ids.astype("int32")
        if not self.use_cache:
            return self._full_last([self._source(inputs, len(output_ids)), output_ids]), None
        if states is None:
            probas, cache = self._prefix([self._source(inputs, len(output_ids)), output_ids])
            needed = output_ids.shape[1] + self.maxlen
            cache = self.transformer.reserve_cache(cache, -(-needed // self.cache_block)
                                                   * self.cache_block)
            return probas, _CacheState(self.transformer, cache, output_ids.shape[1])
        probas, cache = self._step([output_ids[:, states.consumed:]], states)
        return probas, _CacheState(self.transformer, cache, output_ids.shape[1])


#: the `predict` methods `beam_search` may replace by the compiled batch search.
_BUILT_IN_PREDICTS = (_TransformerDecoder.predict, EncoderDecoderDecoder.predict)
