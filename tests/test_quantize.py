"""`model.quantize("int8")` (Keras 3) on the models the project builds.

Our `Dense` and `Embedding` subclasses quantize (Keras refuses subclasses
unless they say they may), the tied MLM projection reads the int8 table,
sublayers built inside attention/FFN/GAU layers keep their int8 policy
through `.keras` (safe_mode) and `.weights.h5`. A few tiny models cover the
layer kinds; `benchmarks/bench_sentence_embeddings.py` measures MiniLM.
"""

import gc
import warnings
import weakref

import keras
import numpy as np
import pytest

from kerasnlp4su.layers import Dense, Embedding
from kerasnlp4su.models import build_transformer_model

TINY = dict(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
            intermediate_size=64)
# (family, extra arguments): BERT with the tied MLM head; GAU-alpha (GAU layers, rotary
# positions, no biases). All 14 registered families pass the same steps (checked by hand;
# T5 alone would cost this file's budget three times over).
# Each reloads one way: .keras (the config must carry the sublayers' int8 policies) or
# .weights.h5 (into a freshly built, quantized model).
MODELS = [("bert", {"with_mlm": True}, "keras"), ("gau_alpha", {}, "weights.h5")]


def inputs_for(model, rng):
    return [np.zeros((2, 7), "int32") if "segment" in t.name.lower()
            else rng.integers(1, 40, size=(2, 7)).astype("int32") for t in model.inputs]


def flat(outputs):
    outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return keras.ops.convert_to_numpy(outputs).reshape(2, -1)


def cosine(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_tied_projection_uses_the_int8_table():
    layer = Embedding(40, 8)
    layer.build((None,))
    hidden = np.random.default_rng(0).standard_normal((3, 8)).astype("float32")
    layer.quantize("int8")
    table = keras.ops.convert_to_numpy(layer._embeddings).astype("float32") / \
        keras.ops.convert_to_numpy(layer.embeddings_scale)[:, None]
    got = keras.ops.convert_to_numpy(layer(hidden, mode="dense"))
    np.testing.assert_allclose(got, hidden @ table.T, rtol=1e-5, atol=1e-5)


@pytest.fixture
def nothing_frozen():
    """The interpreter's default: no frozen objects (conftest.py freezes what the suite imported)."""
    was_frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    yield
    gc.unfreeze()
    if was_frozen:
        gc.freeze()


def test_quantize_skips_collecting_old_objects_and_still_frees_the_float_kernel(nothing_frozen):
    # Keras's Layer.__delattr__ runs gc.collect() per replaced variable (0.2-0.5 s each in a
    # process holding TensorFlow); ours run with the older objects frozen.
    layer = Dense(4)
    layer.build((None, 3))
    kernel = weakref.ref(layer._kernel)
    frozen_during_collections = []

    def record(phase, info):
        if phase == "start" and info["generation"] == 2:  # Keras's gc.collect() calls
            frozen_during_collections.append(gc.get_freeze_count())

    gc.callbacks.append(record)
    try:
        layer.quantize("int8")
    finally:
        gc.callbacks.remove(record)
    assert frozen_during_collections and min(frozen_during_collections) > 0
    assert kernel() is None  # freed as soon as Keras deleted it
    assert gc.get_freeze_count() == 0
    # A process that froze objects itself keeps them frozen afterwards.
    other = Dense(4)
    other.build((None, 3))
    gc.freeze()
    other.quantize("int8")
    assert gc.get_freeze_count() > 0  # not unfrozen behind its back
    assert other.quantization_mode == "int8"


@pytest.mark.parametrize("family,extra,file", MODELS, ids=[m for m, _, _ in MODELS])
def test_int8_model_is_close_and_round_trips(family, extra, file, tmp_path):
    model = build_transformer_model(model=family, **TINY, **extra)
    xs = inputs_for(model, np.random.default_rng(0))
    reference = flat(model(xs, training=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras names every layer that has nothing to quantize
        model.quantize("int8")
    quantized = [layer for layer in model._flatten_layers()
                 if layer.dtype_policy.quantization_mode == "int8"]
    kinds = {type(layer).__name__ for layer in quantized}
    assert "Dense" in kinds and "Embedding" in kinds, kinds
    int8 = flat(model(xs, training=False))
    assert cosine(int8, reference).min() > 0.999
    assert np.abs(int8 - reference).max() > 0  # it did change the arithmetic

    if file == "keras":
        model.save(tmp_path / "m.keras")
        reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
        np.testing.assert_allclose(flat(reloaded(xs, training=False)), int8, atol=1e-6)
        return
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = build_transformer_model(model=family, **TINY, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.quantize("int8")
    fresh.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(flat(fresh(xs, training=False)), int8, atol=1e-6)
