"""The importable forms of bert4keras's example helpers against NumPy re-derivations.

Virtual adversarial training (its power iteration redone with finite
differences in float64), integrated gradients (an analytic NumPy gradient
and the completeness axiom), the parameter-space gradient penalty (finite
differences). The toy-model tests are cheap and marked `backend_core`, so
they also run on JAX and PyTorch (test_backends.py).
"""

import keras
import numpy as np
import pytest

from backend_utils import to_np
from reference import numeric_grad
from kerasnlp4su.models import TransformerModel
from kerasnlp4su.training import (
    gradient_penalty,
    integrated_gradients,
    virtual_adversarial_training,
)
from kerasnlp4su.training._steps import vat_noise

V, D, C, B, T = 5, 2, 3, 3, 4
RNG = np.random.default_rng(11)
X = RNG.integers(1, V, size=(B, T)).astype("int32")
X[0, :2] = 3  # a repeated token
LR = 0.1


def pooled_classifier(activation=None):
    """ids -> Embedding-Token -> (Dense tanh) -> mean over positions -> Dense softmax."""
    keras.utils.set_random_seed(5)
    ids = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, D, name="Embedding-Token",
                               embeddings_initializer=keras.initializers.RandomNormal(0, 1))(ids)
    if activation:
        h = keras.layers.Dense(D, activation=activation, name="mix")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    probs = keras.layers.Dense(C, activation="softmax", name="out",
                               kernel_initializer=keras.initializers.RandomNormal(0, 1))(h)
    return keras.Model(ids, probs)


def weights(model):
    return [to_np(w).astype("float64") for w in model.trainable_weights]


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def forward(E, W, b):
    return softmax(E[X].mean(1) @ W + b)


def kld(target, probs):
    return np.mean(np.sum(target * np.log(target / probs), -1))


def unit(v):
    return v / (np.sqrt((v ** 2).sum()) + 1e-8)


@pytest.mark.backend_core
def test_vat_step_matches_a_finite_difference_power_iteration():
    model = pooled_classifier()
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="kld")
    epsilon, xi, iters, seed = 0.5, 1.0, 2, 123
    virtual_adversarial_training(model, "Embedding-Token", epsilon, xi, iters, seed=seed)
    E, W, b = weights(model)
    target = forward(E, W, b)  # the model's own prediction, a constant
    direction = to_np(vat_noise((V, D), "float32", seed, 0)).astype("float64")
    for _ in range(iters):
        direction = numeric_grad(lambda e: kld(target, forward(e, W, b)), E + xi * unit(direction),
                                 1e-6)
    perturbed = E + epsilon * unit(direction)
    grads = [numeric_grad(lambda e: kld(target, forward(e, W, b)), perturbed, 1e-6),
             numeric_grad(lambda w: kld(target, forward(perturbed, w, b)), W, 1e-6),
             numeric_grad(lambda c: kld(target, forward(perturbed, W, c)), b, 1e-6)]
    labels = np.zeros((B, C), "float32")  # ignored: VAT trains on the model's own prediction
    loss = model.train_on_batch(X, labels)
    for got, start, g in zip(weights(model), (E, W, b), grads):
        np.testing.assert_allclose(got, start - LR * g, rtol=1e-4, atol=1e-6)
    loss = float(np.ravel(loss)[0])
    assert loss == pytest.approx(kld(target, forward(perturbed, W, b)), rel=1e-4)
    assert loss > 1e-4  # the perturbation moved the prediction: the step is not a no-op


def test_vat_call_is_the_bert4keras_examples():
    model = pooled_classifier()
    model.compile(optimizer="sgd", loss="kld")
    assert virtual_adversarial_training(model, "Embedding-Token") is model  # epsilon=1, xi=10, iters=1
    with pytest.raises(ValueError, match="iters"):
        virtual_adversarial_training(model, "Embedding-Token", iters=0)


