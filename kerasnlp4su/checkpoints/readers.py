"""Readers that expose a checkpoint as `{official variable name: numpy array}`."""

import codecs
import os
import re

from kerasnlp4su.checkpoints.tf_bundle import BundleReader, CorruptBundleError

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

    Plain Python + NumPy (`kerasnlp4su.checkpoints.tf_bundle`): TensorFlow is not imported, on
    any backend. Every tensor's CRC32C is checked when it is read; string tensors (e.g.
    `_CHECKPOINTABLE_OBJECT_GRAPH`) and training state are not listed.

    Example:
    >>> reader = TF1CheckpointReader("checkpoints/tiny_bert/bert_model.ckpt")
    >>> reader.get("bert/embeddings/word_embeddings").shape  # doctest: +SKIP
    """

    def __init__(self, path):
        path = resolve_tf1_checkpoint(path)
        self.path = path
        try:
            self._bundle = BundleReader(path)
            _check_data_files(path)
            self._bundle.check_data_files()  # truncation is found now, not mid-load
        except CorruptBundleError as e:
            raise _corrupt(path, e) from e
        self._shapes = {name: tuple(self._bundle.shape(name)) for name in self._bundle.names()
                        if self._bundle.numpy_dtype(name) is not None
                        and not is_training_state(name)}

    def names(self):
        return set(self._shapes)

    def shape(self, name):
        return self._shapes[name]

    def get(self, name):
        try:
            return self._bundle.read(name)
        except CorruptBundleError as e:
            raise _corrupt(self.path, e) from e


def _corrupt(path, error):
    """The error to raise for a damaged checkpoint: names the variable, else the checkpoint."""
    if error.tensor is not None:
        return ValueError(f"cannot read variable {error.tensor!r} from checkpoint {path!r}: the "
                          f"data file is corrupt or truncated ({_first_line(error)})")
    return ValueError(f"cannot read TF checkpoint {path!r}: the .index or .data files are "
                      f"corrupt or truncated ({_first_line(error)})")


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
        latest = latest_checkpoint(path)
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


_LATEST = re.compile(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def latest_checkpoint(directory):
    """The prefix a directory's `checkpoint` state file names, if its `.index` exists; else None.

    The same answer as `tf.train.latest_checkpoint` for the text file TensorFlow's savers write
    (`model_checkpoint_path: "model.ckpt-1000"`, relative to the directory or absolute).
    """
    try:
        with open(os.path.join(directory, "checkpoint"), encoding="utf-8") as f:
            found = _LATEST.search(f.read())
    except (OSError, UnicodeDecodeError):
        return None
    if found is None:
        return None
    # A text-format proto string: C escapes, non-ASCII as octal-escaped UTF-8 bytes.
    name = codecs.escape_decode(found.group(1).encode("utf-8"))[0].decode("utf-8", "replace")
    prefix = os.path.join(directory, name)  # an absolute `name` replaces the directory
    return prefix if os.path.exists(prefix + ".index") else None
