"""TensorFlow's checkpoint format ("tensor bundle", V2), read and written without TensorFlow.

A checkpoint with prefix `model.ckpt` is two kinds of file:

* `model.ckpt.index`: an SSTable (LevelDB's sorted-table format) mapping each tensor's name to a
  `BundleEntryProto` (dtype, shape, shard, offset, size, masked CRC32C of the bytes); the entry
  under the empty key is a `BundleHeaderProto` (number of shards, endianness, format version).
* `model.ckpt.data-0000i-of-0000n`: the tensors' raw bytes, back to back.

Facts taken from TensorFlow's `core/util/tensor_bundle/tensor_bundle.{h,cc}`, `tensor_bundle.proto`
and the table code in `tsl/lib/io/` (`format.{h,cc}`, `block.cc`, `block_builder.cc`,
`table_builder.cc`); the code is written from them, not copied. Only the few protobuf fields a
checkpoint of plain tensors needs are decoded, by hand, so neither `protobuf` nor `tensorflow` is
imported. Checksums use `google-crc32c` (hardware CRC32C, several GB/s).

>>> import numpy as np, tempfile, os
>>> prefix = os.path.join(tempfile.mkdtemp(), "model.ckpt")
>>> write_bundle(prefix, {"w": np.arange(3, dtype="float32")})
>>> BundleReader(prefix).read("w")
array([0., 1., 2.], dtype=float32)
"""

import os
import struct
from dataclasses import dataclass, field

import google_crc32c
import ml_dtypes
import numpy as np

# --------------------------------------------------------------------------- dtypes
# TensorFlow's DataType enum (types.proto) for the dtypes a weights checkpoint holds.
DT_STRING = 7
DT_VARIANT = 21
_NUMPY_OF_DT = {
    1: np.dtype("float32"), 2: np.dtype("float64"), 3: np.dtype("int32"), 4: np.dtype("uint8"),
    5: np.dtype("int16"), 6: np.dtype("int8"), 8: np.dtype("complex64"), 9: np.dtype("int64"),
    10: np.dtype("bool"), 14: np.dtype(ml_dtypes.bfloat16), 17: np.dtype("uint16"),
    18: np.dtype("complex128"), 19: np.dtype("float16"), 22: np.dtype("uint32"),
    23: np.dtype("uint64"),
}
_DT_OF_NUMPY = {dtype: dt for dt, dtype in _NUMPY_OF_DT.items()}

HEADER_KEY = b""  # the BundleHeaderProto's key: sorts first
BUNDLE_VERSION = 1  # kTensorBundleVersion: what this module writes and understands


class CorruptBundleError(ValueError):
    """A checkpoint file is damaged; `tensor` names the tensor concerned, if one is."""

    def __init__(self, message, tensor=None):
        super().__init__(message)
        self.tensor = tensor


def data_filename(prefix, shard, num_shards):
    """`prefix.data-0000i-of-0000n`, as TensorFlow names a data shard."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


# --------------------------------------------------------------------------- CRC32C
_MASK_DELTA = 0xA282EAD8


def crc32c(data):
    """CRC32C (Castagnoli) of a bytes-like object or a C-contiguous array.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    if isinstance(data, np.ndarray):
        if not data.size:
            return 0
        data = data.reshape(-1).view(np.uint8)
        data.flags.writeable = False  # google-crc32c accepts read-only buffers only
    return google_crc32c.value(data)


def mask_crc(crc):
    """LevelDB's masking of a stored CRC (so that CRCs of CRCs stay distinguishable)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- protobuf wire format
def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _varint(value):
    if value < 0:
        value += 1 << 64  # protobuf encodes negative int64 as its 64-bit two's complement
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _proto_fields(buf):
    """Yield `(field number, value)`: an int for varint/fixed fields, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _read_varint(buf, pos)
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            value = bytes(buf[pos:pos + length])
            if len(value) != length:
                raise ValueError("length-delimited field runs past the end of its buffer")
            pos += length
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            if pos + width > len(buf):
                raise ValueError("fixed-width field runs past the end of its buffer")
            value = int.from_bytes(buf[pos:pos + width], "little")
            pos += width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, value


