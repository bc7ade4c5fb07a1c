"""The compiled KV-cache step (tf.function on TensorFlow, jax.jit on JAX), the
fixed-capacity `KVCache` it needs, and families that cannot use one; small enough
to run on every backend (test_backends)."""

import keras
import numpy as np
import pytest

import tiny_checkpoints
from backend_utils import to_np
from kerasnlp4su.backend import write_at
from kerasnlp4su.decoding import KVCache, Seq2SeqDecoder
from kerasnlp4su.layers import GatedAttentionUnit
from kerasnlp4su.models import BERT, build_transformer_model
from kerasnlp4su.models.cache import DecodingStep, reorder_cache, reserve_cache

END = 3
SOURCE = np.array([2, 11, 12, 13, 14, 15, END])


@pytest.fixture(scope="module")
def unilm(tmp_path_factory):
    config_path, ckpt = tiny_checkpoints.write(str(tmp_path_factory.mktemp("bert")), "bert")
    return build_transformer_model(config_path, ckpt, model="bert", application="unilm",
                                   return_keras_model=False)


@pytest.mark.backend_core
def test_reserved_cache_gives_the_same_outputs_and_grows_when_full(unilm):
    ids = np.array([[2, 11, 12, 3, 20, 21, 22, 23], [2, 11, 3, 0, 20, 21, 22, 23]])
    seg = np.array([[0, 0, 0, 0, 1, 1, 1, 1]] * 2)
    full = unilm.model.predict([ids, seg], verbose=0)
    _, cache = unilm.cached_forward([ids[:, :4], seg[:, :4]])
    cache = unilm.reserve_cache(cache, 6)
    assert tuple(cache["layers"][0][0].shape)[2] == 6 and cache["length"] == 4
    for j in range(4, 8):  # the 7th position overflows the 6 reserved: the cache doubles
        out, cache = unilm.cached_forward([ids[:, j:j + 1], seg[:, j:j + 1]], cache)
        np.testing.assert_allclose(to_np(out)[:, 0], full[:, j], atol=1e-6)
    assert cache["length"] == 8 and tuple(cache["keep"].shape) == (2, 12)
    np.testing.assert_array_equal(to_np(cache["keep"])[:, :8], ids != 0)
    assert not to_np(cache["keep"])[:, 8:].any()
    with pytest.raises(ValueError, match="cannot shrink a KV cache from 12 to 5"):
        unilm.reserve_cache(cache, 5)


@pytest.mark.backend_core
@pytest.mark.parametrize("topk", [1, 3])
def test_compiled_step_matches_the_eager_step(unilm, topk):
    # Beam search with topk=3 reorders beams inside the compiled step. The
    # eager step is checked against full recomputation by the reserved-cache
    # test above and by test_decoding (which recomputes on TensorFlow, where
    # that is cheap: eager JAX compiles every op again for each new length).
    inputs = [SOURCE, np.zeros_like(SOURCE)]
    compiled = Seq2SeqDecoder(unilm, end_id=END, maxlen=8)
    full = Seq2SeqDecoder(unilm, end_id=END, maxlen=8, compile_step=False)
    np.testing.assert_array_equal(compiled.beam_search(inputs, topk=topk),
                                  full.beam_search(inputs, topk=topk))
    got = compiled.random_sample(inputs, 3, topk=4, rng=np.random.default_rng(2))
    want = full.random_sample(inputs, 3, topk=4, rng=np.random.default_rng(2))
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert compiled.compile_step == (keras.backend.backend() in ("tensorflow", "jax"))


@pytest.mark.backend_core
def test_compiled_step_compiles_once_per_shape(unilm):
    # The reserved capacity keeps step shapes fixed: a greedy generation of
    # 8 tokens compiles its search loop (one model step inside) once, and a
    # second source of another length in the same cache block reuses it.
    decoder = Seq2SeqDecoder(unilm, end_id=-1, maxlen=8)
    traces = []
    model_step = decoder._model_step
    decoder._model_step = lambda *args: traces.append(1) or model_step(*args)
    for source in (SOURCE, SOURCE[:5]):
        out = decoder.beam_search([source, np.zeros_like(source)], topk=1)
        assert len(out) == 8
    if decoder.compile_step:
        assert len(traces) == 1, len(traces)
    else:  # eager (PyTorch): the step-by-step search, no loop function
        assert not traces


