"""One call that runs the checks every layer owes the project.

`check_layer(layer_cls, init_kwargs, input_data, expected_output_shape)`
builds the layer, perturbs its weights (so zero-initialised tables and
biases are exercised) and checks, on the current Keras backend:

- eager call: output shape(s);
- symbolic call inside a functional model (sequence axis unknown where the
  input has rank >= 3): symbolic shape, and `predict` (a compiled graph on
  TensorFlow) equals the eager call;
- `get_config` / `from_config` round trip; a `.keras` save/load with
  `safe_mode=True` and a `.weights.h5` round trip into a clone, outputs equal;
- the `mixed_bfloat16` policy: it runs, the output dtype is the documented one,
  variables stay float32, values are close to float32;
- (TensorFlow only, see below) gradients of a random projection of the outputs (plus any loss the layer
  adds) with respect to the float inputs and every trainable weight, against
  central finite differences along one random direction per array, in float64;
- one training step of a model holding the layer (`mse` on its outputs, or
  only the losses the layer adds) is finite and moves the weights.

The JAX and PyTorch runs are not started from here: `tests/test_backends.py`
runs every `test_layer_harness*` test of the layer test files (`conftest.py`
marks them `backend_core`) in child processes on each backend.

Example (one line in a layer's test file):
    check_layer(Dense, {"units": 3}, np.ones((2, 4, 5), "float32"), (2, 4, 3))
"""

import contextlib
import os
import tempfile
import warnings

import keras
import numpy as np
from keras import ops

from backend_utils import to_np

MASKED_MAGNITUDE = 1e4  # |value| above this is a masked cell, compared by sign only


def check_layer(layer_cls, init_kwargs, input_data, expected_output_shape=None, *,
                mask=None, call_kwargs=None, supports_masking=None, symbolic_shapes=None,
                mixed_output_dtype="bfloat16", mixed_tolerance=0.05, gradient_check=True,
                gradient_tolerance=1e-4, differentiable_inputs=None, fit=True, fit_loss=None,
                fit_targets=None, seed=0):
    """Run the shared checks on `layer_cls(**init_kwargs)` called on `input_data`.

    Args:
        input_data: one numpy array or a list of them (the layer then gets a list).
        expected_output_shape: a tuple, or a list of tuples for a list output.
        mask: optional Keras mask passed as `mask=` (a boolean model input when symbolic).
        call_kwargs: extra plain (non-tensor) keyword arguments of `call`.
        supports_masking: when given, `layer.supports_masking` must equal it.
        symbolic_shapes: shapes (without batch) of the functional model's inputs;
            default: the data's, with the sequence axis None for rank >= 3.
        mixed_output_dtype: the documented output dtype under `mixed_bfloat16`
            (None skips the mixed-precision check).
        mixed_tolerance: bf16 output vs float32, relative to the largest real |value|.
        gradient_check: compare autodiff with float64 central differences.
        differentiable_inputs: indices of the inputs to differentiate
            (default: every float input).
        fit: run one training step (default loss: `mse` against random targets).
        fit_loss: `fit_loss(layer)` gives the loss to compile with instead (e.g.
            `lambda crf: crf.sparse_loss`); `fit_targets` are then its targets.
    Returns the float32 layer (built, with perturbed weights) for further checks.
    """
    rng = np.random.default_rng(seed)
    inputs = list(input_data) if isinstance(input_data, (list, tuple)) else [input_data]
    is_list = isinstance(input_data, (list, tuple))
    call_kwargs = dict(call_kwargs or {})
    layer = layer_cls(**init_kwargs)
    if supports_masking is not None:
        assert layer.supports_masking == supports_masking, (layer_cls.__name__, layer.supports_masking)

    def call(target, arrays, **extra):
        args = list(arrays) if is_list else arrays[0]
        kwargs = dict(call_kwargs, **extra)
        if mask is not None:
            kwargs["mask"] = mask
        return target(args, **kwargs)

    call(layer, inputs)  # builds
    _perturb_weights(layer, rng)
    eager = _as_list(call(layer, inputs))
    expected = (expected_output_shape if isinstance(expected_output_shape, list)
                else [expected_output_shape])
    if expected_output_shape is not None:
        assert [tuple(o.shape) for o in eager] == [tuple(s) for s in expected], \
            f"{layer_cls.__name__}: eager output shapes {[tuple(o.shape) for o in eager]} != {expected}"
    eager = [to_np(o) for o in eager]

    model, model_inputs = _functional_model(layer, inputs, is_list, mask, call_kwargs, symbolic_shapes)
    feed = inputs + ([mask] if mask is not None else [])
    for symbolic, want in zip(_as_list(model.outputs), expected if expected_output_shape else []):
        assert len(symbolic.shape) == len(want) and all(
            s is None or s == w for s, w in zip(symbolic.shape[1:], want[1:])), \
            f"{layer_cls.__name__}: symbolic output shape {symbolic.shape} vs {want}"
    _assert_same(_predict(model, feed, compiled=True), eager, layer_cls.__name__ + " predict vs eager", atol=1e-5)

    _check_serialization(layer, model, feed, eager)
    if mixed_output_dtype is not None:
        _check_mixed_precision(layer, inputs, call, eager, mixed_output_dtype, mixed_tolerance)
    # On PyTorch and JAX, parts of a float64 layer were seen computing at
    # float32 precision (Dense/LayerNormalization outputs ~2e-7 off NumPy; the
    # cause is not yet pinned down), so float64 central differences cannot be
    # trusted there: the gradient check runs on TensorFlow.
    if gradient_check and keras.backend.backend() == "tensorflow":
        _check_gradients(layer, inputs, call, rng, gradient_tolerance,
                         differentiable_inputs)
    if fit:
        _check_fit_step(model, feed, rng, fit_loss and fit_loss(layer), fit_targets)
    return layer


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _is_float(x):
    return "float" in keras.backend.standardize_dtype(x.dtype)