def _int64(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _field(number, value):
    """One varint (int) or length-delimited (bytes) field."""
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


@dataclass
class BundleEntry:
    """The fields of a `BundleEntryProto` that a plain (unpartitioned) tensor uses."""

    dtype: int = 0
    shape: tuple = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0  # masked
    sliced: bool = False  # a partitioned variable: its data lives in per-slice entries

    @classmethod
    def parse(cls, data):
        entry, dims = cls(), []
        for number, value in _proto_fields(data):
            if number == 1:
                entry.dtype = value
            elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
                for dim_number, dim in _proto_fields(value):
                    if dim_number == 2:
                        dims.append(_int64(dict(_proto_fields(dim)).get(1, 0)))
            elif number == 3:
                entry.shard_id = value
            elif number == 4:
                entry.offset = value
            elif number == 5:
                entry.size = value
            elif number == 6:
                entry.crc32c = value
            elif number == 7:
                entry.sliced = True
        entry.shape = tuple(dims)
        return entry

    def serialize(self):
        # Fields in number order, proto3 defaults (0) left out, as protobuf serialises them; the
        # shape message is always present (TensorFlow sets it, empty for a scalar).
        shape = b"".join(_field(2, _field(1, d) if d else b"") for d in self.shape)
        out = _field(1, self.dtype) if self.dtype else b""
        out += _field(2, shape)
        for number, value in ((3, self.shard_id), (4, self.offset), (5, self.size)):
            if value:
                out += _field(number, value)
        if self.crc32c:
            out += _varint(6 << 3 | 5) + struct.pack("<I", self.crc32c)
        return out


@dataclass
class BundleHeader:
    """`BundleHeaderProto`: number of data shards, byte order, format version."""

    num_shards: int = 1
    big_endian: bool = False
    producer: int = BUNDLE_VERSION
    min_consumer: int = 0
    bad_consumers: list = field(default_factory=list)

    @classmethod
    def parse(cls, data):
        header = cls(num_shards=0, producer=0)
        for number, value in _proto_fields(data):
            if number == 1:
                header.num_shards = value
            elif number == 2:
                header.big_endian = value == 1
            elif number == 3:  # VersionDef {producer = 1, min_consumer = 2, bad_consumers = 3}
                for version_number, version in _proto_fields(value):
                    if version_number == 1:
                        header.producer = version
                    elif version_number == 2:
                        header.min_consumer = version
                    elif version_number == 3:  # packed or not
                        header.bad_consumers += (
                            [version] if isinstance(version, int)
                            else _unpack_varints(version))
        return header

    def serialize(self):
        version = (_field(1, self.producer) if self.producer else b"") + (
            _field(2, self.min_consumer) if self.min_consumer else b"")
        return (_field(1, self.num_shards) + (_field(2, 1) if self.big_endian else b"")
                + _field(3, version))


def _unpack_varints(data):
    values, pos = [], 0
    while pos < len(data):
        value, pos = _read_varint(data, pos)
        values.append(value)
    return values


# --------------------------------------------------------------------------- SSTable (LevelDB table)
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic number
_BLOCK_TRAILER_SIZE = 5  # compression type byte + masked CRC32C of block and type
_NO_COMPRESSION, _SNAPPY = 0, 1
_BLOCK_SIZE = 262144  # TensorFlow's table::Options defaults
_RESTART_INTERVAL = 16


def read_table(data, filename):
    """All `(key, value)` pairs of an SSTable held in `data` (bytes), in key order.

    Block checksums are verified. `filename` only names the file in errors.
    """
    def corrupt(detail):
        return CorruptBundleError(f"{filename!r} is not a valid sstable: {detail}")

    if len(data) < _FOOTER_SIZE:
        raise corrupt(f"{len(data)} bytes, shorter than the {_FOOTER_SIZE}-byte table footer")
    footer = data[-_FOOTER_SIZE:]
    if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
        raise corrupt("bad magic number in the footer (truncated, or not a checkpoint index)")
    try:
        _, pos = _read_varint(footer, 0)  # the metaindex block: no filters in a bundle
        _, pos = _read_varint(footer, pos)
        index_offset, pos = _read_varint(footer, pos)
        index_size, _ = _read_varint(footer, pos)
        entries = []
        for _, handle in _block_entries(_read_block(data, index_offset, index_size)):
            offset, pos = _read_varint(handle, 0)
            size, _ = _read_varint(handle, pos)
            entries += _block_entries(_read_block(data, offset, size))
    except (ValueError, IndexError, struct.error) as e:
        if isinstance(e, CorruptBundleError):
            raise
        raise corrupt(str(e)) from e
    return entries


def _read_block(data, offset, size):
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise ValueError(f"block at bytes {offset}..{end} lies past the end of the table")
    contents = data[offset:end]
    kind = data[end]
    stored = int.from_bytes(data[end + 1:end + 5], "little")
    if mask_crc(google_crc32c.extend(crc32c(contents), data[end:end + 1])) != stored:
        raise ValueError(f"block checksum mismatch at bytes {offset}..{end}")
    if kind == _SNAPPY:
        return snappy_decompress(contents)
    if kind != _NO_COMPRESSION:
        raise ValueError(f"unknown block compression type {kind}")
    return contents


def _block_entries(block):
    """A block's `(key, value)` pairs: keys share prefixes with their predecessor."""
    if len(block) < 4:
        raise ValueError("block shorter than its restart count")
    num_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise ValueError("block's restart array is larger than the block")
    entries, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = _read_varint(block, pos)
        unshared, pos = _read_varint(block, pos)
        value_size, pos = _read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_size > limit:
            raise ValueError("block entry runs past the end of its block")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_size]))
        pos += value_size
    return entries


