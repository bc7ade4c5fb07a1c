"""Atomic saving of Keras models and weights.

`keras.Model.save` writes straight to its target, so a crash or Ctrl-C in
the middle leaves a truncated file where a good one was. These helpers
write a temporary file next to the target, flush it to disk and
`os.replace` it in one step: readers see the old file or the new one, never
a mix. The new file gets the old file's permissions (or the umask default
for a new file), not the owner-only mode of a temporary file.
"""

import os
import stat
import tempfile

_SUFFIXES = (".keras", ".weights.h5")


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # directories cannot be opened on some platforms (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, suffix=""):
    """Call `write(staging_path)`, then move the finished file onto `path`.

    `staging_path` is a fresh name in `path`'s directory ending in `suffix`
    (Keras picks the file format from the extension). If `write` raises (or
    the process is interrupted) the target is untouched and the staging file
    is removed. Returns `path`.

    Example:
    >>> atomic_write("notes.txt", lambda tmp: open(tmp, "w").write("hi"))  # doctest: +SKIP
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".saving-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(staging)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = _umask_mode()
        os.chmod(staging, mode)
        _fsync_file(staging)
        os.replace(staging, path)
        _fsync_directory(directory)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


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