def _perturb_weights(layer, rng):
    for w in layer.weights:
        if _is_float(w):
            w.assign(to_np(w) + 0.3 * rng.standard_normal(w.shape).astype(w.dtype))


def _functional_model(layer, inputs, is_list, mask, call_kwargs, symbolic_shapes):
    shapes = symbolic_shapes or [
        (None,) + x.shape[2:] if x.ndim >= 3 else x.shape[1:] for x in inputs]
    model_inputs = [keras.Input(shape, dtype=x.dtype) for shape, x in zip(shapes, inputs)]
    kwargs = dict(call_kwargs)
    extra = []
    if mask is not None:
        mask_shape = (None,) + mask.shape[2:] if mask.ndim >= 2 and symbolic_shapes is None else mask.shape[1:]
        extra = [keras.Input(mask_shape, dtype="bool")]
        kwargs["mask"] = extra[0]
    outputs = layer(model_inputs if is_list else model_inputs[0], **kwargs)
    all_inputs = model_inputs + extra
    return keras.Model(all_inputs if len(all_inputs) > 1 else all_inputs[0], outputs), all_inputs


def _predict(model, feed, compiled=False):
    """Model outputs as numpy; `compiled=True` goes through `predict` (a traced graph on TF)."""
    x = feed if len(feed) > 1 else feed[0]
    if compiled:
        return [np.asarray(o) for o in _as_list(model.predict(x, verbose=0, batch_size=len(feed[0])))]
    return [to_np(o) for o in _as_list(model(x))]


def _assert_same(got, want, what, atol):
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, "float64"), np.asarray(w, "float64"), atol=atol,
                                   rtol=1e-5, err_msg=what)


def _check_serialization(layer, model, feed, eager):
    name = type(layer).__name__
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config, f"{name}: from_config(get_config())"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        _assert_same(_predict(restored, feed, compiled=_eager_is_slow()), eager, f"{name}: .keras round trip",
                     atol=1e-6)
        weights = os.path.join(tmp, "model.weights.h5")
        model.save_weights(weights)
        clone = keras.models.clone_model(model)
        clone.load_weights(weights)
        _assert_same(_predict(clone, feed, compiled=_eager_is_slow()), eager, f"{name}: .weights.h5 round trip",
                     atol=1e-6)