@pytest.mark.backend_core
def test_parameter_gradient_penalty_matches_finite_differences():
    model = pooled_classifier()
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="sparse_categorical_crossentropy")
    gradient_penalty(model, epsilon=0.3, wrt="parameters")
    start = weights(model)
    shapes = [p.shape for p in start]
    labels = RNG.integers(0, C, size=(B,))

    def unflatten(flat):
        pieces, i = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            pieces.append(flat[i:i + n].reshape(shape))
            i += n
        return pieces

    def task_loss(flat):
        probs = forward(*unflatten(flat))
        return -np.mean(np.log(probs[np.arange(B), labels]))

    def penalised(flat):  # the penalty's own gradient is analytic-free: nested differences
        return task_loss(flat) + 0.5 * 0.3 * np.sum(numeric_grad(task_loss, flat, 1e-4) ** 2)

    flat = np.concatenate([p.ravel() for p in start])
    expected = flat - LR * numeric_grad(penalised, flat, 1e-3)
    model.train_on_batch(X, labels)
    got = np.concatenate([p.ravel() for p in weights(model)])
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-5)
    plain = flat - LR * numeric_grad(task_loss, flat, 1e-6)
    assert not np.allclose(got, plain, atol=1e-4)  # the penalty changed the step
    with pytest.raises(ValueError, match="wrt"):
        gradient_penalty(model, wrt="inputs")


def ig_reference(model, steps):
    """Integrated gradients of the predicted class by an analytic NumPy gradient (midpoint rule)."""
    E, W1, b1, W2, b2 = weights(model)
    x = E[X]

    def probs_and_grad(z, cls):
        h = np.tanh(z @ W1 + b1)
        p = softmax(h.mean(1) @ W2 + b2)
        onehot = np.eye(C)[cls]
        dlogits = p[np.arange(B), cls][:, None] * (onehot - p)
        dh = (dlogits @ W2.T)[:, None, :] / T
        return p, (dh * (1 - h ** 2)) @ W1.T

    cls = probs_and_grad(x, np.zeros(B, int))[0].argmax(-1)
    grads = [probs_and_grad((k + 0.5) / steps * x, cls)[1] for k in range(steps)]
    return x * np.mean(grads, 0), cls


@pytest.mark.backend_core
def test_integrated_gradients_match_numpy_and_completeness():
    model = pooled_classifier(activation="tanh")
    # One path length throughout: eager JAX compiles each op once per shape.
    attributions = integrated_gradients(model, X, "Embedding-Token", steps=32)
    expected, cls = ig_reference(model, 32)
    np.testing.assert_allclose(attributions, expected, rtol=1e-4, atol=1e-6)
    # Completeness: per example, the attributions add up to f(x) - f(baseline).
    probs = to_np(model(X))[np.arange(B), cls]
    _, _, b1, W2, b2 = weights(model)
    at_zero = softmax(np.tanh(b1) @ W2 + b2)[cls]  # every position's embedding zero
    np.testing.assert_allclose(attributions.sum((1, 2)), probs - at_zero, rtol=2e-3, atol=1e-5)
    assert np.abs(attributions.sum((1, 2))).max() > 1e-3  # not trivially zero
    single = integrated_gradients(model, [X], steps=32, target=1)
    assert single.shape == (B, T, D) and not np.allclose(single, attributions)
    with pytest.raises(ValueError, match="Embedding-Missing"):
        integrated_gradients(model, X, "Embedding-Missing")




def test_integrated_gradients_on_a_tiny_bert_satisfy_completeness():
    from kerasnlp4su.models import build_transformer_model

    keras.utils.set_random_seed(2)
    bert = build_transformer_model(vocab_size=20, hidden_size=8, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=16,
                                   max_position_embeddings=8, type_vocab_size=2, with_pool=True)
    model = TransformerModel(bert.inputs, keras.layers.Dense(2, activation="softmax")(bert.output))
    tokens = np.array([[2, 5, 7, 5, 3, 0], [2, 9, 3, 0, 0, 0]], "int32")
    segments = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], "int32")
    attributions = integrated_gradients(model, [tokens, segments], steps=48)
    # bert4keras's call shape: nested Python lists, one example.
    first = integrated_gradients(model, [tokens[:1].tolist(), segments[:1].tolist()], steps=48)
    np.testing.assert_allclose(first[0], attributions[0], rtol=1e-4, atol=1e-7)
    probs = to_np(model([tokens, segments]))
    cls = probs.argmax(-1)
    # The baseline as bert4keras's example made it: a zero token-embedding matrix.
    table = model.get_layer("Embedding-Token").embeddings
    saved = to_np(table)
    table.assign(np.zeros_like(saved))
    at_zero = to_np(model([tokens, segments]))
    table.assign(saved)
    gain = probs[[0, 1], cls] - at_zero[[0, 1], cls]
    np.testing.assert_allclose(attributions.sum((1, 2)), gain, rtol=2e-3, atol=2e-5)
    assert np.abs(gain).max() > 1e-4


