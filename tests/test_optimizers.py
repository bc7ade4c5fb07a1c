"""Optimizers and extensions against NumPy re-derivations of their update rules."""

import os
import tempfile

import keras
import numpy as np
import pytest

from backend_utils import to_np
from kerasnlp4su.optimizers import (
    AdamW,
    Lion,
    PiecewiseLinearSchedule,
    Tiger,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_parameter_wise_lr,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
    layerwise_lr_decay,
)

RNG = np.random.default_rng(0)
FIT_X = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")


def np_piecewise(t, schedule):
    points = sorted(schedule.items())
    if points[0][0] != 0:
        points = [(0, 0.0)] + points
    return float(np.interp(t, [p[0] for p in points], [p[1] for p in points]))


def make_variables():
    """One weight of each Tiger kind; keras.Variable paths are their names here."""
    return {
        "kernel": RNG.normal(size=(3, 4)).astype("float32") * 0.1,
        "zero_kernel": np.zeros((2, 3), "float32"),  # exercises the RMS floor
        "bias": RNG.normal(size=(4,)).astype("float32") * 0.1,
        "gamma": (1 + 0.1 * RNG.normal(size=(4,))).astype("float32"),
        "embeddings": RNG.normal(size=(5, 4)).astype("float32") * 0.05,
    }


def run(optimizer, values, grads_per_step):
    variables = [keras.Variable(v, name=n) for n, v in values.items()]
    history = []
    for grads in grads_per_step:
        optimizer.apply([keras.ops.convert_to_tensor(grads[n]) for n in values], variables)
        history.append({n: to_np(v) for n, v in zip(values, variables)})
    return history


def tiger_reference(values, grads_per_step, lr, beta, wd, k, schedule, shrink, min_rms):
    """Su's Tiger (bojone/tiger), re-derived in NumPy, plus the RMS floor."""
    w = {n: v.astype("float64") for n, v in values.items()}
    m = {n: np.zeros_like(v) for n, v in w.items()}
    history = []
    for t, grads in enumerate(grads_per_step):
        lr_t = lr * (np_piecewise(t, schedule) if schedule else 1.0)
        lr_t = lr_t if (t + 1) % k == 0 else 0.0
        for n in w:
            g = grads[n].astype("float64")
            if not np.all(np.isfinite(g)):
                c = 1.0 if n == "gamma" else 0.0
                w[n] = (w[n] - c) * shrink + c
                continue
            m[n] = (beta if t % k == 0 else 1.0) * m[n] + (1 - beta) / k * g
            if n in ("bias", "gamma"):
                eta, d = 0.5 * lr_t, 0.0
            elif n == "embeddings":
                rms = np.sqrt((w[n] ** 2).mean(-1, keepdims=True))
                eta, d = lr_t * np.maximum(rms, min_rms), wd
            else:
                eta, d = lr_t * max(np.sqrt((w[n] ** 2).mean()), min_rms), wd
            w[n] = w[n] - eta * (np.sign(m[n]) + d * w[n])
        history.append({n: v.copy() for n, v in w.items()})
    return history


def random_grads(values, steps):
    return [{n: RNG.normal(size=v.shape).astype("float32") for n, v in values.items()}
            for _ in range(steps)]


@pytest.mark.parametrize("k", [1, 3])
def test_tiger_matches_numpy_reference(k):
    values = make_variables()
    grads = random_grads(values, 3 * k + 1)
    kwargs = dict(learning_rate=0.01, beta=0.9, weight_decay=0.1, grad_accum_steps=k,
                  lr_schedule={2: 1.0, 6: 0.5}, shrink_ratio=0.99, min_rms=1e-3)
    got = run(Tiger(**kwargs), values, grads)
    want = tiger_reference(values, grads, 0.01, 0.9, 0.1, k, {2: 1.0, 6: 0.5}, 0.99, 1e-3)
    for step, (g, w) in enumerate(zip(got, want)):
        for n in values:
            np.testing.assert_allclose(g[n], w[n], rtol=1e-5, atol=1e-6, err_msg=f"{n}@{step}")
    # The warmup starts at 0, so the first update is a no-op only for k=1.
    moved = not np.allclose(got[-1]["kernel"], values["kernel"])
    assert moved and not np.allclose(got[-1]["zero_kernel"], 0.0)


