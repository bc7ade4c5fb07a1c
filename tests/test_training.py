"""FGM adversarial training and gradient penalty against hand-derived NumPy steps."""

import keras
import numpy as np
import pytest

from backend_utils import to_np
from kerasnlp4su.models import TransformerModel
from kerasnlp4su.training import adversarial_training, gradient_penalty, remove_training_tricks

V, D, B, T = 6, 3, 4, 3
RNG = np.random.default_rng(0)
X = RNG.integers(0, V, size=(B, T)).astype("int32")
X[0, :2] = 2  # a repeated token: its gradient rows must add up
Y = RNG.normal(size=(B, 1)).astype("float32")
LR = 0.1


def make_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, D, name="Embedding-Token")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(1, name="out")(h)
    return keras.Model(inputs, outputs)


def params(model):
    return [to_np(w).astype("float64") for w in model.trainable_weights]  # E, W, b


def loss_and_grads(E, W, b):
    """mse of mean-pooled embeddings -> Dense(1), and its gradients (E, W, b)."""
    h = E[X].mean(1)
    out = h @ W + b
    loss = np.mean((out - Y) ** 2)
    dout = 2 * (out - Y) / B
    dh = dout @ W.T
    dE = np.zeros_like(E)
    np.add.at(dE, X, np.repeat(dh[:, None, :] / T, T, axis=1))
    return loss, [dE, h.T @ dout, dout.sum(0)]


def fit_one_step(model, jit_compile):
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse", jit_compile=jit_compile)
    return model


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("include_clean_loss", [True, False])
def test_fgm_step_matches_hand_computation(include_clean_loss, jit_compile):
    model = fit_one_step(make_model(), jit_compile)
    adversarial_training(model, "Embedding-Token", epsilon=0.5,
                         include_clean_loss=include_clean_loss)
    E, W, b = params(model)
    loss, clean = loss_and_grads(E, W, b)
    delta = 0.5 * clean[0] / (np.sqrt((clean[0] ** 2).sum()) + 1e-8)
    _, adv = loss_and_grads(E + delta, W, b)
    total = [c + a for c, a in zip(clean, adv)] if include_clean_loss else adv
    logs = model.fit(X, Y, batch_size=B, epochs=1, shuffle=False, verbose=0).history
    for got, start, g in zip(params(model), (E, W, b), total):
        np.testing.assert_allclose(got, start - LR * g, rtol=1e-5, atol=1e-6)
    # The embedding came back from its perturbation: only the SGD step moved it.
    assert not np.allclose(params(model)[0], E + delta - LR * total[0], atol=1e-3)
    assert logs["loss"][0] == pytest.approx(loss, rel=1e-5)


def test_fgm_differs_from_plain_training_and_can_be_removed():
    plain = fit_one_step(make_model(), False)
    plain.fit(X, Y, batch_size=B, verbose=0, shuffle=False)
    fgm = adversarial_training(fit_one_step(make_model(), False), epsilon=1.0)
    fgm.fit(X, Y, batch_size=B, verbose=0, shuffle=False)
    assert not np.allclose(params(plain)[1], params(fgm)[1])
    # After removal, a step is plain SGD again.
    remove_training_tricks(fgm)
    start = params(fgm)
    _, grads = loss_and_grads(*start)
    fgm.fit(X, Y, batch_size=B, verbose=0, shuffle=False)
    for got, s, g in zip(params(fgm), start, grads):
        np.testing.assert_allclose(got, s - LR * g, rtol=1e-5, atol=1e-6)


def test_fgm_survives_overflowing_loss_scale_and_restores_exactly():
    model = make_model()
    inner = keras.optimizers.SGD(LR)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0 ** 120),
                  loss="mse")
    adversarial_training(model, epsilon=1.0)
    start = params(model)
    model.fit(X, Y * 1e6, batch_size=B, verbose=0, shuffle=False)
    # The scaled gradient overflows: the step is skipped and the embedding,
    # perturbed and restored in between, is bit-for-bit what it was.
    for got, s in zip(params(model), start):
        np.testing.assert_array_equal(got, s)
    assert float(to_np(model.optimizer.dynamic_scale)) < 2.0 ** 120


def penalised(flat, shapes, epsilon):
    pieces, i = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        pieces.append(flat[i:i + n].reshape(shape))
        i += n
    loss, grads = loss_and_grads(*pieces)
    return loss + 0.5 * epsilon * np.sum(grads[0] ** 2)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_gradient_penalty_step_matches_finite_differences(jit_compile):
    model = fit_one_step(make_model(), jit_compile)
    gradient_penalty(model, "Embedding-Token", epsilon=2.0)
    start = params(model)
    shapes = [p.shape for p in start]
    flat = np.concatenate([p.ravel() for p in start])
    h = 1e-6
    grad = np.array([(penalised(flat + h * e, shapes, 2.0) - penalised(flat - h * e, shapes, 2.0))
                     / (2 * h) for e in np.eye(flat.size)])
    logs = model.fit(X, Y, batch_size=B, epochs=1, shuffle=False, verbose=0).history
    got = np.concatenate([p.ravel() for p in params(model)])
    np.testing.assert_allclose(got, flat - LR * grad, rtol=1e-4, atol=1e-6)
    # The penalty changes the step: it is not plain SGD.
    _, plain = loss_and_grads(*start)
    assert not np.allclose(got, flat - LR * np.concatenate([g.ravel() for g in plain]), atol=1e-5)
    assert logs["loss"][0] == pytest.approx(penalised(flat, shapes, 2.0), rel=1e-5)


def test_unknown_embedding_layer_is_reported():
    with pytest.raises(ValueError):
        adversarial_training(make_model(), "Embedding-Missing")


def test_fgm_with_tiger_on_a_tiny_bert():
    from kerasnlp4su import build_transformer_model
    from kerasnlp4su.optimizers import Tiger

    keras.utils.set_random_seed(0)
    bert = build_transformer_model(vocab_size=20, hidden_size=8, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=16,
                                   max_position_embeddings=8, type_vocab_size=2,
                                   hidden_act="gelu", with_pool=True)
    outputs = keras.layers.Dense(2, name="Head")(bert.output)
    model = TransformerModel(bert.inputs, outputs)
    tiger = Tiger(learning_rate=1e-2, grad_accum_steps=2)
    model.compile(optimizer=tiger, loss="sparse_categorical_crossentropy")
    adversarial_training(model, "Embedding-Token", epsilon=0.5)
    tokens = RNG.integers(1, 20, size=(8, 6)).astype("int32")
    segments = np.zeros_like(tokens)
    labels = RNG.integers(0, 2, size=(8,)).astype("int32")
    before = to_np(model.get_layer("Embedding-Token").embeddings)
    logs = model.fit([tokens, segments], labels, batch_size=4, epochs=2, verbose=0).history
    after = to_np(model.get_layer("Embedding-Token").embeddings)
    assert np.all(np.isfinite(logs["loss"])) and not np.allclose(before, after)
    kinds = dict(zip([v.path for v in model.trainable_weights], tiger._kinds))
    assert kinds["Embedding-Token/embeddings"] == "embedding"
    assert kinds["Embedding-Norm/gamma"] == "scale" and kinds["Embedding-Norm/beta"] == "bias"
    assert kinds["Transformer-0-FeedForward/output/kernel"] == "matrix"
    # Four micro-steps (two Tiger updates with k=2).
    assert int(to_np(tiger.iterations)) == 4
