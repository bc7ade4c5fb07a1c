"""Mask-aware GlobalAveragePooling1D / GlobalMaxPooling1D, Concatenate1D, BatchSplit placeholders,
integerize_shape."""

import keras
import numpy as np
import pytest

from kerasnlp4su.layers import (
    BatchConcat,
    BatchSplit,
    Concatenate1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
)
from layer_harness import check_layer

from backend_utils import to_np

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 4, 3)).astype("float32")
KEEP = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)


def test_pooling_over_kept_steps_matches_numpy():
    x = X.copy()
    x[0, 2:] = 100.0  # padded steps would dominate a max or a mean
    mean = np.stack([x[0, :2].mean(0), x[1].mean(0)])
    maximum = np.stack([x[0, :2].max(0), x[1].max(0)])
    np.testing.assert_allclose(to_np(GlobalAveragePooling1D()(x, mask=KEEP)), mean, rtol=1e-6)
    np.testing.assert_allclose(to_np(GlobalMaxPooling1D()(x, mask=KEEP)), maximum, rtol=1e-6)
    np.testing.assert_allclose(to_np(GlobalMaxPooling1D()(x)), x.max(1), rtol=1e-6)
    # The Keras mask of an Embedding(mask_zero=True) reaches the pooling.
    ids = keras.Input((None,), dtype="int32")
    pooled = GlobalMaxPooling1D()(keras.layers.Embedding(9, 3, mask_zero=True)(ids))
    model = keras.Model(ids, pooled)
    table = to_np(model.layers[1].embeddings)
    data = np.array([[3, 5, 0, 0]])
    np.testing.assert_allclose(to_np(model(data)), table[[3, 5]].max(0)[None], rtol=1e-6)


def test_concatenate1d_joins_masks():
    a, b = X, RNG.standard_normal((2, 2, 3)).astype("float32")
    layer = Concatenate1D()
    np.testing.assert_array_equal(to_np(layer([a, b])), np.concatenate([a, b], axis=1))
    mask = to_np(layer.compute_mask([a, b], [KEEP, None]))
    np.testing.assert_array_equal(mask, np.concatenate([KEEP, np.ones((2, 2), bool)], axis=1))
    assert layer.compute_mask([a, b], [None, None]) is None


@pytest.mark.parametrize("cls", [BatchSplit, BatchConcat])
def test_batch_split_layers_name_keras_distribution(cls):
    with pytest.raises(NotImplementedError, match="keras.distribution"):
        cls(2)


def test_layer_harness():
    check_layer(GlobalAveragePooling1D, {}, X, (2, 3), mask=KEEP, mixed_tolerance=0.02)
    check_layer(GlobalMaxPooling1D, {}, X, (2, 3), mask=KEEP, supports_masking=True, mixed_tolerance=0.02)
    check_layer(Concatenate1D, {}, [X, X[:, :2]], (2, 6, 3), supports_masking=True,
                mixed_tolerance=0.02)


def test_integerize_shape_passes_keras3_shapes():
    from kerasnlp4su.layers import integerize_shape

    class Dim:
        value = 7

    @integerize_shape
    def build(self, input_shape):
        return input_shape

    assert build(None, (None, Dim(), 3)) == [None, 7, 3]
