"""HuggingFace-format weight files (`model.safetensors`, sharded or not), without torch.

`SafetensorsCheckpointReader` exposes an HF file under the *official* TF1
names every model's `variable_mapping()` speaks, through a family's name
table (`kerasnlp4su.checkpoints.names.HFFamily`) handed in by the caller;
`write_hf_directory` writes `model.safetensors` + `config.json` atomically.
"""

import json
import os

import numpy as np

from kerasnlp4su.checkpoints.atomic import atomic_write, atomic_write_text
from kerasnlp4su.checkpoints.names import modern_key
from kerasnlp4su.checkpoints.readers import CheckpointReader

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"


def resolve_hf_weights(path):
    """Path of the `.safetensors` file (or shard index) for a file or directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME):
            candidate = os.path.join(path, name)
            if os.path.exists(candidate):
                return candidate
        if any(f in os.listdir(path) for f in ("pytorch_model.bin", "tf_model.h5")):
            raise FileNotFoundError(
                f"directory {path!r} has HF weights only as pytorch_model.bin/tf_model.h5; "
                f"kerasnlp4su reads {WEIGHTS_NAME!r} (convert once with transformers: "
                "Model.from_pretrained(dir).save_pretrained(dir, safe_serialization=True))")
        raise FileNotFoundError(f"no {WEIGHTS_NAME!r} in directory {path!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"HF weights file {path!r} not found")
    return path


def is_hf_config(config):
    """True for a `transformers` config dict (official TF1 configs have no `model_type`)."""
    return isinstance(config, dict) and ("model_type" in config or "architectures" in config)


def hf_config_path(checkpoint_path):
    """The `config.json` beside HF weights at `checkpoint_path`, or None."""
    if checkpoint_path is None or not isinstance(checkpoint_path, (str, os.PathLike)):
        return None
    path = os.fspath(checkpoint_path)
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    is_hf = path.endswith((".safetensors", WEIGHTS_INDEX_NAME)) or any(
        os.path.exists(os.path.join(directory, n)) for n in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME))
    candidate = os.path.join(directory, CONFIG_NAME)
    return candidate if is_hf and os.path.exists(candidate) else None


def _open_safetensors(path):
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(path, framework="numpy")
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"cannot read HF weights file {path!r}: it is not a valid safetensors "
                         f"file, or it is corrupt or truncated ({e})") from e


class SafetensorsCheckpointReader(CheckpointReader):
    """An HF `model.safetensors` file seen under official TF1 names.

    Args:
        path: a `.safetensors` file, a `model.safetensors.index.json` shard
            index, or a directory holding either.
        table: the family's `HFFamily` name table.
        known_tables: every family's table, to name the family of a file
            that holds none of `table`'s tensors.
        other_bases: HF base-model prefixes of families no table reads (for
            that same message).

    Tensors are read lazily, one at a time, with `safetensors`' numpy
    backend (bfloat16 is widened to float32 through `ml_dtypes`). Keys
    with no official counterpart (buffers such as `position_ids`, tied
    decoder weights, task heads) are listed in `untranslated`.
    """

    def __init__(self, path, table, known_tables=(), other_bases=()):
        self.family = table
        self._known_tables = tuple(known_tables)
        self._other_bases = tuple(other_bases)
        self.path = resolve_hf_weights(path)
        self._files = self._index(self.path)  # hf key -> file
        self._info = {}  # hf key -> (dtype string, shape)
        for filename in sorted(set(self._files.values())):
            handle = _open_safetensors(filename)
            for key in handle.keys():
                if self._files.get(key) == filename:
                    info = handle.get_slice(key)
                    self._info[key] = (info.get_dtype(), tuple(info.get_shape()))
        missing = sorted(set(self._files) - set(self._info))
        if missing:
            raise ValueError(f"HF shard index {self.path!r} lists tensors its shards lack: "
                             f"{missing[:5]}")
        self._official = {}  # official name -> (hf key, transpose, rank)
        self.untranslated = []
        prefix = self._bare_prefix()
        for key in sorted(self._info):
            found = self.family.to_official(modern_key(prefix + key))
            if found is None:
                self.untranslated.append(key)
                continue
            official, transpose, rank = found
            if official not in self._official or rank < self._official[official][2]:
                self._official[official] = (key, transpose, rank)
        if not any("encoder/" in name for name in self._official):
            self._raise_foreign()

    @staticmethod
    def _index(path):
        if not path.endswith(".json"):
            return {key: path for key in _open_safetensors(path).keys()}
        try:
            with open(path, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"cannot read HF shard index {path!r}: {e}") from e
        directory = os.path.dirname(path)
        files = {key: os.path.join(directory, shard) for key, shard in weight_map.items()}
        for shard in set(files.values()):
            if not os.path.exists(shard):
                raise FileNotFoundError(f"HF weights shard {shard!r} (listed in {path!r}) not found")
        return files

    def _bare_prefix(self):
        """`'bert.'` when the file was saved from a bare base model (no prefix)."""
        base = self.family.base + "."
        keys = self._info
        if not any(k.startswith(base) for k in keys) and \
                any(k.startswith("embeddings.") for k in keys):
            return base
        return ""

    def _raise_foreign(self):
        tops = {k.split(".", 1)[0] for k in self._info}
        known = {}
        for table in self._known_tables:
            known.setdefault(table.base, table.name)
        other = [known.get(b, b) for b in sorted(tops & (set(known) | set(self._other_bases)))]
        # Bare base models have no prefix: recognise them by telltale modules.
        other += [table.name for table in self._known_tables for marker in table.markers
                  if table.name not in other and any(marker in k for k in self._info)]
        other = list(dict.fromkeys(other))
        hint = ""
        if other:
            hint = (f" It looks like an HF {'/'.join(other)} model; pass the matching "
                    "model= argument.")
        raise ValueError(
            f"HF weights file {self.path!r} holds no tensor of the {self.family.name} "
            f"model (expected keys such as {self.family.base + '.embeddings.word_embeddings.weight'!r})."
            + hint)

    def names(self):
        return set(self._official)

    def _lookup(self, name):
        try:
            return self._official[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in HF weights file {self.path!r} (as "
                           f"{self.family.to_hf(name)})") from None

    def hf_name(self, name):
        """The HF key an official name is read from."""
        return self._lookup(name)[0]

    def shape(self, name):
        key, transpose, _ = self._lookup(name)
        shape = self._info[key][1]
        return tuple(reversed(shape)) if transpose else shape

    def get(self, name):
        key, transpose, _ = self._lookup(name)
        value = self._read(key)
        return np.ascontiguousarray(value.T) if transpose else value

    def _read(self, key):
        filename = self._files[key]
        dtype = self._info[key][0]
        try:
            if dtype == "BF16":
                import ml_dtypes  # noqa: F401  (registers numpy's bfloat16 for safetensors)

                return _open_safetensors(filename).get_tensor(key).astype(np.float32)
            return _open_safetensors(filename).get_tensor(key)
        except (ValueError, OSError, TypeError) as e:
            raise ValueError(f"cannot read tensor {key!r} from HF weights file {filename!r}: "
                             f"corrupt or truncated ({e})") from e


def write_hf_directory(directory, tensors, config, vocab_path=None):
    """Write `{HF name: array}` as `model.safetensors` and `config` as `config.json`.

    Each file is written atomically (`kerasnlp4su.checkpoints.atomic`), and
    `vocab_path` is copied to `vocab.txt` when given. Returns `directory`.

    Example:
    >>> write_hf_directory("out/", {"bert.pooler.dense.bias": np.zeros(4, "float32")},
    ...                    {"model_type": "bert"})  # doctest: +SKIP
    """
    import safetensors.numpy

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    atomic_write(os.path.join(directory, WEIGHTS_NAME),
                 lambda tmp: safetensors.numpy.save_file(tensors, tmp, metadata={"format": "pt"}),
                 suffix=".safetensors")
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write_text(os.path.join(directory, CONFIG_NAME), text)
    if vocab_path is not None:
        with open(vocab_path, encoding="utf-8") as f:
            vocab = f.read()
        atomic_write_text(os.path.join(directory, "vocab.txt"), vocab)
    return directory
