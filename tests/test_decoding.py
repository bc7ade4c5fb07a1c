"""Decoding: beam search / sampling semantics, KV-cache equivalence, prefix-tree constraints."""

import itertools

import keras
import numpy as np
import pytest

from backend_utils import forward
import tiny_checkpoints
from kerasnlp4su.decoding import (AutoRegressiveDecoder, LastToken, LMDecoder, Seq2SeqDecoder,
                                  Trie, softmax, top_k_top_p_filter)
from kerasnlp4su.models import build_transformer_model

END = 3
SOURCE = np.array([2, 11, 12, 13, 14, 15, END])


@pytest.fixture(scope="module")
def transformers(tmp_path_factory):
    built = {}

    def get(family, application):
        if (family, application) not in built:
            directory = str(tmp_path_factory.mktemp(family))
            config_path, ckpt = tiny_checkpoints.write(directory, family)
            built[family, application] = build_transformer_model(
                config_path, ckpt, model=family, application=application,
                return_keras_model=False)
        return built[family, application]

    return get


def unilm(transformers):
    return transformers("bert", "unilm")


@pytest.fixture(scope="module")
def decoders(transformers):
    """Shared decoders (each traces once), keyed by (family, application, use_cache, compiled)."""
    built = {}

    def get(family, application, use_cache=True, compile_step=True):
        key = family, application, use_cache, compile_step
        if key not in built:
            cls = Seq2SeqDecoder if application == "unilm" else LMDecoder
            built[key] = cls(transformers(family, application), end_id=END, maxlen=8,
                             use_cache=use_cache, compile_step=compile_step)
        return built[key]

    return get


# ----------------------------------------------------------- toy decoders
class TableDecoder(AutoRegressiveDecoder):
    """Next-token logits from a fixed (step, last token) table, so exact references are cheap."""

    def __init__(self, logits, **kwargs):
        super().__init__(**kwargs)
        self.logits = logits
        self.calls = 0

    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        self.calls += 1
        step = output_ids.shape[1]
        last = output_ids[:, -1] if step else np.zeros(len(output_ids), dtype=int)
        return self.logits[step % len(self.logits), last]


def table(vocab=5, steps=6, seed=0, scale=2.0):
    return np.random.default_rng(seed).standard_normal((steps, vocab, vocab)) * scale


def log_probas(logits, output_ids):
    """Total log-probability of `output_ids` (no start token) under a TableDecoder table."""
    total, last = 0.0, 0
    for step, token in enumerate(output_ids):
        total += np.log(softmax(logits[step % len(logits), last])[token] + 1e-12)
        last = token
    return total


def reference_beam_search(logits, topk, maxlen, end_id, min_ends=1, minlen=1):
    """Plain-Python beam search with bert4keras's semantics (finished non-best beams drop out)."""
    beams = [(0.0, [])]
    for _ in range(maxlen):
        candidates = []
        for score, ids in beams:
            last = ids[-1] if ids else 0
            lp = np.log(softmax(logits[len(ids) % len(logits), last]) + 1e-12)
            finishing = sum(i == end_id for i in ids) + 1 >= min_ends
            if len(ids) + 1 < minlen and finishing:
                lp[end_id] = -np.inf
            candidates += [(score + lp[t], ids + [t]) for t in range(len(lp))]
        beams = sorted(candidates, key=lambda c: -c[0])[:topk]
        beams = [b for b in beams if np.isfinite(b[0])]
        if len(beams[0][1]) >= minlen:
            done = [b[1][-1] == end_id and b[1].count(end_id) >= min_ends for b in beams]
            if done[0]:
                return beams[0][1]
            beams = [b for b, d in zip(beams, done) if not d]
    return beams[0][1]


