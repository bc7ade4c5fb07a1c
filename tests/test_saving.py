"""Atomic `.keras` / `.weights.h5` saving, and property tests of the mask layers."""

import os

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_utils import to_np
from kerasnlp4su.layers import AttentionMask
from kerasnlp4su.saving import save_model, save_weights


def tiny_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


@pytest.mark.parametrize("saver,name", [(save_model, "m.keras"), (save_weights, "m.weights.h5")])
def test_interrupted_save_keeps_the_previous_file(tmp_path, saver, name):
    model = tiny_model()
    path = tmp_path / name
    saver(model, path)
    before = path.read_bytes()

    def crash(staging, *args, **kwargs):
        with open(staging, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    model.save = crash
    model.save_weights = crash
    with pytest.raises(KeyboardInterrupt):
        saver(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_saved_files_load(tmp_path):
    model = tiny_model()
    x = np.ones((1, 3), "float32")
    save_model(model, tmp_path / "a.keras")
    restored = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="'.keras' file"):
        save_model(model, tmp_path / "a.h5")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=1, max_size=9))
def test_unilm_mask_matches_definition(pairs):
    segments = np.array([[s for s, _ in pairs]])
    ids = np.array([[t for _, t in pairs]])
    allowed = to_np(AttentionMask("unilm")([ids, segments]))[0, 0] == 0
    order = np.cumsum(segments[0])
    for i in range(len(pairs)):
        for j in range(len(pairs)):
            expected = ids[0, j] != 0 and order[j] <= order[i]
            assert allowed[i, j] == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=9))
def test_lm_and_padding_masks_match_definition(tokens):
    ids = np.array([tokens])
    lm = to_np(AttentionMask("lm")(ids))[0, 0] == 0
    pad = to_np(AttentionMask("padding")(ids))[0, 0, 0] == 0
    n = len(tokens)
    np.testing.assert_array_equal(pad, ids[0] != 0)
    np.testing.assert_array_equal(lm, np.tril(np.ones((n, n), bool)) & (ids[0] != 0)[None, :])
