"""The backend-specific tests on the JAX and PyTorch backends (the main run uses TensorFlow).

Each backend needs a fresh interpreter (Keras picks its backend at import),
so a child pytest runs with `KERAS_BACKEND` set. It runs the tests marked
`backend_core` (model forward and parity, cached and compiled decoding,
saving, layer numerics) and every layer's `test_layer_harness` (marked by
`conftest.py`), not the whole files: error messages, checkpoint files,
tokenizers and configuration are the same code on every backend and run on
TensorFlow only. JAX's tests are split into two children so that
pytest-xdist's workers balance them instead of waiting on one long test;
PyTorch's run in one (its two halves cost 25 s and 17 s of CPU; a second
interpreter would add ~6 s of start-up).
"""

import os
import subprocess
import sys

import pytest
from backend_utils import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
GROUPS = {
    "models": ["test_bert.py", "test_first_contact_backends.py", "test_model_family.py", "test_inference.py", "test_saving.py",
               "test_decoding_compiled.py", "test_compiled_update.py"],
    "layers": ["test_attention.py", "test_dense.py", "test_normalization.py", "test_layer_harness.py",
               "test_gau.py", "test_global_pointer.py", "test_crf.py", "test_loss_layer.py", "test_memm.py",
               "test_relative_position.py", "test_pooling.py", "test_techniques.py",
               "test_techniques_compression.py", "test_techniques_simbert.py",
               "test_training_b4k_helpers.py"],
}


CHILDREN = [("jax", ["layers"]), ("jax", ["models"]), ("torch", ["layers", "models"])]


@pytest.mark.parametrize("backend, groups", CHILDREN, ids=[f"{b}-{'+'.join(g)}" for b, g in CHILDREN])
def test_backend_core_passes_on_backend(backend, groups):
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("already running on a non-default backend")
    pytest.importorskip(backend)
    files = [os.path.join(HERE, f) for group in groups for f in GROUPS[group]
             if os.path.exists(os.path.join(HERE, f))]
    env = subprocess_env(backend)
    proc = subprocess.run([sys.executable, "-m", "pytest", *files, "-m", "backend_core", "-q",
                           "-p", "no:cacheprovider", "-p", "no:warnings", "-p", "no:xdist"],
                          capture_output=True, text=True, env=env, cwd=HERE, timeout=1200)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:]
    assert proc.returncode == 0, f"{backend} backend, {'+'.join(groups)}: {summary}\n{proc.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary, summary


def test_tensorflow_only_cases_name_real_tests():
    from conftest import TENSORFLOW_ONLY

    for key in TENSORFLOW_ONLY:
        filename, name = key.split("::")
        with open(os.path.join(HERE, filename), encoding="utf-8") as f:
            assert f"def {name}(" in f.read(), key
