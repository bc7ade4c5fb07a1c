"""Backend-neutral helpers for tests: numpy conversion, input gradients, subprocess environments."""

import os
import site

import keras
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_root():
    """The folder this process imports `kerasnlp4su` from when a child interpreter would not find it
    there by itself (a checkout, an editable install), else None (an installed wheel in site-packages)."""
    import kerasnlp4su

    root = os.path.dirname(os.path.dirname(os.path.realpath(kerasnlp4su.__file__)))
    installed = {os.path.realpath(p) for p in site.getsitepackages() + [site.getusersitepackages()]}
    return None if root in installed else root


def subprocess_env(backend):
    """`os.environ` for a child Python on `backend` that imports the same `kerasnlp4su` as this process
    (the installed package when the suite runs installed; the checkout only when this process uses it),
    with TensorFlow's C++ logging quiet.

    PYTHONSAFEPATH keeps the child's current folder (`python -c`) and script folder off sys.path, as
    `python -P` does for the suite itself, so running from the repository root cannot shadow the wheel."""
    pythonpath = os.pathsep.join(filter(None, [package_root(), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONSAFEPATH="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if backend == "jax":
        # Tiny models: XLA's compile time is about half of a JAX child's CPU time (~1,000 programs
        # for the models group of test_backends.py). The lowest backend optimisation level cut it by
        # a fifth, and XLA's older loop emitters instead of its new fusion emitters by a further
        # third (that group, busy machine: 131 s -> 86 s of CPU), and LLVM without its expensive
        # passes by a further 8% (quiet: 80 s -> 74 s). Same results.
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_backend_optimization_level=0",
                                                  "--xla_cpu_use_fusion_emitters=false",
                                                  "--xla_llvm_disable_expensive_passes=true"]))
    return env


def bert4keras_env():
    """`os.environ` for a child Python that runs bert4keras 0.11.5, the test-only reference.

    bert4keras needs Keras 2: `TF_KERAS=1` makes it use `tf.keras`, and `TF_USE_LEGACY_KERAS=1` makes
    TensorFlow's `tf.keras` the tf-keras package (Keras 2) instead of Keras 3. Run it only in a subprocess:
    the suite's own process uses Keras 3."""
    return dict(os.environ, TF_KERAS="1", TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")


def to_np(x):
    """Any backend tensor or Keras variable -> numpy array."""
    if isinstance(x, keras.Variable):
        x = x.value
    if hasattr(x, "detach"):  # torch parameters and tensors that require grad
        x = x.detach()
    return np.asarray(keras.ops.convert_to_numpy(x))


def forward(model, inputs):
    """The model's outputs for one small batch, as numpy: `model.predict(inputs, verbose=0)` without
    its cost.

    An eager call with dropout off. `predict` traces a step function for every new model (about
    0.5 s of CPU for a tiny BERT on TensorFlow or JAX), which a test checking one batch of a freshly
    built model would pay just to read its outputs. Tests of `predict` itself call it directly."""
    return keras.tree.map_structure(to_np, model(inputs, training=False))


class _ReaderLikeTensorFlows:
    """`tf.train.load_checkpoint`'s two reading methods over the project's TensorFlow-free reader."""

    def __init__(self, reader):
        self._reader = reader

    def get_tensor(self, name):
        return self._reader.get(name)

    def get_variable_to_shape_map(self):
        return {name: list(self._reader.shape(name)) for name in self._reader.names()}


def load_checkpoint(path):
    """A TF1 checkpoint's reader for NumPy references: `tf.train.load_checkpoint` on TensorFlow.

    On JAX and PyTorch, the project's TensorFlow-free reader behind the same two methods, so that
    their test children need not import TensorFlow (4 s of CPU each). test_tf_bundle.py checks that
    reader against TensorFlow's, and test_tf_free.py every family's checkpoint read through it."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.train.load_checkpoint(path)
    from kerasnlp4su.checkpoints.readers import TF1CheckpointReader

    return _ReaderLikeTensorFlows(TF1CheckpointReader(path))


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
