"""Atomic saving of Keras models and weights.

`keras.Model.save` writes straight to its target, so a crash or Ctrl-C in
the middle leaves a truncated file where a good one was. These helpers
write next to the target and `os.replace` it in one step.
"""

import os
import tempfile

_SUFFIXES = (".keras", ".weights.h5")


def _atomic(path, write):
    path = os.fspath(path)
    suffix = next((s for s in _SUFFIXES if path.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{path!r}: expected a file name ending in one of {_SUFFIXES}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".saving-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


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
