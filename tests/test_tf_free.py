"""With TensorFlow absent, every family's official checkpoint loads (and saves) on PyTorch.

One child process (TensorFlow's start-up is the cost) with `import tensorflow` blocked loads
each family's tiny checkpoint, runs it, and writes it back; this process computes the same
outputs on TensorFlow, and reads the child's files with TensorFlow's own reader. PyTorch, not
JAX: JAX's eager dispatch compiles every op, which doubled the child's CPU time.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_checkpoints
from backend_utils import subprocess_env
from tf_free_child import model_inputs

from kerasnlp4su.models import build_transformer_model

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_family_loads_and_saves_without_tensorflow(tmp_path_factory):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the parent computes the reference on TensorFlow")
    pytest.importorskip("torch")
    tiny = tiny_checkpoints.cached(tmp_path_factory)
    out_dir = tmp_path_factory.mktemp("tf_free")
    jobs = [[family, *tiny(family), str(out_dir / family / "model.ckpt")]
            for family in sorted(tiny_checkpoints.CONFIGS)]
    child = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "tf_free_child.py"), json.dumps(jobs),
         str(out_dir / "outputs.npz")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env("torch"))
    expected = {}  # computed while the child runs
    for family, config, checkpoint, _ in jobs:
        model = build_transformer_model(config, checkpoint, model=family)
        outputs = keras.tree.flatten(model(model_inputs(model), training=False))
        expected.update({f"{family}/{i}": np.asarray(o) for i, o in enumerate(outputs)})
    log, _ = child.communicate(timeout=900)
    assert child.returncode == 0, log[-4000:]
    with np.load(out_dir / "outputs.npz") as got:
        assert sorted(got.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    for family, _, checkpoint, saved in jobs:
        original, written = tf.train.load_checkpoint(checkpoint), tf.train.load_checkpoint(saved)
        weights = {n for n in written.get_variable_to_shape_map()}
        assert weights, family
        for name in weights:  # the model's weights, as loaded, bit for bit
            assert np.array_equal(written.get_tensor(name), original.get_tensor(name)), name