@pytest.mark.backend_core
def test_weights_changed_after_compiling_are_used(unilm):
    # jax.jit gets the variables as arguments, not baked-in constants.
    d = Seq2SeqDecoder(unilm, end_id=-1, maxlen=3)
    inputs = [SOURCE, np.zeros_like(SOURCE)]
    d.beam_search(inputs, topk=1)
    bias = unilm.model.get_layer("MLM-Bias").weights[0]
    original = to_np(bias)
    try:
        boosted = original.copy()
        boosted[7] = 1e4  # token 7 now wins every step
        bias.assign(boosted)
        assert d.beam_search(inputs, topk=1).tolist() == [7, 7, 7]
    finally:
        bias.assign(original)


@pytest.mark.backend_core
@pytest.mark.parametrize("axis,count", [(2, 1), (2, 3), (1, 2), (0, 1)])
def test_write_at_equals_numpy_slice_assignment(axis, count):
    """The cache write (scatter on TensorFlow, slice_update elsewhere)."""
    rng = np.random.default_rng(axis * 10 + count)
    buffer = rng.normal(size=(2, 3, 6, 4)).astype("float32")
    shape = list(buffer.shape)
    shape[axis] = count
    updates = rng.normal(size=shape).astype("float64")  # cast to the buffer's dtype
    for index in (0, 1, buffer.shape[axis] - count):
        want = buffer.copy()
        where = [slice(None)] * 4
        where[axis] = slice(index, index + count)
        want[tuple(where)] = updates
        for i in (index, keras.ops.convert_to_tensor(index, "int32")):
            got = to_np(write_at(keras.ops.convert_to_tensor(buffer), updates, i, axis=axis))
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.astype("float32"))
    keep = np.zeros((2, 5), bool)
    got = to_np(write_at(keras.ops.convert_to_tensor(keep), np.ones((2, 2), bool), 3, axis=1))
    np.testing.assert_array_equal(got, [[0, 0, 0, 1, 1]] * 2)


@pytest.mark.backend_core
def test_write_at_compiled_with_a_traced_index():
    """Inside the compiled step the index is a traced scalar."""
    buffer = np.zeros((1, 2, 5, 3), "float32")
    updates = np.ones((1, 2, 1, 3), "float32")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda b, u, i: write_at(b, u, i, axis=2))
    elif keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(lambda b, u, i: write_at(b, u, i, axis=2))
    else:
        fn = lambda b, u, i: write_at(b, u, i, axis=2)  # noqa: E731
    for index in (0, 4):
        got = to_np(fn(keras.ops.convert_to_tensor(buffer), keras.ops.convert_to_tensor(updates),
                       keras.ops.convert_to_tensor(index, "int32")))
        assert got.sum() == 6 and got[0, :, index].tolist() == [[1, 1, 1]] * 2


# ------------------------------------------------------------ the cache type
@pytest.mark.backend_core
def test_cache_is_a_tree_that_compiled_functions_take(unilm):
    # A KVCache goes into tf.function / jax.jit as it is and comes back out,
    # equal to the eager step; the old dict view still reads.
    ids = np.array([[2, 11, 12, 3, 20, 21], [2, 11, 3, 0, 20, 21]])
    seg = np.array([[0, 0, 0, 0, 1, 1]] * 2)
    _, cache = unilm.cached_forward([ids[:, :4], seg[:, :4]])
    cache = unilm.reserve_cache(cache, 8)
    assert isinstance(cache, KVCache) and len(cache.self_kv) == unilm.num_hidden_layers
    assert cache["layers"][1] is cache.self_kv[1] and cache["length"] == cache.length == 4
    same = keras.tree.map_structure(lambda t: t, cache)
    assert type(same) is KVCache and same.cross_kv == () and same.cross_keep is None

    def step(token_ids, segment_ids, cache):
        return unilm.cached_forward([token_ids, segment_ids], cache)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(step, autograph=False)
    elif backend == "jax":
        import jax

        compiled = jax.jit(step)
    else:
        compiled = step
    want, want_cache = step(ids[:, 4:5], seg[:, 4:5], cache)
    got, got_cache = compiled(ids[:, 4:5], seg[:, 4:5], cache._replace(length=np.int32(4)))
    assert type(got_cache) is KVCache and int(got_cache.length) == 5
    np.testing.assert_allclose(to_np(got), to_np(want), atol=1e-6)
    for g, w in zip(got_cache.tensors()[1:], want_cache.tensors()[1:]):
        np.testing.assert_allclose(to_np(g), to_np(w), atol=1e-6)