REMAT_CONFIG = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=8, type_vocab_size=2,
                    # dropout inside a rematerialised layer; weights large enough that it shows
                    attention_dropout_rate=0.3, initializer_range=0.5)
# Padding (id 0) in both rows; targets there are huge, so a loss that counted them would show.
REMAT_TOKENS = np.array([[2, 5, 7, 3, 0], [2, 9, 3, 0, 0]], "int32")
REMAT_INPUTS = [REMAT_TOKENS, np.zeros_like(REMAT_TOKENS)]
REMAT_TARGETS = np.where((REMAT_TOKENS > 0)[..., None],
                         np.random.default_rng(3).normal(size=(2, 5, 8)), 100.0).astype("float32")


@pytest.fixture(scope="module")
def plain_and_remat_bert():
    """The same tiny BERT (dropout on) built plainly and inside `keras.RematScope(mode="full")`."""
    from kerasnlp4su.models import build_transformer_model

    keras.utils.set_random_seed(4)
    plain = build_transformer_model(**REMAT_CONFIG)
    keras.utils.set_random_seed(4)  # the same seeds for the Dropout layers
    with keras.RematScope(mode="full"):
        remat = build_transformer_model(**REMAT_CONFIG)
    remat.set_weights(plain.get_weights())
    return plain, remat


def one_sgd_step(model, start, run_eagerly):
    """(loss, weight change) of one `fit` step from the weights `start`."""
    model.set_weights(start)
    keras.utils.set_random_seed(7)  # PyTorch's Dropout draws from torch's global generator
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", run_eagerly=run_eagerly)
    before = weights(model)
    loss = model.fit(REMAT_INPUTS, REMAT_TARGETS, batch_size=2, verbose=0).history["loss"][0]
    return loss, [b - a for b, a in zip(before, weights(model))]


def assert_same_step(plain, remat, run_eagerly):
    """One `fit` step of each model from the same weights: the same loss and updates."""
    start = plain.get_weights()
    (loss_plain, step_plain), (loss_remat, step_remat) = (one_sgd_step(m, start, run_eagerly)
                                                          for m in (plain, remat))
    np.testing.assert_allclose(loss_remat, loss_plain, rtol=1e-6)
    for g_plain, g_remat in zip(step_plain, step_remat):
        np.testing.assert_allclose(g_remat, g_plain, rtol=1e-5, atol=1e-6)
    assert any(np.abs(g).max() > 1e-3 for g in step_plain)
    assert loss_plain < 50  # the compiled loss ignored the padding (targets 100 there)
    for model in (plain, remat):
        model.set_weights(start)
    return loss_plain


@pytest.mark.backend_core
def test_remat_scope_is_bert4keras_recompute_with_the_same_gradients(plain_and_remat_bert,
                                                                    monkeypatch):
    # bert4keras's RECOMPUTE=1 is `keras.RematScope(mode="full")` around the build: the layers
    # bert4keras recomputed (attention, feed-forward, norms) are rematerialised, dropout
    # included, with the padding mask kept for the compiled loss. Eager on TensorFlow (the
    # next test traces it), jitted on JAX.
    plain, remat = plain_and_remat_bert
    modes = {layer.name: getattr(layer._remat_mode, "mode", None) for layer in remat.layers}
    recomputed = {name for name, mode in modes.items() if mode == "full"} - {"Input-Token",
                                                                             "Input-Segment"}
    assert recomputed == {"Embedding-Norm", "Transformer-0-MultiHeadSelfAttention",
                          "Transformer-0-MultiHeadSelfAttention-Norm", "Transformer-0-FeedForward",
                          "Transformer-0-FeedForward-Norm"}
    assert getattr(remat._remat_mode, "mode", None) is None  # not the whole model again
    remat_calls = []
    real_remat = keras.remat
    monkeypatch.setattr(keras, "remat", lambda f: remat_calls.append(f) or real_remat(f))
    assert_same_step(plain, remat, run_eagerly=keras.backend.backend() == "tensorflow")
    # Those layers went through keras.remat (the plain model's have no remat mode).
    assert len(remat_calls) >= len(recomputed)


