"""The core suite on the JAX and PyTorch backends (the main run uses TensorFlow).

Each backend needs a fresh interpreter (Keras picks its backend at import),
so the core test files run in a subprocess with `KERAS_BACKEND` set. The
same child also runs the `test_layer_harness` test of every other layer
test file (the shared checks of `layer_harness.check_layer`), so the
interpreter start is paid once per backend.
"""

import os
import subprocess
import sys

import pytest
from backend_utils import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = [
    "test_bert.py", "test_model_family.py", "test_attention.py", "test_checkpoint_io.py",
    "test_saving.py", "test_decoding_compiled.py", "test_dense.py", "test_normalization.py",
    "test_inference.py", "test_compiled_update.py",
]
LAYER_HARNESS = [
    "test_layer_harness.py", "test_gau.py::test_layer_harness",
    "test_global_pointer.py::test_layer_harness", "test_crf.py::test_layer_harness",
    "test_loss_layer.py::test_layer_harness", "test_memm.py::test_layer_harness",
    "test_relative_position.py::test_layer_harness", "test_pooling.py::test_layer_harness",
]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_core_suite_passes_on_backend(backend):
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("already running on a non-default backend")
    pytest.importorskip(backend)
    files = [os.path.join(HERE, f) for f in CORE + LAYER_HARNESS
             if os.path.exists(os.path.join(HERE, f.split("::")[0]))]
    env = subprocess_env(backend)
    proc = subprocess.run([sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider",
                           "-p", "no:warnings"], capture_output=True, text=True, env=env,
                          cwd=HERE, timeout=1500)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:]
    assert proc.returncode == 0, f"{backend} backend: {summary}\n{proc.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary, summary
