"""NEZHA and T5 relative position layers against NumPy and transformers' T5 bucketing."""

import math

import keras
import numpy as np
import pytest

from kerasnlp4su.layers import RelativePositionEmbedding, RelativePositionEmbeddingT5
from kerasnlp4su.layers.relative_position import t5_relative_buckets
from layer_harness import check_layer

from backend_utils import to_np

RNG = np.random.default_rng(0)


def numpy_nezha_table(rows, depth):
    """NEZHA's official table: row `pos`, feature 2i = sin(pos / 10000**(2i/depth)), 2i+1 = cos."""
    table = np.zeros((rows, depth))
    for pos in range(rows):
        for i in range(depth // 2):
            table[pos, 2 * i] = np.sin(pos / np.power(10000, 2 * i / depth))
            table[pos, 2 * i + 1] = np.cos(pos / np.power(10000, 2 * i / depth))
    return table


def numpy_t5_bucket(offset, bidirectional, num_buckets, max_distance):
    """One (key - query) offset's bucket, written from the T5 paper's description."""
    bucket, n = 0, -offset
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if n < 0 else 0
        n = abs(n)
    else:
        n = max(n, 0)
    exact = num_buckets // 2
    if n < exact:
        return bucket + n
    large = exact + int(math.log(n / exact) / math.log(max_distance / exact) * (num_buckets - exact))
    return bucket + min(large, num_buckets - 1)


def test_nezha_sinusoidal_table_and_clipped_offsets():
    layer = RelativePositionEmbedding(2 * 3 + 1, 6, embeddings_initializer="sinusoidal", trainable=False)
    q, k = np.zeros((2, 5, 4), "float32"), np.zeros((2, 9, 4), "float32")
    out = to_np(layer([q, k]))
    table = numpy_nezha_table(7, 6)
    expected = np.array([[table[np.clip(j - i, -3, 3) + 3] for j in range(9)] for i in range(5)])
    assert out.shape == (5, 9, 6) and not layer.trainable_weights
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_nezha_trainable_zeros_default():
    layer = RelativePositionEmbedding(5, 3)
    x = np.zeros((1, 4, 2), "float32")
    assert np.all(to_np(layer([x, x])) == 0) and len(layer.trainable_weights) == 1
    layer.embeddings.assign(np.arange(15, dtype="float32").reshape(5, 3))
    ids = np.clip(np.arange(4)[None] - np.arange(4)[:, None], -2, 2) + 2
    np.testing.assert_array_equal(to_np(layer([x, x])), np.arange(15).reshape(5, 3)[ids])


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20)])
def test_t5_buckets_match_transformers_and_numpy(bidirectional, num_buckets, max_distance):
    torch = pytest.importorskip("torch")
    from transformers.models.t5.modeling_t5 import T5Attention

    q_len = k_len = 300  # offsets from -299 to 299: exact, log-spaced and clipped buckets
    ours = to_np(t5_relative_buckets(q_len, k_len, num_buckets, max_distance, bidirectional))
    offsets = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
    hf = T5Attention._relative_position_bucket(offsets, bidirectional=bidirectional,
                                               num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(ours, hf.numpy())
    # The grid depends on key - query only: its first row and column hold every offset.
    by_hand = [numpy_t5_bucket(offset, bidirectional, num_buckets, max_distance)
               for offset in range(-(q_len - 1), k_len)]
    np.testing.assert_array_equal(np.concatenate([ours[::-1, 0], ours[0, 1:]]), by_hand)
    # Every bucket is reached (log-spaced and last ones included), except the
    # upper half's "offset 0" bucket, which bidirectional T5 never uses.
    assert len(np.unique(ours)) == num_buckets - bidirectional


def test_t5_layer_gathers_bucket_rows():
    layer = RelativePositionEmbeddingT5(8, 3, max_distance=20, bidirectional=False)
    x = np.zeros((2, 6, 4), "float32")
    layer.build(None)
    table = RNG.standard_normal((8, 3)).astype("float32")
    layer.embeddings.assign(table)
    ids = np.array([[numpy_t5_bucket(j - i, False, 8, 20) for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(to_np(layer([x, x])), table[ids], atol=0)


def test_layer_harness():
    x = RNG.standard_normal((2, 4, 3)).astype("float32")
    y = RNG.standard_normal((2, 6, 3)).astype("float32")
    # No batch axis in the output: the fit step's batched targets do not apply.
    check_layer(RelativePositionEmbedding, {"input_dim": 5, "output_dim": 4}, [x, y], (4, 6, 4),
                symbolic_shapes=[(4, 3), (6, 3)], fit=False)
    check_layer(RelativePositionEmbeddingT5, {"input_dim": 8, "output_dim": 2, "max_distance": 10},
                [x, y], (4, 6, 2), symbolic_shapes=[(4, 3), (6, 3)], fit=False)
