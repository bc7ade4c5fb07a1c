"""Readers that expose a checkpoint as `{official variable name: numpy array}`."""

import os

import numpy as np

# Variables a training run leaves in official checkpoints that are not weights.
_IGNORED_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/lamb_m", "/lamb_v",
                     "/Momentum", "/ExponentialMovingAverage")
_IGNORED_NAMES = ("global_step", "_CHECKPOINTABLE_OBJECT_GRAPH", "good_steps", "loss_scale")


def is_training_state(name):
    """True for optimizer slots, step counters and similar non-weights."""
    return name in _IGNORED_NAMES or name.endswith(_IGNORED_SUFFIXES)


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
                f"or truncated ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from e
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
                f"is corrupt or truncated ({type(e).__name__})") from e


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
        raise FileNotFoundError(
            f"TF checkpoint {path!r} not found: expected the file {path + '.index'!r} "
            f"(pass the prefix, e.g. '.../bert_model.ckpt')")
    return path
