"""HuggingFace-format models: `config.json` translation, building, reading and export.

The IO lives in `kerasnlp4su.checkpoints.safetensors`; this module adds what
needs the registry of model families: which family an HF config or file
is, its name table, and its architecture and extra config keys.

>>> model = load_hf_model("all-MiniLM-L6-v2/")  # doctest: +SKIP
>>> model = build_transformer_model(None, "all-MiniLM-L6-v2/", model="bert")  # doctest: +SKIP

Writing: `save_weights_as_hf(transformer, directory)` writes `model.safetensors`
and `config.json` that `transformers` loads with `from_pretrained`.
"""

import os

import numpy as np

from kerasnlp4su.checkpoints.names import modern_key
from kerasnlp4su.checkpoints.safetensors import (CONFIG_NAME, SafetensorsCheckpointReader,
                                                 hf_config_path, is_hf_config,
                                                 write_hf_directory)
from kerasnlp4su.models import registry
from kerasnlp4su.models.build import build_from_config, read_config

__all__ = ["HFCheckpointReader", "hf_config_from_transformer", "hf_config_path",
           "hf_config_to_kwargs", "hf_family", "hf_model_name", "hf_tensors_from_transformer",
           "hf_to_official", "is_hf_config", "load_hf_model", "official_to_hf", "read_hf_config",
           "save_weights_as_hf"]

hf_family = registry.hf_family

# HF activation name -> kerasnlp4su activation with the same semantics.
_HF_ACTIVATIONS = {"gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                   "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh",
                   "linear": "linear"}
_OUR_ACTIVATIONS = {"gelu_erf": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu",
                    "swish": "silu", "tanh": "tanh", "linear": "linear"}
# HF config key -> constructor argument (shared by every family).
_CONFIG_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers", "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size", "embedding_size": "embedding_size",
    "max_position_embeddings": "max_position", "type_vocab_size": "segment_vocab_size",
    "hidden_dropout_prob": "dropout_rate", "attention_probs_dropout_prob": "attention_dropout_rate",
    "initializer_range": "initializer_range", "layer_norm_eps": "layer_norm_epsilon",
    "num_hidden_groups": "num_hidden_groups", "inner_group_num": "inner_group_num",
}


class HFCheckpointReader(SafetensorsCheckpointReader):
    """An HF `model.safetensors` file seen under official TF1 names.

    Args:
        path: a `.safetensors` file, a `model.safetensors.index.json` shard
            index, or a directory holding either.
        transformer_or_family: the `Transformer` being loaded, or a model or
            family name (`'bert'`, `'albert'`, `'electra_generator'`, ...).

    Example:
    >>> reader = HFCheckpointReader("all-MiniLM-L6-v2/", "bert")  # doctest: +SKIP
    >>> reader.get("bert/encoder/layer_0/attention/self/query/kernel").shape  # doctest: +SKIP
    (384, 384)
    """

    def __init__(self, path, transformer_or_family):
        super().__init__(path, hf_family(transformer_or_family), known_tables=registry.hf_tables(),
                         other_bases=registry.OTHER_HF_BASES)


def official_to_hf(name, family):
    """`(hf_name, transpose)` of an official variable name, or None."""
    return hf_family(family).to_hf(name)


def hf_to_official(name, family):
    """`(official_name, transpose)` of an HF state-dict key, or None."""
    found = hf_family(family).to_official(modern_key(name))
    return None if found is None else found[:2]


# ----------------------------------------------------------------- reading
def hf_model_name(config):
    """The `model=` name for an HF config dict (`'bert'`, `'electra_generator'`, ...)."""
    return registry.family_for_hf_config(config).name


def hf_config_to_kwargs(config, source="HF config"):
    """Translate an HF `config.json` dict into `build_transformer_model` arguments.

    `hidden_act` is made explicit (`'gelu'` in HF is the exact erf form,
    `'gelu_new'` the tanh approximation), so the model computes what
    `transformers` computes whatever the family's official default. The
    family (from `model_type`) refuses what it cannot represent.
    """
    kwargs = {ours: config[key] for key, ours in _CONFIG_KEYS.items()
              if config.get(key) is not None}
    try:
        family = registry.family_for_hf_config(config)
    except ValueError:
        family = None  # an unsupported model_type is named when the model is chosen
    if family is not None and family.hf_read_config is not None:
        kwargs.update(family.hf_read_config(config, source) or {})
    act = config.get("hidden_act", "gelu")
    if act not in _HF_ACTIVATIONS:
        raise ValueError(f"{source}: hidden_act {act!r} has no kerasnlp4su equivalent; "
                         f"known: {sorted(_HF_ACTIVATIONS)}")
    kwargs["hidden_act"] = _HF_ACTIVATIONS[act]
    return kwargs