def snappy_decompress(data):
    """Decode a raw Snappy block (TensorFlow before 1.2 could compress index blocks).

    >>> snappy_decompress(bytes([9, 0x08]) + b"abc" + bytes([0x09, 3]))
    b'abcabcabc'
    """
    length, pos = _read_varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; lengths over 60 follow the tag in 1-4 bytes
            size = tag >> 2
            if size >= 60:
                width = size - 59
                size = int.from_bytes(data[pos:pos + width], "little")
                pos += width
            size += 1
            out += data[pos:pos + size]
            pos += size
            continue
        if kind == 1:
            size, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            size, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise ValueError("snappy copy reaches before the start of the block")
        for _ in range(size):  # byte by byte: a copy may overlap its own output
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError(f"snappy block decodes to {len(out)} bytes, header says {length}")
    return bytes(out)


class _BlockBuilder:
    """LevelDB's block layout: prefix-compressed keys, a restart point every `interval` keys."""

    def __init__(self, interval):
        self.interval, self.buffer, self.restarts = interval, bytearray(), [0]
        self.count, self.last_key = 0, b""

    def add(self, key, value):
        shared = 0
        if self.count < self.interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.count = 0
        self.buffer += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        self.buffer += key[shared:] + value
        self.last_key, self.count = key, self.count + 1

    def size_estimate(self):
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self):
        return bytes(self.buffer) + b"".join(struct.pack("<I", r) for r in self.restarts) + \
            struct.pack("<I", len(self.restarts))

    def empty(self):
        return not self.buffer


def _shortest_separator(start, limit):
    # LevelDB's bytewise comparator: a short key k with start <= k < limit.
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)):
        byte = start[common]
        if byte < 0xFF and byte + 1 < limit[common]:
            return start[:common] + bytes([byte + 1])
    return start


