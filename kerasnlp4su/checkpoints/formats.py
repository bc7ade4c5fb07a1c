"""Pick the right reader for a checkpoint path."""

import os

from kerasnlp4su.checkpoints.readers import CheckpointReader, TF1CheckpointReader


def open_checkpoint(path, transformer=None):
    """Return a `CheckpointReader` for a TF1 prefix/directory or an HF directory/file.

    HuggingFace files (`*.safetensors`, or a directory holding
    `model.safetensors`) are read through the model's HF name map so they
    expose official names.
    """
    if isinstance(path, CheckpointReader):
        return path
    path = os.fspath(path)
    hf_file = None
    if path.endswith(".safetensors"):
        hf_file = path
    elif os.path.isdir(path) and os.path.exists(os.path.join(path, "model.safetensors")):
        hf_file = os.path.join(path, "model.safetensors")
    if hf_file is not None:
        from kerasnlp4su.checkpoints.hf import HFCheckpointReader

        if not os.path.exists(hf_file):
            raise FileNotFoundError(f"HF weights file {hf_file!r} not found")
        if transformer is None:
            raise ValueError("reading HF-format weights needs the model to translate names")
        return HFCheckpointReader(hf_file, transformer.hf_name_map())
    return TF1CheckpointReader(path)