def test_tiger_accumulation_equals_mean_gradient_and_holds_weights():
    values = make_variables()
    micro = random_grads(values, 6)
    accumulated = run(Tiger(learning_rate=0.01, grad_accum_steps=3), values, micro)
    means = [{n: np.mean([g[n] for g in micro[i:i + 3]], axis=0) for n in values}
             for i in (0, 3)]
    big = run(Tiger(learning_rate=0.01), values, means)
    for n in values:
        # Nothing moves before the last micro-step of a cycle...
        np.testing.assert_array_equal(accumulated[0][n], values[n])
        np.testing.assert_array_equal(accumulated[1][n], values[n])
        # ...and a cycle equals one step on the averaged gradient.
        np.testing.assert_allclose(accumulated[2][n], big[0][n], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(accumulated[5][n], big[1][n], rtol=1e-5, atol=1e-7)
    assert not np.allclose(big[1]["kernel"], values["kernel"])


def tiny_model(seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(8, name="dense_a")(inputs)
    h = keras.layers.LayerNormalization(name="Norm")(h)
    outputs = keras.layers.Dense(1, name="dense_b")(h)
    return keras.Model(inputs, outputs)


def test_tiger_keeps_one_variable_per_weight():
    model = tiny_model()
    tiger = Tiger(grad_accum_steps=8)
    tiger.build(model.trainable_variables)
    weights = model.trainable_variables
    slots = [v for v in tiger.variables if len(v.shape) > 0]
    scalars = [v for v in tiger.variables if len(v.shape) == 0]
    assert len(slots) == len(weights) == 6
    assert [tuple(s.shape) for s in slots] == [tuple(w.shape) for w in weights]
    assert len(scalars) == 2  # iteration counter, learning rate
    # Keras-style accumulation on Adam needs three per weight.
    adam = extend_with_gradient_accumulation(keras.optimizers.Adam)(grad_accum_steps=8)
    adam.build(model.trainable_variables)
    assert len([v for v in adam.variables if len(v.shape) > 0]) == 3 * len(weights)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        Tiger(gradient_accumulation_steps=4)


def test_tiger_nonfinite_gradient_shrinks_instead_of_corrupting():
    values = make_variables()
    grads = random_grads(values, 2)
    grads[1]["kernel"][0, 0] = np.nan
    grads[1]["gamma"][1] = np.inf
    tiger = Tiger(learning_rate=0.01, shrink_ratio=0.9)
    got = run(tiger, values, grads)
    want = tiger_reference(values, grads, 0.01, 0.965, 0.01, 1, None, 0.9, 1e-3)
    np.testing.assert_allclose(got[1]["kernel"], got[0]["kernel"] * 0.9, rtol=1e-6)
    np.testing.assert_allclose(got[1]["gamma"], (got[0]["gamma"] - 1) * 0.9 + 1, rtol=1e-6)
    for n in values:
        assert np.all(np.isfinite(got[1][n]))
        np.testing.assert_allclose(got[1][n], want[1][n], rtol=1e-5, atol=1e-6)
    momentum = dict(zip(values, [to_np(v) for v in tiger.variables[2:]]))
    assert np.all(np.isfinite(momentum["kernel"])) and np.any(momentum["kernel"] != 0)


def fit_weights(optimizer, jit_compile=False, run_eagerly=False, batch_size=4, epochs=2,
                model=None):
    model = model or tiny_model()
    x = FIT_X
    y = x.sum(-1, keepdims=True)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile,
                  run_eagerly=run_eagerly)
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return [to_np(w) for w in model.trainable_variables], hist.history["loss"]


def test_tiger_fit_with_jit_compile_matches_eager():
    jit, jit_loss = fit_weights(Tiger(learning_rate=0.05, grad_accum_steps=2), jit_compile=True)
    eager, _ = fit_weights(Tiger(learning_rate=0.05, grad_accum_steps=2), run_eagerly=True)
    start = [to_np(w) for w in tiny_model().trainable_variables]
    for a, b, s in zip(jit, eager, start):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(a, s)
    assert jit_loss[-1] < jit_loss[0]


def test_tiger_serialization_and_saving():
    tiger = Tiger(learning_rate=2e-3, beta=0.95, weight_decay=0.02, grad_accum_steps=4,
                  lr_schedule={100: 1, 200: 0.1}, min_rms=0.0)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(tiger))
    assert type(clone) is Tiger
    assert clone.get_config() == tiger.get_config()
    assert clone.lr_schedule == {100: 1.0, 200: 0.1} and clone.grad_accum_steps == 4


def lion_reference(w, grads, lr, b1, b2, wd):
    w, m, out = w.astype("float64"), np.zeros_like(w, "float64"), []
    for g in grads:
        w = w - lr * (np.sign(b1 * m + (1 - b1) * g) + wd * w)
        m = b2 * m + (1 - b2) * g
        out.append(w.copy())
    return out


