"""Compatibility names for HuggingFace-format weights (`model.safetensors` + `config.json`).

The IO lives in `kerasnlp4su.checkpoints.safetensors` (reading and writing
files) and `kerasnlp4su.checkpoints.names` (name tables); what needs the
model families (`load_hf_model`, `HFCheckpointReader` by family name,
`save_weights_as_hf`, config translation) lives in `kerasnlp4su.models.hf`.
The names stay importable from here; the model-level ones are looked up in
`kerasnlp4su.models.hf` on first use, so importing this IO package never
imports the models.

>>> from kerasnlp4su.checkpoints.hf import load_hf_model  # doctest: +SKIP
>>> model = load_hf_model("all-MiniLM-L6-v2/")  # doctest: +SKIP
"""

from kerasnlp4su.checkpoints.names import (  # noqa: F401
    CLASSIFIER, DENSE, NORM, TABLE, VECTOR, HFFamily, modern_key)
from kerasnlp4su.checkpoints.safetensors import (  # noqa: F401
    CONFIG_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME, hf_config_path, is_hf_config,
    resolve_hf_weights)

# Names whose home is `kerasnlp4su.models.hf` (they need the model registry).
_MODEL_LEVEL = ("HFCheckpointReader", "hf_config_from_transformer", "hf_config_to_kwargs",
                "hf_family", "hf_model_name", "hf_tensors_from_transformer", "hf_to_official",
                "load_hf_model", "official_to_hf", "read_hf_config", "save_weights_as_hf")


def __getattr__(name):
    if name in _MODEL_LEVEL:
        import importlib

        return getattr(importlib.import_module("kerasnlp4su.models.hf"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MODEL_LEVEL))