def _with_dtype(layer, dtype):
    return type(layer).from_config({**layer.get_config(), "dtype": dtype})


def _check_mixed_precision(layer, inputs, call, eager, output_dtype, tolerance):
    name = type(layer).__name__
    mixed = _with_dtype(layer, "mixed_bfloat16")
    call(mixed, inputs)
    mixed.set_weights(layer.get_weights())
    if _eager_is_slow():
        import jax

        outputs = _as_list(jax.jit(lambda *arrays: call(mixed, list(arrays)))(*inputs))
    else:
        outputs = _as_list(call(mixed, inputs))
    for w in mixed.weights:
        if _is_float(w):
            assert keras.backend.standardize_dtype(w.dtype) == "float32", f"{name}: {w.path} is {w.dtype}"
    for out, want in zip(outputs, eager):
        if not _is_float(out):
            continue
        assert keras.backend.standardize_dtype(out.dtype) == output_dtype, \
            f"{name}: mixed_bfloat16 output dtype {out.dtype}, documented {output_dtype}"
        got = to_np(ops.cast(out, "float32"))
        masked = np.abs(want) >= MASKED_MAGNITUDE
        assert np.all(np.isfinite(got)), f"{name}: non-finite output under mixed_bfloat16"
        assert np.all(np.sign(got[masked]) == np.sign(want[masked])), f"{name}: masked cells under bf16"
        assert np.all(np.abs(got[masked]) >= MASKED_MAGNITUDE), f"{name}: masked cells under bf16"
        if (~masked).any():
            scale = max(1.0, np.abs(want[~masked]).max())
            np.testing.assert_allclose(got[~masked], want[~masked], atol=tolerance * scale,
                                       err_msg=f"{name}: mixed_bfloat16 vs float32")


@contextlib.contextmanager
def _float64_enabled():
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def _check_gradients(layer, inputs, call, rng, tolerance, differentiable_inputs):
    name = type(layer).__name__
    with _float64_enabled():
        layer64 = _with_dtype(layer, "float64")
        cast = [x.astype("float64") if np.issubdtype(x.dtype, np.floating) else x for x in inputs]
        call(layer64, cast)
        layer64.set_weights([np.asarray(w, "float64") if np.issubdtype(np.asarray(w).dtype, np.floating)
                             else w for w in layer.get_weights()])
        which = (differentiable_inputs if differentiable_inputs is not None
                 else [i for i, x in enumerate(cast) if np.issubdtype(x.dtype, np.floating)])
        trainable = [to_np(w) for w in layer64.trainable_variables]
        non_trainable = [v.value for v in layer64.non_trainable_variables]
        outputs = _as_list(call(layer64, cast))
        projections = [ops.convert_to_tensor(rng.standard_normal(o.shape), "float64")
                       if _is_float(o) else None for o in outputs]

        def objective(*arrays):
            xs = list(cast)
            for i, a in zip(which, arrays[:len(which)]):
                xs[i] = a
            # Explicit float64 tensors: Keras converts raw NumPy layer inputs to floatx.
            xs = [ops.convert_to_tensor(x, "float64") if i in which or _is_float(x) else x
                  for i, x in enumerate(xs)]
            outs, _, losses = _stateless(layer64, arrays[len(which):], non_trainable, xs, call)
            total = sum(ops.sum(ops.where(ops.abs(o) < MASKED_MAGNITUDE, o, 0.0) * p)
                        for o, p in zip(outs, projections) if p is not None)
            return total + sum(ops.sum(loss) for loss in losses)

        arrays = [cast[i] for i in which] + trainable
        labels = [f"input {i}" for i in which] + [w.path for w in layer64.trainable_variables]
        grads = _gradients(objective, arrays)
        step_size = 1e-6
        # One random direction per input and one over all weights together:
        # the directional derivative from autodiff (grad . v) against central
        # differences along v. A wrong entry shows up in the projection; two
        # evaluations per group keep eager backends fast.
        groups = [(label, [k]) for k, label in enumerate(labels[:len(which)])]
        if len(arrays) > len(which):
            groups.append(("the trainable weights " + ", ".join(labels[len(which):]),
                           list(range(len(which), len(arrays)))))
        for label, members in groups:
            directions = {k: rng.standard_normal(arrays[k].shape) for k in members}
            step = step_size * max(1.0, max(float(np.abs(arrays[k]).max()) for k in members))
            shifted = [[a + sign * step * directions[k] if k in directions else a
                        for k, a in enumerate(arrays)] for sign in (1, -1)]
            numeric = (float(to_np(objective(*shifted[0]))) - float(to_np(objective(*shifted[1])))) / (2 * step)
            analytic = sum(float(np.sum(grads[k] * v)) for k, v in directions.items())
            assert abs(analytic - numeric) <= tolerance * max(1.0, abs(numeric)), \
                f"{name}: derivative along a random direction of {label}: autodiff {analytic:.8g}, " \
                f"finite differences {numeric:.8g}"
        assert arrays, f"{name}: nothing to differentiate"