# ------------------------------------------------------------ filtering
def test_top_k_top_p_filter_keeps_exactly_the_right_support():
    p = np.array([[0.05, 0.4, 0.1, 0.25, 0.2]])

    def support(**kwargs):
        out = top_k_top_p_filter(p, **kwargs)
        np.testing.assert_allclose(out.sum(), 1.0)
        kept = np.flatnonzero(out[0])
        # Kept tokens keep their relative probabilities.
        np.testing.assert_allclose(out[0, kept], p[0, kept] / p[0, kept].sum())
        return set(kept.tolist())

    assert support() == {0, 1, 2, 3, 4}
    assert support(topk=1) == {1}
    assert support(topk=2) == {1, 3}
    assert support(topk=3) == {1, 3, 4}
    assert support(topk=99) == {0, 1, 2, 3, 4}
    assert support(topp=0.3) == {1}
    assert support(topp=0.6) == {1, 3}           # 0.4 + 0.25 reaches 0.6: the crossing token stays
    assert support(topp=0.66) == {1, 3, 4}
    assert support(topp=1.0) == {0, 1, 2, 3, 4}
    # topk first, renormalise, then topp on the renormalised mass: (0.47, 0.29, 0.24).
    assert support(topk=3, topp=0.5) == {1, 3}
    assert support(topk=3, topp=0.8) == {1, 3, 4}
    with pytest.raises(ValueError, match="topk"):
        top_k_top_p_filter(p, topk=0)


