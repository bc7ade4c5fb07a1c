"""Readers that expose a checkpoint as `{official variable name: numpy array}`."""

import os
import re

import numpy as np

# Variables a training run leaves in official checkpoints that are not weights.
_IGNORED_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/lamb_m", "/lamb_v",
                     "/Momentum", "/ExponentialMovingAverage")
_IGNORED_NAMES = ("global_step", "_CHECKPOINTABLE_OBJECT_GRAPH", "good_steps", "loss_scale")


# Adafactor's slots in mesh-TF (T5) checkpoints: `<variable>_slot_vc`, `_slot_vr`, `_slot_v`.
_ADAFACTOR_SLOT = re.compile(r".*_slot_(vc|vr|v|m)")


def is_training_state(name):
    """True for optimizer slots, step counters and similar non-weights."""
    return (name in _IGNORED_NAMES or name.endswith(_IGNORED_SUFFIXES)
            or _ADAFACTOR_SLOT.fullmatch(name) is not None)


class CheckpointReader:
    """Uniform read access to a checkpoint's weights by official name."""

    path = None

    def names(self):
        """Names of the weights (training state already filtered out)."""
        raise NotImplementedError

    def shape(self, name):
        raise NotImplementedError

    def get(self, name):
        raise NotImplementedError

    def __contains__(self, name):
        return name in self.names()


class TF1CheckpointReader(CheckpointReader):
    """Reads an official TF1 checkpoint (`model.ckpt` prefix with `.index`/`.data-*`).

    Example:
    >>> reader = TF1CheckpointReader("checkpoints/tiny_bert/bert_model.ckpt")
    >>> reader.get("bert/embeddings/word_embeddings").shape  # doctest: +SKIP
    """

    def __init__(self, path):
        import tensorflow as tf

        path = resolve_tf1_checkpoint(path)
        self.path = path
        try:
            self._reader = tf.train.load_checkpoint(path)
        except Exception as e:  # tf raises several error types for bad files
            raise ValueError(
                f"cannot read TF checkpoint {path!r}: the .index or .data files are corrupt "
                f"or truncated ({type(e).__name__}: {_first_line(e)})"
            ) from e
        # TF opens the index eagerly and the data lazily: check the data now.
        _check_data_files(path)
        shapes = self._reader.get_variable_to_shape_map()
        self._shapes = {k: tuple(v) for k, v in shapes.items() if not is_training_state(k)}

    def names(self):
        return set(self._shapes)

    def shape(self, name):
        return self._shapes[name]

    def get(self, name):
        try:
            return np.asarray(self._reader.get_tensor(name))
        except Exception as e:
            raise ValueError(
                f"cannot read variable {name!r} from checkpoint {self.path!r}: the data file "
                f"is corrupt or truncated ({type(e).__name__}: {_first_line(e)})") from e


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


_DATA_FILE = re.compile(r"\.data-(\d+)-of-(\d+)$")


def _check_data_files(prefix):
    """Every `.data-i-of-n` shard next to the index must exist."""
    directory, base = os.path.split(prefix)
    shards = [f for f in os.listdir(directory or ".")
              if f.startswith(base + ".data-") and _DATA_FILE.search(f[len(base):])]
    if not shards:
        raise FileNotFoundError(
            f"TF checkpoint {prefix!r} has an index but no data file: expected "
            f"{prefix + '.data-00000-of-00001'!r} next to {prefix + '.index'!r}")
    count = int(_DATA_FILE.search(shards[0][len(base):]).group(2))
    expected = [f"{base}.data-{i:05d}-of-{count:05d}" for i in range(count)]
    absent = [f for f in expected if f not in shards]
    if absent:
        raise FileNotFoundError(f"TF checkpoint {prefix!r} is incomplete: data file(s) "
                                f"{[os.path.join(directory, f) for f in absent]} not found")


def resolve_tf1_checkpoint(path):
    """Accept a checkpoint prefix, a directory, or a path to its `.index` file."""
    path = os.fspath(path)
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if os.path.isdir(path):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            candidates = sorted(f[:-6] for f in os.listdir(path) if f.endswith(".index"))
            if not candidates:
                raise FileNotFoundError(f"no TF checkpoint (*.index file) in directory {path!r}")
            latest = os.path.join(path, candidates[0])
        path = latest
    if not os.path.exists(path + ".index"):
        if os.path.exists(path + ".index.bak"):
            raise FileNotFoundError(
                f"TF checkpoint {path!r} not found, but {path + '.index.bak'!r} is: a save was "
                "interrupted. The previous complete checkpoint is in the '*.bak' files; rename "
                "them back (drop '.bak') to restore it")
        raise FileNotFoundError(
            f"TF checkpoint {path!r} not found: expected the file {path + '.index'!r} "
            f"(pass the prefix, e.g. '.../bert_model.ckpt')")
    return path
