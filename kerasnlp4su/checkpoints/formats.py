"""Pick the right reader for a checkpoint path."""

import os

from kerasnlp4su.checkpoints.readers import CheckpointReader, TF1CheckpointReader

_HF_FILES = ("model.safetensors", "model.safetensors.index.json")
_HF_OTHER_FILES = ("pytorch_model.bin", "tf_model.h5")  # HF weights we do not read


def is_hf_checkpoint(path):
    """True for a `*.safetensors` file, a shard index, or a directory of HF weights."""
    path = os.fspath(path)
    if path.endswith((".safetensors", ".safetensors.index.json")):
        return True
    if not os.path.isdir(path):
        return False
    files = os.listdir(path)
    if any(f in files for f in _HF_FILES):
        return True
    # Only torch/Keras-2 HF weights and no TF1 checkpoint: the HF reader
    # explains how to get model.safetensors.
    return any(f in files for f in _HF_OTHER_FILES) and not any(f.endswith(".index") for f in files)


def open_checkpoint(path, open_hf=None):
    """Return a `CheckpointReader` for a TF1 prefix/directory or an HF directory/file.

    HuggingFace files (`*.safetensors`, a `model.safetensors.index.json`
    shard index, or a directory holding `model.safetensors`) are opened by
    `open_hf(path)`, which the caller supplies because only the model
    family knows the HF names (`kerasnlp4su.models.hf.HFCheckpointReader`).
    """
    if isinstance(path, CheckpointReader):
        return path
    path = os.fspath(path)
    if is_hf_checkpoint(path):
        if open_hf is None:
            raise ValueError(f"reading HF-format weights {path!r} needs the model's HF name "
                             "table to translate names (load it through the model)")
        return open_hf(path)
    return TF1CheckpointReader(path)
