"""Atomic saving of Keras models and weights.

`keras.Model.save` writes straight to its target, so a crash or Ctrl-C in
the middle leaves a truncated file where a good one was. These helpers
write a temporary file next to the target, flush it to disk and
`os.replace` it in one step: readers see the old file or the new one, never
a mix. The new file gets the old file's permissions (or the umask default
for a new file), not the owner-only mode of a temporary file.
"""

import os

from kerasnlp4su.checkpoints.atomic import atomic_write

__all__ = ["atomic_write", "save_model", "save_weights"]

_SUFFIXES = (".keras", ".weights.h5")


def _atomic(path, write):
    path = os.fspath(path)
    suffix = next((s for s in _SUFFIXES if path.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{path!r}: expected a file name ending in one of {_SUFFIXES}")
    return atomic_write(path, write, suffix)


def save_model(model, path, **kwargs):
    """`model.save(path)`, atomically: the old file survives any interruption.

    Example:
    >>> save_model(model, "classifier.keras")  # doctest: +SKIP
    """
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"{os.fspath(path)!r}: a whole model is saved as a '.keras' file")
    return _atomic(path, lambda staging: model.save(staging, **kwargs))


def save_weights(model, path):
    """`model.save_weights(path)` (`.weights.h5`), atomically."""
    if not os.fspath(path).endswith(".weights.h5"):
        raise ValueError(f"{os.fspath(path)!r}: weights are saved as a '.weights.h5' file")
    return _atomic(path, model.save_weights)