def test_remat_keeps_the_padding_mask_of_a_compiled_loss_under_graph_fit(plain_and_remat_bert):
    # TensorFlow's own remat of these layers failed in tf.function (and, eagerly, dropped the
    # Keras mask, so a compiled loss counted padding): a traced `fit` step equals the plain one.
    plain, remat = plain_and_remat_bert
    assert_same_step(plain, remat, run_eagerly=False)
    outputs = to_np(plain(REMAT_INPUTS))
    np.testing.assert_allclose(to_np(remat(REMAT_INPUTS)), outputs, atol=1e-6)
    masked_mse = ((outputs - REMAT_TARGETS) ** 2).mean(-1)[REMAT_TOKENS > 0].mean()
    remat.compile(loss="mse", run_eagerly=True)
    np.testing.assert_allclose(remat.test_on_batch(REMAT_INPUTS, REMAT_TARGETS), masked_mse,
                               rtol=1e-5)
    # Dropout is on in training, so the equal steps above compared dropped-out forward passes.
    assert np.abs(to_np(remat(REMAT_INPUTS, training=True)) - outputs).max() > 1e-2


class _TrainOnlyShift(keras.layers.Layer):
    def call(self, inputs):
        from kerasnlp4su.backend import K

        return K.in_train_phase(inputs + 1.0, inputs)


@pytest.mark.backend_core
def test_K_calls_of_bert4keras_scripts_on_this_backend():
    # The Keras-2 `K` calls bert4keras's source and examples make, against NumPy, on every backend
    # (test_bert4keras_names.py compares them with tf-keras on TensorFlow).
    from kerasnlp4su.backend import K

    x = RNG.normal(size=(2, 3, 4)).astype("float32")
    v = K.variable(np.zeros((2, 3)))
    K.set_value(v, np.ones((2, 3)))
    K.update_add(v, np.ones((2, 3)))
    np.testing.assert_array_equal(K.get_value(v), 2.0)
    np.testing.assert_array_equal(K.eval(K.ones_like(x)), np.ones_like(x))
    assert K.int_shape(K.concatenate([x, x])) == (2, 3, 8) and K.floatx() == "float32"
    assert K.epsilon() == keras.config.epsilon()
    np.testing.assert_allclose(to_np(K.batch_dot(x, np.swapaxes(x, 1, 2))),
                               np.einsum("bij,bkj->bik", x, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(K.switch(x > 0, x, -x)), np.abs(x))
    np.testing.assert_allclose(to_np(K.sqrt(x)), np.sqrt(np.maximum(x, 0)))
    np.testing.assert_allclose(to_np(K.pool2d(x[..., None], (2, 1), (1, 1))),
                               np.maximum(x[:, :-1], x[:, 1:])[..., None])
    last, outputs, _ = K.rnn(lambda step, s: (s[0] + step, [s[0] + step]), x,
                             [keras.ops.zeros((2, 4))])
    np.testing.assert_allclose(to_np(outputs), np.cumsum(x, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(last), x.sum(1), rtol=1e-5, atol=1e-6)
    draws = to_np(K.random_binomial((4000,), p=0.25, seed=3))
    assert set(np.unique(draws)) <= {0.0, 1.0} and abs(draws.mean() - 0.25) < 0.04
    ids = keras.Input((3,))
    shifted = keras.Model(ids, _TrainOnlyShift()(ids))
    np.testing.assert_array_equal(to_np(shifted(np.zeros((1, 3)), training=True)), 1.0)
    np.testing.assert_array_equal(to_np(shifted(np.zeros((1, 3)), training=False)), 0.0)
    assert K.learning_phase() == 0