def _stateless(layer, trainable, non_trainable, arrays, call):
    """Outputs and added losses of `layer` run with the given weight values (differentiable)."""
    captured = {}
    call(lambda args, **kwargs: captured.update(args=args, kwargs=kwargs), arrays)
    outputs, non_trainable, losses = layer.stateless_call(
        list(trainable), list(non_trainable), captured["args"], return_losses=True, **captured["kwargs"])
    return _as_list(outputs), non_trainable, losses


def _gradients(fn, arrays):
    """d fn / d each array (numpy float64 in, numpy out), on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            y = fn(*tensors)
        return [np.zeros_like(a) if g is None else to_np(g) for a, g in zip(arrays, tape.gradient(y, tensors))]
    if backend == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(fn, argnums=tuple(range(len(arrays))))(*arrays)]
    if backend == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
        fn(*tensors).backward()
        return [np.zeros_like(a) if t.grad is None else t.grad.detach().cpu().numpy()
                for a, t in zip(arrays, tensors)]
    raise NotImplementedError(backend)


def _eager_is_slow():
    """JAX runs an eager call op by op, compiling each op for its shapes: for a layer that costs several
    times one compile of the whole function, so the JAX leg checks eager calls once and compiles the rest."""
    return keras.backend.backend() == "jax"


def _check_fit_step(model, feed, rng, loss_fn, targets):
    name = model.layers[-1].__class__.__name__
    before = [to_np(w) for w in model.trainable_weights]
    with warnings.catch_warnings():
        # A weightless layer (a pooling, a `Loss`) still gets its step run: Keras says
        # there is nothing to train, which is the point here, not a problem.
        warnings.filterwarnings("ignore", "The model does not have any trainable weights")
        loss = _one_training_step(model, feed, rng, loss_fn, targets)
    loss = float(np.ravel(loss)[0])
    assert np.isfinite(loss), f"{name}: fit step loss {loss}"
    after = [to_np(w) for w in model.trainable_weights]
    if before:
        assert any(np.any(a != b) for a, b in zip(after, before)), f"{name}: fit step left weights unchanged"


def _one_training_step(model, feed, rng, loss_fn, targets):
    x = feed if len(feed) > 1 else feed[0]
    sgd = keras.optimizers.SGD(0.05)
    if loss_fn is not None:
        model.compile(optimizer=sgd, run_eagerly=not _eager_is_slow(), loss=loss_fn)
        return model.train_on_batch(x, targets)
    if model.losses:  # the layer adds its own loss (e.g. a `Loss` layer)
        model.compile(optimizer=sgd, run_eagerly=not _eager_is_slow())
        return model.train_on_batch(x)
    outputs = _as_list(model.outputs)
    targets = [rng.standard_normal((len(feed[0]),) + tuple(
        s for s in o.shape[1:])) if None not in o.shape[1:] else None for o in outputs]
    if any(t is None for t in targets):
        targets = [np.random.default_rng(0).standard_normal(p.shape) for p in _predict(model, feed)]
    model.compile(optimizer=sgd, run_eagerly=not _eager_is_slow(), loss=["mse"] * len(outputs))
    return model.train_on_batch(x, targets if len(targets) > 1 else targets[0])
