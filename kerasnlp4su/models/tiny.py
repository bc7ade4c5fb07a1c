"""Random tensors under official names, for each family's tiny test checkpoint.

A family's `tiny_tensors(config, rng)` (see `kerasnlp4su.models.registry.Family`)
writes its official layout with these helpers, by hand and not from the
library's `variable_mapping`, so loading the result is a real test of it.
"""

import numpy as np


class TinyTensors:
    """Collects `{official name: array}`; `dense`/`norm` add kernel/bias and gamma/beta pairs.

    Example:
    >>> t = TinyTensors(np.random.default_rng(0))
    >>> t.dense("bert/pooler/dense", 4, 4)
    >>> sorted(t.tensors)
    ['bert/pooler/dense/bias', 'bert/pooler/dense/kernel']
    """

    def __init__(self, rng, bias=True, norm=True):
        self.rng, self.bias, self.norm_params, self.tensors = rng, bias, norm, {}

    def w(self, *shape):
        return (self.rng.standard_normal(shape) * 0.1).astype("float32")

    def dense(self, name, n_in, n_out):
        self.tensors[f"{name}/kernel"] = self.w(n_in, n_out)
        if self.bias:
            self.tensors[f"{name}/bias"] = self.w(n_out)

    def norm(self, name, dim):
        if self.norm_params:
            self.tensors[f"{name}/gamma"] = 1 + self.w(dim)
            self.tensors[f"{name}/beta"] = self.w(dim)

    def embeddings(self, prefix, config, width, positions=True):
        self.tensors[f"{prefix}/word_embeddings"] = self.w(config["vocab_size"], width)
        self.tensors[f"{prefix}/token_type_embeddings"] = self.w(config["type_vocab_size"], width)
        if positions:
            self.tensors[f"{prefix}/position_embeddings"] = self.w(config["max_position_embeddings"], width)
        self.norm(f"{prefix}/LayerNorm", width)

    def training_state(self, name):
        # Real releases carry training state too; the loader must ignore it.
        self.tensors["global_step"] = np.array(1000, dtype="int64")
        self.tensors[f"{name}/adam_m"] = self.w(*self.tensors[name].shape)


#: The size every family's tiny test config starts from (official config keys).
TINY_BASE = {
    "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
}


def write_tiny_checkpoint(directory, family, seed=0):
    """Write a registered family's tiny checkpoint (`config.json`, `model.ckpt.*`) into `directory`.

    Returns `(config_path, checkpoint_prefix)`.

    Example:
    >>> config_path, ckpt = write_tiny_checkpoint("/tmp/tiny_albert", "albert")  # doctest: +SKIP
    """
    import json
    import os

    from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint
    from kerasnlp4su.models.registry import get_family

    spec = get_family(family)
    if spec.tiny_tensors is None:
        raise ValueError(f"the {spec.name} family declares no tiny test checkpoint")
    tensors = spec.tiny_tensors(spec.tiny_config, np.random.default_rng(seed))
    os.makedirs(directory, exist_ok=True)
    config_path = os.path.join(directory, "config.json")
    with open(config_path, "w") as f:
        json.dump(spec.tiny_config, f)
    return config_path, write_tf1_checkpoint(os.path.join(directory, "model.ckpt"), tensors)