def read_hf_config(path):
    """Read an HF `config.json` (file or directory) into constructor arguments."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_NAME)
    return hf_config_to_kwargs(read_config(path), source=f"HF config {path!r}")


def load_hf_model(path, model=None, application="encoder", return_keras_model=True,
                  strict=True, **kwargs):
    """Build a model from an HF directory (`config.json` + `model.safetensors`).

    `model` defaults to the config's `model_type` (ELECTRA `ElectraForMaskedLM`
    files give `'electra_generator'`); keyword arguments override config
    entries and are checked exactly as in `build_transformer_model`, which
    shares this builder (`with_pool`, `with_mlm`, ...).

    Example:
    >>> model = load_hf_model("all-MiniLM-L6-v2/")  # doctest: +SKIP
    >>> model.predict([token_ids, segment_ids])  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"HF model directory {path!r} not found")
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    config_path = os.path.join(directory, CONFIG_NAME)
    raw = read_config(config_path)
    source = f"HF config {config_path!r}"
    config = hf_config_to_kwargs(raw, source=source)
    if model is None or (isinstance(model, str) and model.lower() == "auto"):
        model = hf_model_name(raw)
    return build_from_config(model, config, kwargs, source, application, path, strict,
                             return_keras_model)


# ----------------------------------------------------------------- writing
def hf_config_from_transformer(transformer):
    """The HF `config.json` dict describing `transformer`."""
    table = hf_family(transformer)
    family = registry.get_family(table.name)
    if family.hf_config_writer is not None:
        return family.hf_config_writer(transformer)
    t = transformer
    problems = []
    if t.attention_head_size * t.num_attention_heads != t.hidden_size or \
            t.attention_key_size != t.attention_head_size:
        problems.append("attention_head_size/attention_key_size other than "
                        "hidden_size / num_attention_heads")
    if getattr(t, "attention_type", "softmax") != "softmax":
        problems.append(f"attention_type={t.attention_type!r}")
    if getattr(t, "attention_scale", "standard") != "standard":
        problems.append(f"attention_scale={t.attention_scale!r}")
    if getattr(t, "layer_norm_cond", None) is not None:
        problems.append("conditional LayerNorm (layer_norm_cond)")
    act = t.hidden_act if isinstance(t.hidden_act, str) else None
    if act not in _OUR_ACTIVATIONS:
        problems.append(f"hidden_act={t.hidden_act!r}")
    architecture, extra, family_problems = family.hf_write_config(t)
    problems += family_problems
    if problems:
        raise ValueError(f"the {t.model_type} model cannot be written in the HF format: "
                         f"transformers has no {'; '.join(problems)}")
    config = {
        "architectures": [architecture],
        "model_type": table.hf_model_type,
        "vocab_size": t.vocab_size,
        "hidden_size": t.hidden_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "intermediate_size": t.intermediate_size,
        "hidden_act": _OUR_ACTIVATIONS[act],
        "hidden_dropout_prob": t.dropout_rate,
        "attention_probs_dropout_prob": t.attention_dropout_rate,
        "max_position_embeddings": t.max_position,
        "type_vocab_size": max(t.segment_vocab_size, 1),
        "initializer_range": t.initializer_range,
        "layer_norm_eps": float(t.layer_norm_kwargs.get("epsilon", 1e-12)),
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }
    config.update(extra)
    return config


def hf_tensors_from_transformer(transformer):
    """`{HF name: numpy array}` of `transformer`'s weights (HF layout)."""
    table = hf_family(transformer)
    family = registry.get_family(table.name)
    hf, untranslatable = {}, []
    for name, value in transformer.checkpoint_tensors().items():
        found = table.to_hf(name)
        if found is None:
            untranslatable.append(name)
            continue
        key, transpose = found
        hf[key] = np.ascontiguousarray(value.T if transpose else value)
    if untranslatable:
        raise ValueError(f"the {transformer.model_type} model has weights with no place in the "
                         f"HF {table.name} format: {sorted(untranslatable)}")
    token_types = f"{table.base}.embeddings.token_type_embeddings.weight"
    if transformer.segment_vocab_size == 0 and table.to_official(token_types) is not None:
        # HF always adds a token-type embedding; a zero row leaves outputs unchanged.
        hf[token_types] = np.zeros(
            (1, transformer.embedding_size), dtype=np.float32)
    if family.hf_extra_tensors is not None:
        hf.update(family.hf_extra_tensors(transformer))
    return hf


def save_weights_as_hf(transformer, directory, vocab_path=None):
    """Write `transformer`'s weights as an HF model directory.

    Writes `model.safetensors` and `config.json` (and copies `vocab_path`
    to `vocab.txt` when given), each atomically: a temporary file next to
    the target, then `os.replace`. `transformers`' `from_pretrained(directory)`
    loads the result.

    Example:
    >>> t = build_transformer_model(config, ckpt, with_mlm=True, return_keras_model=False)  # doctest: +SKIP
    >>> save_weights_as_hf(t, "exported/")  # doctest: +SKIP
    >>> transformers.BertForMaskedLM.from_pretrained("exported/")  # doctest: +SKIP
    """
    if transformer.model is None:
        raise ValueError("build the model (transformer.build()) before saving it")
    config = hf_config_from_transformer(transformer)
    tensors = hf_tensors_from_transformer(transformer)
    return write_hf_directory(directory, tensors, config, vocab_path)
