"""Tiny official-format checkpoints for every model family, written on demand."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "checkpoints"))
import make_tiny_checkpoints as make  # noqa: E402

from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint  # noqa: E402

BASE = {
    "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
}
CONFIGS = {
    "bert": dict(BASE),
    "roformer": dict(BASE),
    "roformer_v2": dict(BASE, hidden_act="relu"),
    "albert": dict(BASE, embedding_size=16, num_hidden_layers=3),
    "electra": dict(BASE, embedding_size=16),
    "electra_generator": dict(BASE, embedding_size=16, hidden_size=16, num_attention_heads=2,
                              intermediate_size=32),
}


def write(directory, family, seed=0):
    """Write `family`'s tiny checkpoint into `directory`; returns (config_path, ckpt_path)."""
    rng = np.random.default_rng(seed)
    config = CONFIGS[family]
    if family == "bert":
        tensors = make.bert_tensors(config, rng)
    elif family == "roformer":
        tensors = make.bert_tensors(config, rng, positions=False)
    elif family == "roformer_v2":
        tensors = make.roformer_v2_tensors(config, rng)
    elif family == "albert":
        tensors = make.albert_tensors(config, rng)
    elif family in ("electra", "electra_generator"):
        tensors = make.electra_tensors(CONFIGS["electra"], CONFIGS["electra_generator"], rng)
    else:
        raise KeyError(family)
    os.makedirs(directory, exist_ok=True)
    config_path = os.path.join(directory, "config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    ckpt = write_tf1_checkpoint(os.path.join(directory, "model.ckpt"), tensors)
    return config_path, ckpt
