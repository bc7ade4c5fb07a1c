"""The TensorFlow-free checkpoint format code against TensorFlow itself (the reference).

TensorFlow's `SaveV2` op writes bundles our reader must read, and `tf.train.load_checkpoint`
must read what our writer writes, bit for bit; for the same tensors the two writers' files are
byte-identical.
"""

import os

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from kerasnlp4su.checkpoints import tf_bundle
from kerasnlp4su.checkpoints.readers import TF1CheckpointReader, latest_checkpoint
from kerasnlp4su.checkpoints.tf_bundle import (BundleEntry, BundleHeader, BundleReader,
                                               build_table, crc32c, mask_crc, read_table,
                                               write_bundle)


def _tensors():
    rng = np.random.default_rng(0)
    return {
        "bert/kernel": rng.standard_normal((3, 5)).astype("float32"),
        "half": rng.standard_normal(7).astype("float16"),
        "brain": rng.standard_normal((2, 3)).astype(ml_dtypes.bfloat16),
        "double": rng.standard_normal(4),
        "ids": np.array([[-(2**31), 7], [2**31 - 1, 0]], "int32"),
        "global_step": np.array(2**40 + 3, "int64"),  # a scalar, as in official releases
        "mask": np.array([True, False, True]),
        "bytes": np.arange(250, 256).astype("uint8"),
        "small": np.array([-128, 127], "int8"),
        "empty": np.zeros((0, 4), "float32"),
        "z/complex": (rng.standard_normal(2) + 1j).astype("complex64"),
        "名字/unicode": np.array([1.5, -0.0, np.inf], "float32"),
    }


def _assert_same(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()  # bit-exact: -0.0, inf and bfloat16 bits included


def _tf_save(prefix, tensors):
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])


def test_tensorflow_reads_our_files_bit_exactly_and_writes_the_same_bytes(tmp_path):
    tensors = _tensors()
    ours, theirs = str(tmp_path / "ours.ckpt"), str(tmp_path / "tf.ckpt")
    write_bundle(ours, tensors)
    tf_reader = tf.train.load_checkpoint(ours)
    assert tf_reader.get_variable_to_shape_map() == {n: list(a.shape) for n, a in tensors.items()}
    for name, array in tensors.items():
        _assert_same(np.asarray(tf_reader.get_tensor(name)), array)
    _tf_save(theirs, tensors)
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"ours.ckpt{suffix}").read_bytes() == \
            (tmp_path / f"tf.ckpt{suffix}").read_bytes()


def test_we_read_tensorflows_files_and_skip_strings(tmp_path):
    tensors = _tensors()
    prefix = str(tmp_path / "tf.ckpt")
    _tf_save(prefix, {**tensors, "_CHECKPOINTABLE_OBJECT_GRAPH": np.array(b"graph proto")})
    bundle = BundleReader(prefix)
    assert set(bundle.names()) == set(tensors) | {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    for name, array in tensors.items():
        _assert_same(bundle.read(name), array)
    reader = TF1CheckpointReader(prefix)  # string tensor and global_step: not weights
    assert reader.names() == set(tensors) - {"global_step"}
    with pytest.raises(ValueError, match="'_CHECKPOINTABLE_OBJECT_GRAPH' .* is a string"):
        bundle.read("_CHECKPOINTABLE_OBJECT_GRAPH")


def test_index_spanning_several_blocks_matches_tensorflow(tmp_path):
    # > 256 KiB of entries: several data blocks and index separators (shortened keys).
    tensors = {f"layer_{i:04d}/" + "x" * (480 + i % 7): np.full(1, i, "float32")
               for i in range(600)}
    write_bundle(str(tmp_path / "ours.ckpt"), tensors)
    _tf_save(str(tmp_path / "tf.ckpt"), tensors)
    index = (tmp_path / "ours.ckpt.index").read_bytes()
    assert len(index) > 262144  # TensorFlow's block size
    assert index == (tmp_path / "tf.ckpt.index").read_bytes()
    bundle = BundleReader(str(tmp_path / "ours.ckpt"))
    assert bundle.read("layer_0599/" + "x" * (480 + 599 % 7))[0] == 599


def test_sharded_checkpoint(tmp_path):
    # Two shards, as a multi-device save leaves them; TensorFlow is the reference reader.
    prefix = str(tmp_path / "m.ckpt")
    shards = [{"a": np.arange(4, dtype="float32"), "c": np.ones((2, 2), "int64")},
              {"b": np.arange(3, dtype="float16")}]
    items = []
    for shard_id, tensors in enumerate(shards):
        offset = 0
        with open(tf_bundle.data_filename(prefix, shard_id, 2), "wb") as f:
            for name, array in tensors.items():
                f.write(array.tobytes())
                entry = BundleEntry(dtype=tf_bundle._DT_OF_NUMPY[array.dtype],
                                    shape=array.shape, shard_id=shard_id, offset=offset,
                                    size=array.nbytes, crc32c=mask_crc(crc32c(array.tobytes())))
                items.append((name.encode(), entry.serialize()))
                offset += array.nbytes
    with open(prefix + ".index", "wb") as f:
        f.write(build_table([(b"", BundleHeader(num_shards=2).serialize())] + sorted(items)))
    expected = {**shards[0], **shards[1]}
    tf_reader, reader = tf.train.load_checkpoint(prefix), TF1CheckpointReader(prefix)
    for name, array in expected.items():
        _assert_same(np.asarray(tf_reader.get_tensor(name)), array)
        _assert_same(reader.get(name), array)
    os.remove(tf_bundle.data_filename(prefix, 1, 2))
    with pytest.raises(FileNotFoundError, match=r"m\.ckpt\.data-00001-of-00002'\] not found"):
        TF1CheckpointReader(prefix)


def test_flipped_index_byte_fails_the_block_checksum(tmp_path):
    prefix = str(tmp_path / "m.ckpt")
    write_bundle(prefix, {"w": np.ones(3, "float32")})
    index = bytearray((tmp_path / "m.ckpt.index").read_bytes())
    index[3] ^= 1  # inside the data block's entries
    with pytest.raises(ValueError, match=r"m\.ckpt\.index' is not a valid sstable: block checksum"):
        read_table(bytes(index), prefix + ".index")


def test_latest_checkpoint_follows_the_state_file(tmp_path):
    write_bundle(str(tmp_path / "model.ckpt-20"), {"w": np.ones(1, "float32")})
    write_bundle(str(tmp_path / "model.ckpt-10"), {"w": np.zeros(1, "float32")})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-20"\n'
                                         'all_model_checkpoint_paths: "model.ckpt-10"\n')
    assert latest_checkpoint(str(tmp_path)) == tf.train.latest_checkpoint(str(tmp_path))
    assert TF1CheckpointReader(str(tmp_path)).get("w")[0] == 1


def test_unsupported_dtype_is_named(tmp_path):
    with pytest.raises(ValueError, match="cannot write 'names' .* dtype <U1"):
        write_bundle(str(tmp_path / "m.ckpt"), {"names": np.array(["a"])})


def test_module_doctests():  # CRC32C's check value, Snappy decoding, the round trip
    import doctest

    results = doctest.testmod(tf_bundle)
    assert results.failed == 0 and results.attempted >= 4