def test_wraps_temperature_and_rtype():
    p = np.array([[0.1, 0.2, 0.7]])
    logits = np.log(p) + 3.0

    class Probas(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            return p

    class Logits(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="logits")
        def predict(self, inputs, output_ids, states):
            return logits

    ids = np.zeros((1, 0), dtype=int)
    for cls in (Probas, Logits):
        d = cls(start_id=None, end_id=0, maxlen=1)
        # rtype defaults to the decorator's default_rtype.
        default, states = d.predict([], ids, None)
        assert states is None
        np.testing.assert_allclose(default, p if cls is Probas else np.log(p + 1e-12), rtol=1e-6)
        np.testing.assert_allclose(d.predict([], ids, None, rtype="probas")[0], p, rtol=1e-6)
        np.testing.assert_allclose(d.predict([], ids, None, rtype="logits")[0], np.log(p + 1e-12),
                                   rtol=1e-6)
        for temperature in (0.5, 2.0):
            sharpened = p ** (1 / temperature) / (p ** (1 / temperature)).sum()
            np.testing.assert_allclose(d.predict([], ids, None, temperature, "probas")[0],
                                       sharpened, rtol=1e-6)
    # Lower temperature concentrates the distribution on the mode.
    d = Probas(start_id=None, end_id=0, maxlen=1)
    cold, hot = (d.predict([], ids, None, t, "probas")[0][0, 2] for t in (0.5, 2.0))
    assert cold > 0.7 > hot
    with pytest.raises(ValueError, match="rtype"):
        d.predict([], ids, None, rtype="scores")
    with pytest.raises(ValueError, match="default_rtype"):
        AutoRegressiveDecoder.wraps(default_rtype="scores")


def test_temperature_changes_sampling_diversity():
    logits = table(vocab=8, seed=3)
    d = TableDecoder(logits, start_id=None, end_id=-1, maxlen=4)
    greedy = d.beam_search([], topk=1)

    def distinct(temperature):
        samples = d.random_sample([], 30, temperature=temperature, rng=np.random.default_rng(0))
        return {tuple(s) for s in samples}

    assert distinct(0.01) == {tuple(greedy)}
    assert len(distinct(5.0)) > 10


# ---------------------------------------------------------- beam search
@pytest.mark.parametrize("topk,end_id,min_ends,minlen", [
    (1, 2, 1, 1), (2, 2, 1, 1), (3, 2, 1, 1), (3, 2, 2, 1), (3, 2, 1, 4), (4, -1, 1, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_matches_reference(topk, end_id, min_ends, minlen, seed):
    logits = table(seed=seed)
    d = TableDecoder(logits, start_id=None, end_id=end_id, maxlen=5, minlen=minlen)
    got = d.beam_search([], topk=topk, min_ends=min_ends).tolist()
    assert got == reference_beam_search(logits, topk, 5, end_id, min_ends, minlen)


def test_wide_beam_is_exact_search():
    # With topk >= vocab ** (maxlen - 1) and no end token, every sequence
    # stays in the beam, so the result is the exhaustive argmax.
    logits = table(vocab=4, seed=5)
    d = TableDecoder(logits, start_id=None, end_id=-1, maxlen=3)
    best = max(itertools.product(range(4), repeat=3), key=lambda s: log_probas(logits, s))
    assert tuple(d.beam_search([], topk=16)) == best
    # A narrow beam never beats the exhaustive optimum.
    narrow = d.beam_search([], topk=2)
    assert log_probas(logits, narrow) <= log_probas(logits, best) + 1e-12


def test_wide_beam_on_the_model_is_exact_search(transformers):
    t = unilm(transformers)
    d = Seq2SeqDecoder(t, end_id=-1, maxlen=2)
    segments = np.zeros_like(SOURCE)
    vocab = t.vocab_size
    first = forward(t.model, [SOURCE[None], segments[None]])[0, -1]
    ids = np.concatenate([np.repeat(SOURCE[None], vocab, 0), np.arange(vocab)[:, None]], 1)
    segs = np.concatenate([np.zeros((vocab, len(SOURCE)), int), np.ones((vocab, 1), int)], 1)
    second = forward(t.model, [ids, segs])[:, -1]
    joint = np.log(first + 1e-12)[:, None] + np.log(second + 1e-12)
    best = np.unravel_index(joint.argmax(), joint.shape)
    assert tuple(d.beam_search([SOURCE, segments], topk=vocab)) == tuple(best)


def test_min_ends_counts_end_tokens():
    logits = table(vocab=4, seed=7)
    logits[:, :, 2] += 3.0  # end token 2 is likely everywhere
    d = TableDecoder(logits, start_id=None, end_id=2, maxlen=6)
    for min_ends in (1, 2, 3):
        out = d.beam_search([], topk=2, min_ends=min_ends)
        assert out[-1] == 2 and (out == 2).sum() == min_ends
        for sample in d.random_sample([], 5, min_ends=min_ends, rng=np.random.default_rng(1)):
            assert len(sample) == 6 or (sample[-1] == 2 and (sample == 2).sum() == min_ends)


def test_minlen_suppresses_the_end_token():
    logits = table(vocab=4, seed=8)
    logits[:, :, 2] += 20.0  # the model always wants to stop
    for start_id in (None, 0):
        d = TableDecoder(logits, start_id=start_id, end_id=2, maxlen=8, minlen=4)
        # minlen counts output_ids, the start token included.
        out = d.beam_search([], topk=3)
        assert len(out) == 4 and out[-1] == 2 and (out == 2).sum() == 1
        for sample in d.random_sample([], 4, rng=np.random.default_rng(0)):
            assert len(sample) == 4 and sample[-1] == 2 and (sample == 2).sum() == 1
    # With min_ends=2 the first end token does not finish, so it is allowed early.
    d = TableDecoder(logits, start_id=None, end_id=2, maxlen=8, minlen=4)
    out = d.beam_search([], topk=1, min_ends=2)
    assert out[0] == 2 and out[-1] == 2 and len(out) == 4 and (out == 2).sum() == 2


def test_random_sample_with_topk_1_is_greedy():
    logits = table(vocab=6, seed=4)
    d = TableDecoder(logits, start_id=0, end_id=2, maxlen=6)
    greedy = d.beam_search([], topk=1)
    for sample in d.random_sample([], 3, topk=1):
        np.testing.assert_array_equal(sample, greedy)
    # topp small enough that only the mode survives is greedy too.
    for sample in d.random_sample([], 3, topp=1e-6):
        np.testing.assert_array_equal(sample, greedy)


def test_random_sample_follows_the_distribution():
    logits = np.log(np.array([[[0.1, 0.6, 0.3]]]))
    d = TableDecoder(logits, start_id=None, end_id=-1, maxlen=1)
    samples = np.concatenate(d.random_sample([], 4000, rng=np.random.default_rng(0)))
    np.testing.assert_allclose(np.bincount(samples, minlength=3) / 4000, [0.1, 0.6, 0.3], atol=0.03)
    samples = np.concatenate(d.random_sample([], 2000, topk=2, rng=np.random.default_rng(0)))
    np.testing.assert_allclose(np.bincount(samples, minlength=3) / 2000, [0, 2 / 3, 1 / 3],
                               atol=0.03)


# ------------------------------------------------------------- KV cache
@pytest.mark.parametrize("family,application", [("bert", "unilm"), ("roformer", "lm"),
                                                ("albert", "unilm")])
def test_cache_gives_the_same_ids_as_recomputation(decoders, family, application):
    inputs = [SOURCE, np.zeros_like(SOURCE)] if application == "unilm" else [SOURCE[:-1]]
    variants = {"recompute": decoders(family, application, use_cache=False),
                "cache": decoders(family, application)}
    if family == "bert":
        variants["cache eager"] = decoders(family, application, compile_step=False)
    for topk in (1, 3):
        results = {name: d.beam_search(inputs, topk=topk).tolist() for name, d in variants.items()}
        assert len(set(map(tuple, results.values()))) == 1, results
    samples = {name: [s.tolist() for s in d.random_sample(inputs, 4, topk=5,
                                                          rng=np.random.default_rng(0))]
               for name, d in variants.items()}
    assert len({repr(s) for s in samples.values()}) == 1, samples


@pytest.mark.parametrize("compile_step", [True, False], ids=["traced", "eager"])
def test_reordered_cache_steps_match_recomputation(decoders, compile_step):
    # Beam selections are recorded on the states and applied inside the next
    # step; two selections in a row compose. The step's probabilities must be
    # those of a full recomputation of the correspondingly reordered rows.
    cached = decoders("bert", "unilm", compile_step=compile_step)
    full = decoders("bert", "unilm", use_cache=False)
    inputs = [np.repeat(SOURCE[None], 3, 0), np.zeros((3, len(SOURCE)), dtype=int)]
    output_ids = np.array([[5], [6], [7]])
    _, states = cached.predict(inputs, output_ids, None, 1, "probas")
    states = cached.reorder_states(cached.reorder_states(states, [2, 0, 1]), [1, 1])
    assert states.rows.tolist() == [0, 0]
    output_ids = np.array([[5, 8], [5, 9]])
    got, states = cached.predict([i[:2] for i in inputs], output_ids, states, 1, "probas")
    want, _ = full.predict([i[:2] for i in inputs], output_ids, None, 1, "probas")
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Identity selections are dropped instead of gathering.
    assert cached.reorder_states(states, [0, 1]).rows is None
    got, _ = cached.predict([i[:1] for i in inputs], np.array([[5, 9, 4]]),
                            cached.reorder_states(states, [1]), 1, "probas")
    want, _ = full.predict([i[:1] for i in inputs], np.array([[5, 9, 4]]), None, 1, "probas")
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_step_traces_per_batch_size_are_bounded(transformers, decoders):
    # Past `max_step_traces` batch sizes one trace with an unknown batch serves
    # every other size, with the same ids as recomputation.
    d = Seq2SeqDecoder(unilm(transformers), end_id=END, maxlen=8)
    d.max_step_traces = 1
    full = decoders("bert", "unilm", use_cache=False)
    inputs = [SOURCE, np.zeros_like(SOURCE)]
    for topk in (3, 1):
        np.testing.assert_array_equal(d.beam_search(inputs, topk=topk),
                                      full.beam_search(inputs, topk=topk))
    got = d.random_sample(inputs, 5, topk=5, rng=np.random.default_rng(1))
    want = full.random_sample(inputs, 5, topk=5, rng=np.random.default_rng(1))
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    if d._tf:  # per-batch traces are TensorFlow's; jax.jit keys on shapes itself
        batches = [batch for _, batch in d._step_fns]
        assert sum(b is not None for b in batches) == 1 and None in batches, d._step_fns.keys()


def test_cache_feeds_one_token_per_step(transformers):
    t = unilm(transformers)
    seen = []
    forward = t.cached_forward

    def spy(inputs, cache=None):
        seen.append(np.shape(inputs[0]))
        return forward(inputs, cache)

    t.cached_forward = spy
    try:
        # Eager, so every call reaches cached_forward.
        Seq2SeqDecoder(t, end_id=-1, maxlen=5, compile_step=False).beam_search(
            [SOURCE, np.zeros_like(SOURCE)], topk=2)
    finally:
        del t.cached_forward
    assert seen == [(1, len(SOURCE))] + [(2, 1)] * 4


def test_start_id_and_unconditional_lm(transformers):
    t = transformers("roformer", "lm")
    fast = LMDecoder(t, start_id=2, end_id=END, maxlen=6)
    slow = LMDecoder(t, start_id=2, end_id=END, maxlen=6, use_cache=False)
    out = fast.beam_search([], topk=2)
    assert out[0] == 2
    np.testing.assert_array_equal(out, slow.beam_search([], topk=2))


def test_decoder_checks_its_transformer(transformers):
    with pytest.raises(ValueError, match="application='unilm'"):
        Seq2SeqDecoder(transformers("roformer", "lm"), end_id=END, maxlen=4)
    with pytest.raises(TypeError, match="return_keras_model=False"):
        LMDecoder(transformers("roformer", "lm").model, end_id=END, maxlen=4)


# ----------------------------------------------------------- constraints
def test_trie():
    trie = Trie([[5, 6], [5, 7, 8], [9]], end_id=END)
    assert len(trie) == 3
    assert sorted(trie([])) == [5, 9]
    assert sorted(trie([5])) == [6, 7]
    assert trie([5, 6]) == [END]
    assert trie([4]) == [] and trie([5, 6, END]) == []
    assert [5, 7, 8, END] in trie and [5, 7] not in trie
    assert sorted(trie) == [[5, 6, END], [5, 7, 8, END], [9, END]]
    trie.add([5, 6])  # duplicates are stored once
    assert len(trie) == 3


def test_trie_constrains_beam_search_and_sampling(transformers, decoders):
    t = unilm(transformers)
    allowed = [[40, 41, 42], [40, 43], [50, 51, 52, 53], [60]]
    trie = Trie(allowed, end_id=END)
    inputs = [SOURCE, np.zeros_like(SOURCE)]
    for use_cache in (True, False):
        d = decoders("bert", "unilm", use_cache=use_cache)
        for topk in (1, 2, 5):
            out = d.beam_search(inputs, topk=topk, constraint=trie).tolist()
            assert out in trie, out
        samples = d.random_sample(inputs, 12, constraint=trie, rng=np.random.default_rng(0))
        assert all(s.tolist() in trie for s in samples)
        assert len({tuple(s) for s in samples}) > 1
    # Equal-length sequences all finish at the same step, so a beam as wide
    # as the trie keeps every one and returns the most likely.
    trie = Trie([[40, 41, 42], [40, 43, 44], [50, 51, 52], [60, 61, 62]], end_id=END)
    d = decoders("bert", "unilm")

    def score(seq):
        ids = np.concatenate([SOURCE, seq[:-1]])[None]
        segs = np.concatenate([np.zeros_like(SOURCE), np.ones(len(seq) - 1, int)])[None]
        p = forward(t.model, [ids, segs])[0, len(SOURCE) - 1:]
        return np.log(p[np.arange(len(seq)), seq] + 1e-12).sum()

    best = max(trie, key=score)
    assert d.beam_search(inputs, topk=4, constraint=trie).tolist() == best


def test_callable_constraint_with_start_token():
    # Constraints see the generated ids without the start token.
    logits = table(vocab=6, seed=2)
    d = TableDecoder(logits, start_id=0, end_id=2, maxlen=5)
    seen = []

    def only_4_then_end(prefix):
        seen.append(list(prefix))
        return [4] if len(prefix) < 2 else [2]

    assert d.beam_search([], topk=2, constraint=only_4_then_end).tolist() == [0, 4, 4, 2]
    assert seen[0] == []


# ---------------------------------------------------- bert4keras-style API
def test_bert4keras_style_subclass_matches_cached_decoder(transformers, decoders):
    t = unilm(transformers)
    model = t.model

    class AutoTitle(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            token_ids, segment_ids = inputs
            token_ids = np.concatenate([token_ids, output_ids], 1)
            segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
            return self.last_token(model).predict([token_ids, segment_ids], verbose=0)

        def generate(self, token_ids, segment_ids, topk=2):
            return self.beam_search([token_ids, segment_ids], topk=topk)

    user = AutoTitle(start_id=None, end_id=END, maxlen=8)
    assert user.first_output_ids.shape == (1, 0)
    assert AutoTitle(start_id=2, end_id=END, maxlen=8).first_output_ids.tolist() == [[2]]
    assert user.last_token(model) is user.last_token(model)
    ours = decoders("bert", "unilm")
    segments = np.zeros_like(SOURCE)
    np.testing.assert_array_equal(user.generate(SOURCE, segments),
                                  ours.beam_search([SOURCE, segments], topk=2))


def test_states_follow_the_beams():
    # A user predict with use_states=True: states offering reorder() are
    # gathered with the kept beams, so each row's history stays its own.
    logits = table(vocab=5, seed=6)

    class History:
        def __init__(self, rows):
            self.rows = rows

        def reorder(self, indices):
            return History([list(self.rows[i]) for i in indices])

    class Stateful(TableDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)
        def predict(self, inputs, output_ids, states):
            if states is not None:
                assert [r for r in states.rows] == output_ids[:, :-1].tolist()
                rows = [r + [ids[-1]] for r, ids in zip(states.rows, output_ids)]
            else:
                rows = [[] for _ in output_ids]
            step = output_ids.shape[1]
            last = output_ids[:, -1] if step else np.zeros(len(output_ids), dtype=int)
            return self.logits[step % len(self.logits), last], History(rows)

    d = Stateful(logits, start_id=None, end_id=2, maxlen=5)
    plain = TableDecoder(logits, start_id=None, end_id=2, maxlen=5)
    np.testing.assert_array_equal(d.beam_search([], topk=3), plain.beam_search([], topk=3))
    d.random_sample([], 4, rng=np.random.default_rng(0))


def test_last_token_layer_serializes():
    layer = keras.layers.deserialize(keras.layers.serialize(LastToken(name="last")))
    assert isinstance(layer, LastToken)
    out = layer(np.arange(6.0).reshape(1, 3, 2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), [[4.0, 5.0]])


def test_last_token_saved_by_earlier_releases_loads():
    # Earlier releases defined LastToken in kerasnlp4su.decoding, with no index.
    config = {"module": "kerasnlp4su.decoding", "class_name": "LastToken",
              "registered_name": "kerasnlp4su>LastToken", "config": {"name": "last"}}
    layer = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert isinstance(layer, LastToken) and layer.index == -1
    out = layer(np.arange(6.0).reshape(1, 3, 2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), [[4.0, 5.0]])


def test_bert4keras_import_paths():
    # bert4keras users import the decoders from `snippets`.
    from kerasnlp4su import decoding, snippets, viterbi

    assert snippets.AutoRegressiveDecoder is AutoRegressiveDecoder
    assert snippets.ViterbiDecoder is viterbi.ViterbiDecoder is decoding.ViterbiDecoder
    with pytest.raises(AttributeError):
        snippets.NoSuchHelper  # noqa: B018


# ------------------------------------------------------- batched generation
PROMPTS = [np.array(p) for p in ([2, 17, 41, 3], [2, 9, 30, 62, 81, 7, 3], [2, 55, 3],
                                 [2, 70, 12, 33, 90, 25, 48, 66, 3], [2, 8, 19, 27, 3])]


@pytest.mark.parametrize("family,application,end_id,topks,minlen", [
    ("bert", "unilm", 43, (1, 3), 1),  # one batch: learned positions read KVCache.shift
    ("gpt2", "lm", 96, (2,), 3),
    ("roformer", "unilm", 30, (1,), 1),  # rotary positions: batched per prompt length
])
def test_generate_equals_the_per_example_search(transformers, family, application, end_id,
                                                topks, minlen):
    # Prompts of different lengths in one call; end_id is a token these tiny
    # models often produce, so rows finish at different steps. Reference: the
    # step-by-step NumPy search with full recomputation, one example at a time.
    t = transformers(family, application)
    cls = Seq2SeqDecoder if application == "unilm" else LMDecoder
    batch = [[p, np.zeros_like(p)] if application == "unilm" else [p[:-1]] for p in PROMPTS]
    decoder = cls(t, end_id=end_id, maxlen=8, minlen=minlen)
    reference = cls(t, end_id=end_id, maxlen=8, minlen=minlen, use_cache=False)
    groups = decoder._batch_groups([decoder._prefix_row(x) for x in batch])
    assert len(groups) == (1 if family != "roformer" else len({len(p) for p in PROMPTS}))
    for topk in topks:
        got = [ids.tolist() for ids in decoder.generate(batch, topk=topk)]
        want = [reference.beam_search(x, topk=topk).tolist() for x in batch]
        assert got == want, topk
        assert len({len(ids) for ids in got}) > 1  # rows stopped at their own end tokens
        assert all(ids[-1] == end_id for ids in got if len(ids) < 8)
    if family == "bert":
        with pytest.raises(ValueError, match="topk=1000 exceeds the model's vocabulary"):
            decoder.generate(batch, topk=1000)