def _short_successor(key):
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def build_table(items):
    """An SSTable's bytes for `(key, value)` pairs given in strictly increasing key order.

    Laid out as TensorFlow's `table::TableBuilder` lays it out with the bundle's options
    (256 KiB blocks, a restart every 16 keys, no compression), so the files match byte for byte.
    """
    out, index = bytearray(), _BlockBuilder(1)
    block, last_key, pending = _BlockBuilder(_RESTART_INTERVAL), None, None

    def write_block(contents):
        handle = _varint(len(out)) + _varint(len(contents))
        trailer = bytes([_NO_COMPRESSION])
        out.extend(contents + trailer)
        out.extend(struct.pack("<I", mask_crc(google_crc32c.extend(crc32c(contents), trailer))))
        return handle

    for key, value in items:
        if pending is not None:
            index.add(_shortest_separator(last_key, key), pending)
            pending = None
        block.add(key, value)
        last_key = key
        if block.size_estimate() >= _BLOCK_SIZE:
            pending = write_block(block.finish())
            block = _BlockBuilder(_RESTART_INTERVAL)
    if not block.empty():
        pending = write_block(block.finish())
    if pending is not None:
        index.add(_short_successor(last_key), pending)
    metaindex_handle = write_block(_BlockBuilder(_RESTART_INTERVAL).finish())
    index_handle = write_block(index.finish())
    footer = (metaindex_handle + index_handle).ljust(_FOOTER_SIZE - 8, b"\0")
    out += footer + struct.pack("<Q", _TABLE_MAGIC)
    return bytes(out)


# --------------------------------------------------------------------------- bundles
class BundleReader:
    """Reads a checkpoint's tensors by name, verifying each tensor's checksum.

    Opening reads the `.index` only (a few KB to a few hundred KB); `check_data_files()` checks
    that every data shard exists and is long enough; `read(name)` reads one tensor.

    >>> reader = BundleReader("checkpoints/tiny_bert/bert_model.ckpt")  # doctest: +SKIP
    >>> reader.shape("bert/embeddings/word_embeddings")  # doctest: +SKIP
    (128, 32)
    """

    def __init__(self, prefix):
        self.prefix = os.fspath(prefix)
        index_path = self.prefix + ".index"
        with open(index_path, "rb") as f:
            items = read_table(f.read(), index_path)
        if not items or items[0][0] != HEADER_KEY:
            raise CorruptBundleError(f"{index_path!r} is not a valid sstable of a checkpoint: "
                                     "its header entry is missing")
        try:
            self.header = BundleHeader.parse(items[0][1])
            self.entries = {key.decode("utf-8"): BundleEntry.parse(value)
                            for key, value in items[1:]}
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptBundleError(
                f"{index_path!r} is not a valid sstable of a checkpoint: an entry does not "
                f"parse ({e})") from e
        self._check_version(index_path)

    def _check_version(self, index_path):
        header = self.header
        if header.min_consumer > BUNDLE_VERSION or BUNDLE_VERSION in header.bad_consumers:
            raise CorruptBundleError(
                f"{index_path!r}: checkpoint format version {header.producer} needs a reader of "
                f"version >= {header.min_consumer}; this reader is version {BUNDLE_VERSION}")
        if header.num_shards < 1:
            raise CorruptBundleError(f"{index_path!r} is not a valid sstable of a checkpoint: "
                                     f"its header says {header.num_shards} data shards")

    def shard_path(self, shard_id):
        return data_filename(self.prefix, shard_id, self.header.num_shards)

    def check_data_files(self):
        """Every shard the index uses exists and holds all the bytes the index places in it."""
        by_shard = {}
        for name, entry in self.entries.items():
            if not entry.sliced:
                by_shard.setdefault(entry.shard_id, []).append((entry.offset, entry.size, name))
        for shard_id, spans in sorted(by_shard.items()):
            path = self.shard_path(shard_id)
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"TF checkpoint {self.prefix!r} is incomplete: data file {path!r} not found "
                    f"(the index names {self.header.num_shards} shard(s))")
            actual = os.path.getsize(path)
            cut = [(offset, size, name) for offset, size, name in spans if offset + size > actual]
            if cut:
                offset, size, name = min(cut)  # the first tensor the truncation cuts off
                raise CorruptBundleError(
                    f"data file {path!r} is truncated: {actual} bytes, but the index places "
                    f"{name!r} at bytes {offset}..{offset + size}", tensor=name)

    def names(self):
        """Names of all tensors except partition slices (string tensors included)."""
        return [name for name in self.entries if not name.startswith("\0")]

    def shape(self, name):
        return self.entries[name].shape

    def numpy_dtype(self, name):
        """NumPy dtype of a tensor, or None for strings and types NumPy cannot hold."""
        return _NUMPY_OF_DT.get(self.entries[name].dtype)

    def read(self, name, verify=True):
        """Tensor `name` as a new NumPy array; `verify` checks its CRC32C (on by default)."""
        entry = self.entries[name]
        dtype = _NUMPY_OF_DT.get(entry.dtype)
        if entry.sliced:
            raise ValueError(f"{name!r} in checkpoint {self.prefix!r} is a partitioned variable "
                             "(saved as slices); reading slices is not supported")
        if entry.dtype in (DT_STRING, DT_VARIANT):
            raise ValueError(f"{name!r} in checkpoint {self.prefix!r} is a string or variant "
                             "tensor, not a weight: this reader reads numeric tensors only")
        if dtype is None:
            raise ValueError(f"{name!r} in checkpoint {self.prefix!r} has TensorFlow dtype "
                             f"{entry.dtype}, which this reader does not read")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise CorruptBundleError(
                f"index entry of {name!r} says {entry.size} bytes, but shape {entry.shape} of "
                f"{dtype} needs {count * dtype.itemsize}", tensor=name)
        array = np.empty(entry.shape, dtype)
        path = self.shard_path(entry.shard_id)
        with open(path, "rb", buffering=0) as f:
            f.seek(entry.offset)
            got = f.readinto(memoryview(array.reshape(-1).view(np.uint8))) if count else 0
        if got != entry.size:
            raise CorruptBundleError(f"data file {path!r} ends inside {name!r}: got {got} of "
                                     f"{entry.size} bytes at offset {entry.offset}", tensor=name)
        if verify and entry.size and mask_crc(crc32c(array.view())) != entry.crc32c:
            raise CorruptBundleError(
                f"checksum mismatch for {name!r} in data file {path!r} (crc32c of bytes "
                f"{entry.offset}..{entry.offset + entry.size} differs from the index's)",
                tensor=name)
        if self.header.big_endian and dtype.itemsize > 1:
            array = array.byteswap().view(dtype)
        return array


