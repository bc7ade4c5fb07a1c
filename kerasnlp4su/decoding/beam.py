"""Batched beam search as tensor operations, so a whole generation runs in one compiled loop.

`AutoRegressiveDecoder.beam_search` (NumPy) decodes one example per call and
returns to Python after every step. These functions do the same search for
a batch of examples with `keras.ops` only, so the decoders in
`kerasnlp4su.decoding.cached` run the model step and the search inside one
`keras.ops.while_loop` (`tf.while_loop` when traced, `jax.lax.while_loop`
under `jax.jit`, a Python loop on PyTorch).

The semantics are bert4keras's, per example: each step keeps the `width`
best continuations of the live beams; the example finishes when its best
continuation ends with `end_id` (and is at least `minlen` tokens long);
other beams that end are dropped and the width narrows to the beams left;
after `maxlen` steps the best live beam is returned. Greedy search is the
width-1 case. A state holds `examples x width` beam slots; slots that are
not live (narrowed away, or an example's first step) score `-inf`.
"""

from typing import Any, NamedTuple

from keras import ops

__all__ = ["BeamState", "start", "advance", "best_unfinished"]


class BeamState(NamedTuple):
    """The search of `examples` examples, `width` beam slots each, over `maxlen` steps.

    * `step`: steps taken (scalar int32).
    * `scores`: `(examples, slots)` summed log-probabilities.
    * `live`: `(examples, slots)` bool, the slots still searched.
    * `width`: `(examples,)` int32, how many continuations each keeps (narrows).
    * `ids`: `(examples, slots, maxlen)` int32 tokens of each slot so far.
    * `done`: `(examples,)` bool; `result` `(examples, maxlen)` and
      `result_length` `(examples,)` hold a finished example's tokens.
    """

    step: Any
    scores: Any
    live: Any
    width: Any
    ids: Any
    done: Any
    result: Any
    result_length: Any


def start(examples, width, maxlen):
    """The state before the first step: one live slot per example."""
    return BeamState(step=ops.convert_to_tensor(0, "int32"),
                     scores=ops.zeros((examples, 1), "float32"),
                     live=ops.ones((examples, 1), "bool"),
                     width=ops.full((examples,), width, "int32"),
                     ids=ops.zeros((examples, 1, maxlen), "int32"),
                     done=ops.zeros((examples,), "bool"),
                     result=ops.zeros((examples, maxlen), "int32"),
                     result_length=ops.zeros((examples,), "int32"))


def advance(state, log_probas, beams, end_id, can_end):
    """One search step; returns `(new state, parents)`.

    `log_probas` is `(examples, slots, vocab)` for the state's slots;
    `beams` the (static) number of slots of the new state; `end_id` the end
    token (None or outside the vocabulary: never ends); `can_end` a scalar
    bool, False while a sequence ending now would be shorter than `minlen`
    (the end token is then forbidden). `parents` `(examples, beams)` gives the old
    slot each new slot continues: the caller reorders the KV cache by it.
    """
    examples, slots, vocab = log_probas.shape  # static: the compiled loop fixes them
    ends = end_id is not None and 0 <= end_id < vocab
    if ends:
        is_end_column = ops.arange(vocab) == end_id
        log_probas = ops.where(ops.logical_and(is_end_column, ops.logical_not(can_end)),
                               float("-inf"), log_probas)
    candidates = ops.where(state.live[:, :, None], state.scores[:, :, None] + log_probas,
                           float("-inf"))
    values, flat = ops.top_k(ops.reshape(candidates, (examples, slots * vocab)), beams)
    parents, tokens = flat // vocab, flat % vocab
    # Only the first `width` continuations count (fewer when the live beams
    # offer fewer); top_k sorts them best first.
    live_count = ops.sum(ops.cast(state.live, "int32"), axis=1)
    taken = ops.minimum(state.width, live_count * vocab)
    chosen = ops.arange(beams)[None, :] < taken[:, None]
    finite = ops.logical_and(chosen, ops.isfinite(values))
    # Nothing finite (every continuation forbidden): keep the best anyway.
    finite = ops.where(ops.any(finite, axis=1, keepdims=True), finite,
                       ops.arange(beams)[None, :] == 0)
    step = state.step
    ids = ops.take_along_axis(state.ids, parents[:, :, None], axis=1)
    ids = ops.where(ops.arange(ops.shape(ids)[2]) == step, tokens[:, :, None], ids)
    if ends:
        is_end = ops.logical_and(tokens == end_id, can_end)
    else:
        is_end = ops.zeros_like(finite)
    finished = ops.logical_and(ops.logical_not(state.done), is_end[:, 0])
    result = ops.where(finished[:, None], ids[:, 0], state.result)
    result_length = ops.where(finished, step + 1, state.result_length)
    done = ops.logical_or(state.done, finished)
    keep = ops.logical_and(finite, ops.logical_not(is_end))
    narrowed = ops.any(ops.logical_and(chosen, ops.logical_not(keep)), axis=1)
    width = ops.where(narrowed, ops.sum(ops.cast(keep, "int32"), axis=1), state.width)
    live = ops.logical_and(keep, ops.logical_not(done)[:, None])
    scores = ops.where(live, values, float("-inf"))
    return BeamState(step + 1, scores, live, width, ids, done, result, result_length), parents


def best_unfinished(state):
    """`(result, result_length)` with each unfinished example's best live beam filled in."""
    best = ops.argmax(ops.where(state.live, state.scores, float("-inf")), axis=1)
    best_ids = ops.take_along_axis(state.ids, best[:, None, None], axis=1)[:, 0]
    result = ops.where(state.done[:, None], state.result, best_ids)
    length = ops.where(state.done, state.result_length, state.step)
    return result, length