@pytest.mark.backend_core
def test_cross_entries_are_kept_reordered_and_not_grown():
    # What an encoder-decoder (T5) decoder stores: cross-attention keys/values
    # of the encoder output, written once by the prefix pass.
    rng = np.random.default_rng(0)
    kv = lambda positions: tuple(rng.normal(size=(2, 3, positions, 4)).astype("float32")  # noqa: E731
                                 for _ in range(2))
    cache = KVCache(5, np.ones((2, 6), bool), (kv(6), kv(6)), (kv(7), kv(7)),
                    np.array([[True] * 7, [True] * 4 + [False] * 3]))
    assert cache.with_tensors(cache.tensors()) == cache
    with pytest.raises(ValueError, match="has 11 tensors, got 10"):
        cache.with_tensors(cache.tensors()[:-1])
    grown = reserve_cache(cache, 9)
    assert tuple(grown.self_kv[0][0].shape)[2] == 9 and not to_np(grown.keep)[:, 6:].any()
    assert grown.cross_kv is cache.cross_kv and grown.cross_keep is cache.cross_keep
    swapped = reorder_cache(cache, np.array([1, 0]))
    np.testing.assert_array_equal(to_np(swapped.cross_kv[1][0]), cache.cross_kv[1][0][::-1])
    np.testing.assert_array_equal(to_np(swapped.cross_keep), cache.cross_keep[::-1])
    np.testing.assert_array_equal(to_np(swapped.self_kv[0][1]), cache.self_kv[0][1][::-1])
    # A decoding step hands the cross entries to each block and passes them on.
    step = DecodingStep(cache, cache.keep, heads=3, key_size=4, head_size=4)
    assert step.cross(1) is cache.cross_kv[1] and step.cross_keep is cache.cross_keep
    for index in range(2):
        step.write_self(index, cache.self_kv[index])
    new = step.new_cache(1, 2)
    assert new.length == 6 and new.cross_kv == cache.cross_kv
    prefix = DecodingStep(None, cache.keep, heads=3, key_size=4, head_size=4)
    assert prefix.is_prefix and prefix.cross(0) is None
    prefix.write_self(0, cache.self_kv[0])
    prefix.write_cross(0, cache.cross_kv[0])
    prefix.set_cross_keep(cache.cross_keep)
    new = prefix.new_cache(6, 1)
    assert new.cross_kv == cache.cross_kv[:1] and new.cross_keep is cache.cross_keep


class _GAUBlocks(BERT):
    """A family whose blocks are gated attention units, which take no KV cache."""

    def apply_block(self, x, index):
        return self.apply(x, GatedAttentionUnit, name=f"GAU-{index}", units=32, key_size=8,
                          call_kwargs={"attention_mask": self.attention_mask})


class _ForgetfulBlocks(_GAUBlocks):
    """Takes the step (its masks) but never writes the cache."""

    def apply_block(self, x, index, step=None):
        masks = self if step is None else step
        return self.apply(x, GatedAttentionUnit, name=f"GAU-{index}", units=32, key_size=8,
                          call_kwargs={"attention_mask": masks.attention_mask})


def test_a_family_whose_blocks_take_no_cache_fails_clearly():
    config = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, application="unilm")
    gau = _GAUBlocks(**config)
    gau.build()
    inputs = [SOURCE[None], np.zeros_like(SOURCE)[None]]
    with pytest.raises(NotImplementedError, match="_GAUBlocks cannot run a cached decoding step: "
                                                  "its apply_block take"):
        gau.cached_forward(inputs)
    with pytest.raises(NotImplementedError, match="its apply_block"):
        Seq2SeqDecoder(gau, end_id=END, maxlen=3)
    out = Seq2SeqDecoder(gau, end_id=-1, maxlen=3, use_cache=False).beam_search(
        [SOURCE, np.zeros_like(SOURCE)], topk=2)
    assert len(out) == 3  # recomputation needs no cache
    forgetful = _ForgetfulBlocks(**config)
    forgetful.build()
    with pytest.raises(NotImplementedError, match=r"blocks \[0, 1\] wrote no self-attention cache"):
        forgetful.cached_forward(inputs)