def test_lion_defaults_and_update_rule():
    lion = Lion(weight_decay=0.5)
    assert (lion.beta_1, lion.beta_2) == (0.95, 0.98)
    assert np.isclose(float(to_np(lion.learning_rate)), 3e-4)
    values = {"kernel": RNG.normal(size=(3, 2)).astype("float32")}
    grads = random_grads(values, 4)
    got = run(Lion(learning_rate=0.01, weight_decay=0.5), values, grads)
    want = lion_reference(values["kernel"], [g["kernel"] for g in grads], 0.01, 0.95, 0.98, 0.5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["kernel"], w, rtol=1e-5, atol=1e-7)


def model_grads(model, steps):
    return [[RNG.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
            for _ in range(steps)]


def apply_all(optimizer, model, grads):
    out = []
    for g in grads:
        optimizer.apply([keras.ops.convert_to_tensor(x) for x in g], model.trainable_variables)
        out.append([to_np(v) for v in model.trainable_variables])
    return out


def test_weight_decay_extension_excludes_by_path():
    model = tiny_model()
    start = [to_np(v) for v in model.trainable_variables]
    paths = [v.path for v in model.trainable_variables]
    grads = model_grads(model, 3)
    SGDW = extend_with_weight_decay(keras.optimizers.SGD)
    opt = SGDW(learning_rate=0.1, weight_decay_rate=0.2, exclude_from_weight_decay=["Norm", "bias"])
    got = apply_all(opt, model, grads)
    w = [s.astype("float64") for s in start]
    for step, g in enumerate(grads):
        w = [wi - 0.1 * gi - (0 if ("Norm" in p or "bias" in p) else 0.1 * 0.2 * wi)
             for wi, gi, p in zip(w, g, paths)]
        for a, b in zip(got[step], w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert "dense_a/kernel" in paths and "Norm/gamma" in paths


def test_piecewise_linear_lr_extension():
    model = tiny_model()
    start = [to_np(v) for v in model.trainable_variables]
    grads = model_grads(model, 6)
    schedule = {2: 1.0, 4: 0.5}
    opt = extend_with_piecewise_linear_lr(keras.optimizers.SGD)(learning_rate=0.1,
                                                                 lr_schedule=schedule)
    got = apply_all(opt, model, grads)
    w = [s.astype("float64") for s in start]
    multipliers = [np_piecewise(t, schedule) for t in range(6)]
    assert multipliers == [0.0, 0.5, 1.0, 0.75, 0.5, 0.5]
    for step, g in enumerate(grads):
        w = [wi - 0.1 * multipliers[step] * gi for wi, gi in zip(w, g)]
        for a, b in zip(got[step], w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(to_np(opt.learning_rate)), 0.05, rtol=1e-6)
    assert opt.get_config()["learning_rate"] == pytest.approx(0.1)


def test_piecewise_linear_schedule():
    lr = PiecewiseLinearSchedule(2e-3, {1000: 1, 2000: 0.1})
    got = [float(to_np(lr(s))) for s in (0, 500, 1000, 1500, 2000, 5000)]
    np.testing.assert_allclose(got, [0, 1e-3, 2e-3, 1.1e-3, 2e-4, 2e-4], rtol=1e-5, atol=1e-9)
    nested = PiecewiseLinearSchedule(lr, {0: 1, 1000: 0.5})
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(nested))
    assert float(to_np(clone(1500))) == pytest.approx(1.1e-3 * 0.5, rel=1e-5)


def test_parameter_wise_lr_extension_and_layerwise_decay():
    model = tiny_model()
    start = [to_np(v) for v in model.trainable_variables]
    paths = [v.path for v in model.trainable_variables]
    grads = model_grads(model, 2)
    schedule = {"dense_a": 2.0, "bias": 0.5}
    opt = extend_with_parameter_wise_lr(keras.optimizers.SGD)(learning_rate=0.1,
                                                               paramwise_lr_schedule=schedule)
    got = apply_all(opt, model, grads)
    mult = [np.prod([v for k, v in schedule.items() if k in p]) for p in paths]
    assert mult == [2.0, 1.0, 1.0, 1.0, 1.0, 0.5]  # dense_a/bias gets 2 * 0.5
    w = [s.astype("float64") for s in start]
    for step, g in enumerate(grads):
        w = [wi - 0.1 * mi * gi for wi, gi, mi in zip(w, g, mult)]
        for a, b in zip(got[step], w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_layerwise_lr_decay_multipliers():
    inputs = keras.Input((3,), dtype="int32")
    h = keras.layers.Embedding(10, 4, name="Embedding-Token")(inputs)
    for i in range(3):
        h = keras.layers.Dense(4, name=f"Transformer-{i}-FeedForward")(h)
    h = keras.layers.Dense(2, name="Head")(h)
    schedule = layerwise_lr_decay(keras.Model(inputs, h), 0.5)
    assert schedule == {"Transformer-0-": 0.125, "Transformer-1-": 0.25,
                        "Transformer-2-": 0.5, "Embedding-": 0.0625}
    opt = extend_with_parameter_wise_lr(keras.optimizers.SGD)(paramwise_lr_schedule=schedule)
    model = keras.Model(inputs, h)
    opt.build(model.trainable_variables)
    got = dict(zip([v.path for v in model.trainable_variables], opt._lr_multipliers))
    assert got["Embedding-Token/embeddings"] == 0.0625
    assert got["Transformer-1-FeedForward/kernel"] == 0.25 and got["Head/bias"] == 1.0


def adam_reference(w, grads, lr_at, b1=0.9, b2=0.999, eps=1e-7, wd_at=None):
    m, v, out = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w], []
    for t, g in enumerate(grads):
        lr = lr_at(t)
        alpha = lr * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        new = []
        for i, (wi, gi) in enumerate(zip(w, g)):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            decay = lr * wd_at(i) * wi if wd_at else 0.0
            new.append(wi - alpha * m[i] / (np.sqrt(v[i]) + eps) - decay)
        w = new
        out.append(w)
    return out


def test_composed_extensions_adam_numbers_and_serialization():
    Composed = extend_with_weight_decay(extend_with_piecewise_linear_lr(keras.optimizers.Adam))
    again = extend_with_weight_decay(extend_with_piecewise_linear_lr(keras.optimizers.Adam))
    assert Composed is again
    assert issubclass(Composed, keras.optimizers.Adam)
    opt = Composed(learning_rate=0.01, lr_schedule={2: 1.0}, weight_decay_rate=0.1,
                   exclude_from_weight_decay=["bias"])
    model = tiny_model()
    start = [to_np(v).astype("float64") for v in model.trainable_variables]
    paths = [v.path for v in model.trainable_variables]
    grads = model_grads(model, 4)
    got = apply_all(opt, model, grads)
    want = adam_reference(start, grads, lambda t: 0.01 * np_piecewise(t, {2: 1.0}),
                          wd_at=lambda i: 0.0 if "bias" in paths[i] else 0.1)
    for a_step, b_step in zip(got, want):
        for a, b in zip(a_step, b_step):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is Composed and clone.get_config() == opt.get_config()
    assert clone.lr_schedule == {2: 1.0} and clone.weight_decay_exclusions == ["bias"]


def test_adamw_convenience_and_model_saving():
    model = tiny_model()
    opt = AdamW(learning_rate=1e-3, weight_decay_rate=0.01, exclude_from_weight_decay=["Norm"])
    fit_weights(opt, model=model, epochs=1)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is AdamW
    assert loaded.optimizer.weight_decay_exclusions == ["Norm"]
    np.testing.assert_array_equal(to_np(loaded.optimizer.iterations), 4)


@pytest.mark.parametrize("base", [keras.optimizers.SGD, keras.optimizers.Adam])
def test_gradient_accumulation_equals_big_batch(base):
    Accumulating = extend_with_gradient_accumulation(base)
    small, _ = fit_weights(Accumulating(learning_rate=0.01, grad_accum_steps=4), batch_size=2,
                           epochs=3)
    big, _ = fit_weights(base(learning_rate=0.01), batch_size=8, epochs=3)
    start = [to_np(w) for w in tiny_model().trainable_variables]
    for a, b, s in zip(small, big, start):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        assert not np.allclose(a, s)
    config = Accumulating(grad_accum_steps=4).get_config()
    assert config["grad_accum_steps"] == 4 and "gradient_accumulation_steps" not in config


def test_ema_apply_swaps_and_reset_restores_exactly():
    SGDEMA = extend_with_exponential_moving_average(keras.optimizers.SGD)
    opt = SGDEMA(learning_rate=0.1, ema_momentum=0.5)
    model = tiny_model()
    grads = model_grads(model, 3)
    raw = apply_all(opt, model, grads)
    # Keras's average starts at the first updated weights: no bias correction.
    ema = raw[0]
    for step in raw[1:]:
        ema = [0.5 * e + 0.5 * w for e, w in zip(ema, step)]
    opt.apply_ema_weights()
    for v, e, r in zip(model.trainable_variables, ema, raw[-1]):
        np.testing.assert_allclose(to_np(v), e, rtol=1e-6, atol=1e-7)
        assert not np.allclose(e, r)
    opt.reset_old_weights()
    for v, r in zip(model.trainable_variables, raw[-1]):
        np.testing.assert_array_equal(to_np(v), r)
    assert type(keras.optimizers.deserialize(keras.optimizers.serialize(opt))) is SGDEMA


def test_ema_is_not_swapped_in_at_fit_end():
    SGDEMA = extend_with_exponential_moving_average(keras.optimizers.SGD)
    model = tiny_model()
    opt = SGDEMA(learning_rate=0.05, ema_momentum=0.9)
    weights, _ = fit_weights(opt, model=model, epochs=1)
    averages = [to_np(v) for v in opt._model_variables_moving_average]
    assert not np.allclose(weights[0], averages[0])
    opt.apply_ema_weights()
    np.testing.assert_allclose(to_np(model.trainable_variables[0]), averages[0])


def _extension_optimizers():
    Accumulating = extend_with_gradient_accumulation(keras.optimizers.Adam)
    return {
        "weight_decay": lambda: extend_with_weight_decay(keras.optimizers.SGD)(
            learning_rate=0.05, weight_decay_rate=0.3, exclude_from_weight_decay=["Norm"]),
        "piecewise_lr": lambda: extend_with_piecewise_linear_lr(keras.optimizers.Adam)(
            learning_rate=0.05, lr_schedule={2: 1.0, 5: 0.2}),
        "parameter_wise_lr": lambda: extend_with_parameter_wise_lr(keras.optimizers.SGD)(
            learning_rate=0.05, paramwise_lr_schedule={"dense_a": 3.0, "bias": 0.1}),
        "accumulation": lambda: Accumulating(learning_rate=0.05, grad_accum_steps=2),
        "ema": lambda: extend_with_exponential_moving_average(keras.optimizers.SGD)(
            learning_rate=0.05, ema_momentum=0.5),
        "lion": lambda: Lion(learning_rate=0.01, weight_decay=0.1),
        "adamw": lambda: AdamW(learning_rate=0.05, weight_decay_rate=0.1,
                               exclude_from_weight_decay=["bias"]),
        "composed": lambda: extend_with_parameter_wise_lr(extend_with_weight_decay(
            extend_with_piecewise_linear_lr(Accumulating)))(
                learning_rate=0.05, grad_accum_steps=2, lr_schedule={3: 1.0},
                weight_decay_rate=0.1, paramwise_lr_schedule={"dense_b": 0.5}),
    }


@pytest.mark.parametrize("name", sorted(_extension_optimizers()))
def test_extensions_in_fit_with_jit_compile_match_eager(name):
    # The eager updates are checked against NumPy above; the compiled fit()
    # step (XLA on TF and JAX, torch.compile on PyTorch) must give the same
    # weights.
    make = _extension_optimizers()[name]
    jit, losses = fit_weights(make(), jit_compile=True, epochs=1)
    eager, _ = fit_weights(make(), run_eagerly=True, epochs=1)
    start = [to_np(w) for w in tiny_model().trainable_variables]
    for a, b in zip(jit, eager):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jit[0], start[0]) and np.all(np.isfinite(losses))


def test_tiger_fit_on_an_embedding_model_with_jit_compile():
    # Embedding gradients arrive as IndexedSlices on TensorFlow; Tiger's
    # row-wise RMS must see the dense gradient under XLA too.
    def model():
        keras.utils.set_random_seed(2)
        inputs = keras.Input((3,), dtype="int32")
        h = keras.layers.Embedding(7, 4, name="Embedding-Token")(inputs)
        h = keras.layers.GlobalAveragePooling1D()(h)
        return keras.Model(inputs, keras.layers.Dense(1, name="out")(h))

    x = np.random.default_rng(3).integers(0, 7, (8, 3)).astype("int32")
    y = x.sum(-1, keepdims=True).astype("float32") / 10
    results = []
    for jit in (True, False):
        m = model()
        m.compile(optimizer=Tiger(learning_rate=0.05, grad_accum_steps=2), loss="mse",
                  jit_compile=jit, run_eagerly=not jit)
        m.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
        results.append([to_np(w) for w in m.trainable_variables])
    start = [to_np(w) for w in model().trainable_variables]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0][0], start[0])
