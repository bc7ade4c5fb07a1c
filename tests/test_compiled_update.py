"""extend_with_compiled_update and extend_with_dense_gradients against uncompiled references."""

import doctest
import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

from backend_utils import subprocess_env, to_np
from test_optimizers import adam_reference
from kerasnlp4su.optimizers import (
    AdamW,
    extend_with_compiled_update,
    extend_with_dense_gradients,
    extend_with_gradient_accumulation,
    extend_with_weight_decay,
)

ON_TF = keras.backend.backend() == "tensorflow"


def embedding_model(seed=4):
    """Embedding (IndexedSlices gradients on TF) -> LayerNorm -> pooled Dense; any length."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(11, 6, name="Embedding-Token")(inputs)
    h = keras.layers.LayerNormalization(name="Norm")(h)
    h = keras.layers.Dense(5, activation="tanh", name="dense_a")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(1, name="dense_b")(h))


def batches(lengths, batch=4, seed=5):
    rng = np.random.default_rng(seed)
    for n in lengths:
        x = rng.integers(0, 11, (batch, n)).astype("int32")
        yield x, (x.mean(-1, keepdims=True) / 10).astype("float32")


def train(optimizer, lengths=(6, 6, 9, 3, 6)):
    model = embedding_model()
    model.compile(optimizer=optimizer, loss="mse")  # TF: an uncompiled tf.function step
    losses = [float(model.train_on_batch(x, y)) for x, y in batches(lengths)]
    return model, [to_np(w) for w in model.trainable_variables], losses


def assert_same_training(make_plain, make_compiled):
    _, want, want_loss = train(make_plain())
    _, got, got_loss = train(make_compiled())
    start = [to_np(w) for w in embedding_model().trainable_variables]
    for a, b, s in zip(got, want, start):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(a, s)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)


@pytest.mark.backend_core
@pytest.mark.parametrize("make", [
    lambda: extend_with_dense_gradients(keras.optimizers.Adam)(learning_rate=0.1),
    lambda: AdamW(learning_rate=0.1, weight_decay_rate=0.0),
    lambda: extend_with_compiled_update(keras.optimizers.Adam)(learning_rate=0.1),
])
def test_repeated_token_gradients_are_summed_before_adam(make):
    # Row 0 twice and row 2 once, as an embedding's gradient for tokens [0, 0, 2].
    rows = np.array([[1.0, -2.0], [3.0, 0.5], [0.25, 1.0]], "float32")
    indices = np.array([0, 0, 2])
    dense = np.zeros((4, 2), "float32")
    np.add.at(dense, indices, rows)
    start = np.random.default_rng(6).normal(size=(4, 2)).astype("float32")
    variable = keras.Variable(start)
    opt = make()
    for _ in range(2):
        if ON_TF:
            import tensorflow as tf

            grad = tf.IndexedSlices(tf.constant(rows), tf.constant(indices), tf.constant([4, 2]))
        else:
            grad = keras.ops.convert_to_tensor(dense)
        opt.apply([grad], [variable])
    want = adam_reference([start.astype("float64")], [[dense], [dense]], lambda t: 0.1)[-1][0]
    np.testing.assert_allclose(to_np(variable), want, rtol=1e-5, atol=1e-6)


@pytest.mark.backend_core
def test_compiled_adamw_matches_uncompiled_adamw_step_for_step():
    kwargs = dict(learning_rate=0.02, weight_decay=0.01)
    assert_same_training(lambda: extend_with_dense_gradients(keras.optimizers.AdamW)(**kwargs),
                         lambda: extend_with_compiled_update(keras.optimizers.AdamW)(**kwargs))


@pytest.mark.backend_core
def test_compiled_update_composes_with_accumulation_and_weight_decay():
    def plain():
        return extend_with_gradient_accumulation(extend_with_weight_decay(keras.optimizers.Adam))

    kwargs = dict(learning_rate=0.03, grad_accum_steps=2, weight_decay_rate=0.05,
                  exclude_from_weight_decay=["Norm", "bias"])
    assert_same_training(lambda: plain()(**kwargs),
                         lambda: extend_with_compiled_update(plain())(**kwargs))


@pytest.mark.backend_core
def test_compiled_update_with_clipping_and_schedule():
    def kwargs():
        schedule = keras.optimizers.schedules.PolynomialDecay(0.05, 4, 0.01)
        return dict(learning_rate=schedule, global_clipnorm=0.1)

    assert_same_training(lambda: extend_with_dense_gradients(keras.optimizers.Adam)(**kwargs()),
                         lambda: extend_with_compiled_update(keras.optimizers.Adam)(**kwargs()))


@pytest.mark.skipif(not ON_TF, reason="the compiled path is TensorFlow's; elsewhere it is base")
def test_batches_of_any_length_share_one_compiled_update():
    # Keras retraces its train step once, for a shape-relaxed graph, on the
    # second length; after that no new length may compile a new update.
    opt = extend_with_compiled_update(keras.optimizers.AdamW)(learning_rate=0.01)
    model = embedding_model()
    model.compile(optimizer=opt, loss="mse")
    for x, y in batches((3, 7)):
        model.train_on_batch(x, y)
    settled = opt._programs.traces
    assert 1 <= settled <= 2
    for x, y in batches((12, 5, 9, 2)):
        model.train_on_batch(x, y)
    assert opt._programs.traces == settled
    assert len(opt._programs.by_variables) == 1


def test_eager_apply_and_bad_arguments():
    model = embedding_model()
    variables = model.trainable_variables
    grads = [np.full(v.shape, 0.5, "float32") for v in variables]
    compiled = extend_with_compiled_update(keras.optimizers.SGD)(learning_rate=0.1)
    start = [to_np(v) for v in variables]
    compiled.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    for v, s in zip(variables, start):
        np.testing.assert_allclose(to_np(v), s - 0.05, rtol=1e-6, atol=1e-6)
    assert int(to_np(compiled.iterations)) == 1
    compiled.apply([keras.ops.convert_to_tensor(g) for g in grads])  # built: variables known
    for v, s in zip(variables, start):
        np.testing.assert_allclose(to_np(v), s - 0.1, rtol=1e-6, atol=1e-6)
    if ON_TF:
        with pytest.raises(ValueError, match="got 1 gradients for"):
            compiled.apply([keras.ops.convert_to_tensor(grads[0])], variables)
        fresh = extend_with_compiled_update(keras.optimizers.SGD)()
        with pytest.raises(ValueError, match="needs a built optimizer"):
            fresh.apply([keras.ops.convert_to_tensor(grads[0])])


@pytest.mark.backend_core
def test_compiled_optimizer_survives_keras_saving():
    Fast = extend_with_compiled_update(keras.optimizers.AdamW)
    assert extend_with_compiled_update(keras.optimizers.AdamW) is Fast
    model, weights, _ = train(Fast(learning_rate=0.01, weight_decay=0.02))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.optimizer) is Fast
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_allclose(to_np(loaded.optimizer.iterations), 5)
    for a, b in zip(loaded.trainable_variables, weights):
        np.testing.assert_allclose(to_np(a), b)
    # Training goes on from the restored slots, through a fresh compiled program.
    x, y = next(batches([6], seed=9))
    loaded.train_on_batch(x, y)
    assert int(to_np(loaded.optimizer.iterations)) == 6


def test_docstring_examples_run():
    from kerasnlp4su.optimizers import compiled, extensions

    for module in (compiled, extensions):
        result = doctest.testmod(module, extraglobs={"np": np})
        assert result.failed == 0 and result.attempted >= 2, module.__name__


MIRRORED_SCRIPT = r'''
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from kerasnlp4su.optimizers import extend_with_compiled_update
out = []
for mirrored in (False, True):
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if mirrored
                else tf.distribute.get_strategy())
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((5,), dtype="int32")
        h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(11, 6)(inputs))
        model = keras.Model(inputs, keras.layers.Dense(1)(h))
        model.compile(optimizer=extend_with_compiled_update(keras.optimizers.AdamW)(0.01),
                      loss="mse")
    x = np.random.default_rng(0).integers(0, 11, (8, 5))
    model.fit(x, np.ones((8, 1)), batch_size=8, epochs=3, verbose=0, shuffle=False)
    out.append({"traces": model.optimizer._programs.traces,
                "weights": [w.numpy().ravel().tolist() for w in model.trainable_variables]})
print(json.dumps(out))
'''


@pytest.mark.skipif(not ON_TF, reason="tf.distribute is TensorFlow's")
def test_mirrored_strategy_runs_the_plain_update_with_the_same_result():
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True,
                          env=subprocess_env("tensorflow"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single, mirrored = json.loads(proc.stdout.strip().splitlines()[-1])
    assert single["traces"] == 1 and mirrored["traces"] == 0
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
