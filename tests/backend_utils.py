"""Backend-neutral helpers for tests: numpy conversion, input gradients, subprocess environments."""

import os

import keras
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(backend):
    """`os.environ` for a child Python on `backend` that imports this checkout's package
    (even where it is not pip-installed), with TensorFlow's C++ logging quiet."""
    pythonpath = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=pythonpath)


def to_np(x):
    """Any backend tensor or Keras variable -> numpy array."""
    if isinstance(x, keras.Variable):
        x = x.value
    if hasattr(x, "detach"):  # torch parameters and tensors that require grad
        x = x.detach()
    return np.asarray(keras.ops.convert_to_numpy(x))


def gradient(fn, x):
    """d fn(x) / dx for a scalar-valued `fn` of one float32 numpy input, on any backend."""
    backend = keras.backend.backend()
    x = np.asarray(x, "float32")
    if backend == "tensorflow":
        import tensorflow as tf

        t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = fn(t)
        return tape.gradient(y, t).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda t: fn(t))(x))
    if backend == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        fn(t).backward()
        return t.grad.detach().cpu().numpy()
    raise NotImplementedError(backend)
