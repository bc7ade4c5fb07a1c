"""layers.Loss: bert4keras's output-layer loss pattern under model.fit with no `loss=`."""

import keras
import numpy as np
from keras import ops

from kerasnlp4su.layers import Loss
from layer_harness import check_layer

from backend_utils import to_np

RNG = np.random.default_rng(0)
VOCAB, LENGTH = 11, 5


@keras.saving.register_keras_serializable(package="kerasnlp4su_tests")
class CrossEntropy(Loss):
    """The seq2seq loss of bert4keras's UniLM examples, written as its scripts write it."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_mask, y_pred = inputs
        y_true, y_mask, y_pred = y_true[:, 1:], y_mask[:, 1:], y_pred[:, :-1]
        loss = ops.sparse_categorical_crossentropy(y_true, y_pred)
        return ops.sum(loss * y_mask) / ops.sum(y_mask)  # y_mask arrives as float32


@keras.saving.register_keras_serializable(package="kerasnlp4su_tests")
class SquaredSum(Loss):
    def compute_loss(self, inputs, mask=None):
        return ops.mean(ops.square(inputs[0]) * inputs[1])


def numpy_cross_entropy(ids, segments, probs):
    y, m, p = ids[:, 1:], segments[:, 1:].astype("float64"), probs[:, :-1].astype("float64")
    picked = np.take_along_axis(p, y[..., None], axis=-1)[..., 0]
    return float((-np.log(picked) * m).sum() / m.sum())


def seq2seq_model():
    ids = keras.Input((None,), dtype="int32")
    segments = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(VOCAB, 8)(ids)
    probs = keras.layers.Dense(VOCAB, activation="softmax", name="probs")(h)
    output = CrossEntropy(2, name="loss")([ids, segments, probs])
    return keras.Model([ids, segments], output)


def batch():
    ids = np.random.default_rng(1).integers(1, VOCAB, (4, LENGTH)).astype("int32")
    segments = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 0, 1, 1], [0, 1, 1, 0, 0]], "int32")
    return ids, segments


def test_loss_layer_is_minimised_without_compile_loss_and_equals_numpy(tmp_path):
    keras.utils.set_random_seed(0)
    model = seq2seq_model()
    ids, segments = batch()
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    probs = to_np(model([ids, segments]))
    expected = numpy_cross_entropy(ids, segments, probs)
    assert abs(model.test_on_batch([ids, segments]) - expected) < 1e-5
    history = model.fit([ids, segments], epochs=15, batch_size=4, verbose=0).history["loss"]
    assert history[0] == history[0] and history[-1] < 0.5 * history[0], history
    trained = numpy_cross_entropy(ids, segments, to_np(model([ids, segments])))
    assert abs(model.test_on_batch([ids, segments]) - trained) < 1e-5
    model.save(tmp_path / "lm.keras")
    restored = keras.saving.load_model(tmp_path / "lm.keras", safe_mode=True)
    np.testing.assert_allclose(to_np(restored([ids, segments])), to_np(model([ids, segments])), atol=1e-6)
    restored.compile(optimizer="adam")  # the restored layer still adds its loss
    assert abs(restored.test_on_batch([ids, segments]) - trained) < 1e-5


def test_output_axis_selects_and_loss_needs_compute_loss():
    x = RNG.standard_normal((2, 3)).astype("float32")
    w = np.ones((2, 3), "int32")
    assert SquaredSum(0)([x, w]).shape == (2, 3)
    assert [tuple(o.shape) for o in SquaredSum([1, 0])([x, w])] == [(2, 3), (2, 3)]
    assert len(SquaredSum()([x, w])) == 2
    try:
        Loss()([x, w])
    except NotImplementedError as e:
        assert "override compute_loss" in str(e)
    else:
        raise AssertionError("Loss without compute_loss must raise")


def test_layer_harness():
    x = RNG.standard_normal((2, 3, 4)).astype("float32")
    weights = RNG.integers(0, 3, (2, 3, 4)).astype("int32")
    check_layer(SquaredSum, {"output_axis": 0}, [x, weights], (2, 3, 4), supports_masking=True,
                mixed_output_dtype="float32")
