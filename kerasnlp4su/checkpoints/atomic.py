"""Atomic file writing: readers see the old file or the new one, never a mix.

`atomic_write` is the one helper every writer uses (Keras `.keras` files,
HF `model.safetensors`/`config.json`); the TF1 writer, which must move
several files as a set, shares its `fsync_file` / `fsync_directory`.
"""

import os
import stat
import tempfile


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync(path, flags=0):
    try:
        fd = os.open(path, os.O_RDONLY | flags)
    except OSError:
        return  # e.g. directories cannot be opened on some platforms (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path):
    """Flush `path`'s content to disk (best effort where the OS refuses)."""
    _fsync(path)


def fsync_directory(directory):
    """Flush a directory entry, so a rename survives a crash (no-op on Windows)."""
    _fsync(directory, getattr(os, "O_DIRECTORY", 0))


def atomic_write(path, write, suffix=""):
    """Call `write(staging_path)`, then move the finished file onto `path`.

    `staging_path` is a fresh name in `path`'s directory ending in `suffix`
    (Keras picks the file format from the extension). If `write` raises (or
    the process is interrupted) the target is untouched and the staging file
    is removed. The new file gets the old file's permissions (or the umask
    default for a new file), not the owner-only mode of a temporary file.
    Returns `path`.

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
        fsync_file(staging)
        os.replace(staging, path)
        fsync_directory(directory)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def atomic_write_text(path, text):
    """Write `text` (UTF-8) to `path` atomically."""

    def write(staging):
        with open(staging, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write, suffix=os.path.splitext(os.fspath(path))[1])
