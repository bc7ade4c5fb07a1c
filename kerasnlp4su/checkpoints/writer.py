"""Write model weights as an official-format TF1 checkpoint, atomically."""

import os
import re
import shutil
import tempfile

from kerasnlp4su.checkpoints.atomic import fsync_directory, fsync_file
from kerasnlp4su.checkpoints.tf_bundle import write_bundle

_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}")


def write_tf1_checkpoint(path, tensors):
    """Write `{name: array}` as a TF1 checkpoint at prefix `path`, without TensorFlow.

    The files are the ones TensorFlow's own saver writes for the same tensors, byte for byte
    (`kerasnlp4su.checkpoints.tf_bundle`): one `.data-00000-of-00001` shard and the `.index`.

    The files are written into a temporary directory next to the target and
    moved into place only when complete. An interrupted save therefore leaves
    either the old checkpoint, or no `.index` (loading then fails loudly and
    the old files remain as `*.bak`), never a mix of old and new files.

    Example:
    >>> import numpy as np
    >>> write_tf1_checkpoint("/tmp/demo/model.ckpt", {"w": np.ones(3)})  # doctest: +SKIP
    """
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".ckpt-tmp-", dir=directory)
    try:
        write_bundle(os.path.join(staging, os.path.basename(path)), tensors)
        _swap_into_place(staging, directory, os.path.basename(path))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _is_checkpoint_file(filename, prefix):
    """`prefix.index` or one of its `prefix.data-i-of-n` shards (not `prefix.best.index`)."""
    rest = filename[len(prefix):] if filename.startswith(prefix) else None
    return rest == ".index" or (rest is not None and _DATA_SUFFIX.fullmatch(rest) is not None)


def _swap_into_place(staging, directory, prefix):
    # The new files are on disk before any old file moves. The old .index goes
    # first: without it no reader can pair the old index with new data files.
    # Old files are kept as .bak until the new set is in. Only this prefix's
    # own files move: `model.ckpt.best.index` is another checkpoint.
    new_files = sorted(os.listdir(staging), key=lambda f: f.endswith(".index"))
    for filename in new_files:
        fsync_file(os.path.join(staging, filename))
    backups = []
    old_files = sorted((f for f in os.listdir(directory) if _is_checkpoint_file(f, prefix)),
                       key=lambda f: not f.endswith(".index"))
    for filename in old_files:
        target = os.path.join(directory, filename)
        os.replace(target, target + ".bak")
        backups.append(target + ".bak")
    for filename in new_files:
        os.replace(os.path.join(staging, filename), os.path.join(directory, filename))
    fsync_directory(directory)
    for backup in backups:
        os.remove(backup)
