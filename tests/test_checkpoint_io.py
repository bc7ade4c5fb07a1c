"""Checkpoint reading/writing edge cases: atomic saves, odd paths, training state."""

import os

import numpy as np
import pytest
import tensorflow as tf

from kerasnlp4su.checkpoints import writer
from kerasnlp4su.checkpoints.readers import TF1CheckpointReader, is_training_state
from kerasnlp4su.checkpoints.writer import write_tf1_checkpoint


def test_round_trip_and_path_forms(tmp_path):
    tensors = {"a/kernel": np.arange(6, dtype="float32").reshape(2, 3), "b": np.ones(4, "float32")}
    prefix = write_tf1_checkpoint(str(tmp_path / "m.ckpt"), tensors)
    for form in (prefix, prefix + ".index", str(tmp_path)):
        reader = TF1CheckpointReader(form)
        assert reader.names() == {"a/kernel", "b"}
        np.testing.assert_array_equal(reader.get("a/kernel"), tensors["a/kernel"])
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".ckpt-tmp") or f.endswith(".bak")]


def test_training_state_is_hidden():
    assert is_training_state("global_step")
    assert is_training_state("bert/pooler/dense/kernel/adam_m")
    assert not is_training_state("bert/pooler/dense/kernel")


def test_interrupted_save_never_mixes_old_and_new(tmp_path, monkeypatch):
    prefix = str(tmp_path / "m.ckpt")
    old = {"w": np.zeros(3, "float32")}
    write_tf1_checkpoint(prefix, old)
    real_replace = os.replace
    calls = []

    def crash_on_new_index(src, dst):
        # Let the old files move to .bak and the new data file in; crash before the new index.
        if ".ckpt-tmp-" in src and dst.endswith(".index"):
            raise KeyboardInterrupt("simulated crash")
        calls.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", crash_on_new_index)
    with pytest.raises(KeyboardInterrupt):
        write_tf1_checkpoint(prefix, {"w": np.ones(3, "float32")})
    monkeypatch.setattr(writer.os, "replace", real_replace)
    # No index is in place: loading fails loudly instead of pairing the old
    # index with new data; the complete old checkpoint is kept as .bak files.
    with pytest.raises(FileNotFoundError, match="m.ckpt.index"):
        TF1CheckpointReader(prefix)
    backups = sorted(f for f in os.listdir(tmp_path) if f.endswith(".bak"))
    assert backups == ["m.ckpt.data-00000-of-00001.bak", "m.ckpt.index.bak"]
    for f in backups:
        os.replace(tmp_path / f, tmp_path / f[:-4])
    np.testing.assert_array_equal(tf.train.load_checkpoint(prefix).get_tensor("w"), old["w"])


def test_crash_before_swap_keeps_old_checkpoint(tmp_path, monkeypatch):
    prefix = str(tmp_path / "m.ckpt")
    write_tf1_checkpoint(prefix, {"w": np.zeros(3, "float32")})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_swap_into_place", boom)
    with pytest.raises(OSError, match="disk full"):
        write_tf1_checkpoint(prefix, {"w": np.ones(3, "float32")})
    np.testing.assert_array_equal(TF1CheckpointReader(prefix).get("w"), np.zeros(3))
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".ckpt-tmp")]


def test_empty_directory_and_garbage_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TF checkpoint"):
        TF1CheckpointReader(str(tmp_path))
    (tmp_path / "x.ckpt.index").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        TF1CheckpointReader(str(tmp_path / "x.ckpt"))