def write_bundle(prefix, tensors):
    """Write `{name: array}` as a single-shard checkpoint at `prefix` (no atomicity: see writer).

    Every NumPy dtype TensorFlow has (floats incl. bfloat16/float16, ints, bool, complex) is
    accepted; arrays are stored little-endian and C-ordered, in name order, without padding.
    """
    prefix = os.fspath(prefix)
    arrays = {}
    for name, value in tensors.items():
        array = np.asarray(value)
        key = name.encode("utf-8")
        if not key or key.startswith(b"\0"):
            raise ValueError(f"cannot write tensor name {name!r}: empty or starting with NUL is "
                             "reserved by the checkpoint format")
        if array.dtype.byteorder == ">":  # the format (and this module) is little-endian
            array = array.astype(array.dtype.newbyteorder("<"))
        if array.dtype not in _DT_OF_NUMPY:
            raise ValueError(f"cannot write {name!r} to a TF checkpoint: dtype {array.dtype} has "
                             "no TensorFlow equivalent")
        # Not np.ascontiguousarray: it turns a scalar (e.g. `global_step`) into shape (1,).
        arrays[key] = array if array.flags.c_contiguous else array.copy(order="C")
    entries, offset = [], 0
    with open(data_filename(prefix, 0, 1), "wb") as f:
        for key in sorted(arrays):
            array = arrays[key]
            f.write(memoryview(array.reshape(-1).view(np.uint8)) if array.size else b"")
            entry = BundleEntry(dtype=_DT_OF_NUMPY[array.dtype],
                                shape=array.shape, offset=offset, size=array.nbytes,
                                crc32c=mask_crc(crc32c(array)))
            entries.append((key, entry.serialize()))
            offset += array.nbytes
    table = build_table([(HEADER_KEY, BundleHeader().serialize())] + entries)
    with open(prefix + ".index", "wb") as f:
        f.write(table)
