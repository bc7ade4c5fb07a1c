"""Conditional-LayerNorm multi-task encoder: a fresh one equals the plain model for every task id;
training moves the task-conditioned projections and separates the tasks."""

import os

import keras
import numpy as np
import pytest

from backend_utils import to_np
from kerasnlp4su.training import task_conditional_encoder

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "checkpoints", "tiny_bert", "bert_config.json")
CHECKPOINT = os.path.join(HERE, "..", "checkpoints", "tiny_bert", "bert_model.ckpt")


def test_task_conditional_encoder_starts_as_the_plain_model_and_conditions_on_the_task():
    from kerasnlp4su.models import build_transformer_model

    plain = build_transformer_model(CONFIG, CHECKPOINT)
    encoder = task_conditional_encoder(CONFIG, CHECKPOINT, num_tasks=3)
    assert [t.name for t in encoder.inputs] == ["Input-Token", "Input-Segment", "Input-Task"]
    rng = np.random.default_rng(0)
    ids = rng.integers(100, 2000, (3, 7)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3
    x = [ids, np.zeros_like(ids)]
    tasks = np.array([[0], [1], [2]], "int32")
    base = to_np(plain(x))
    np.testing.assert_allclose(to_np(encoder(x + [tasks])), base, rtol=1e-5, atol=1e-5)
    # Task 1's row of each gamma projection shifts gamma by one: only task-1 rows change.
    for weight in encoder.weights:
        if "gamma_dense" in weight.path:
            value = np.zeros(weight.shape, "float32")
            value[1] = 1.0
            weight.assign(value)
    out = to_np(encoder(x + [tasks]))
    np.testing.assert_allclose(out[[0, 2]], base[[0, 2]], rtol=1e-5, atol=1e-5)
    assert np.abs(out[1] - base[1]).max() > 1e-2
    with pytest.raises(ValueError, match="num_tasks"):
        task_conditional_encoder(CONFIG, CHECKPOINT, num_tasks=0)
