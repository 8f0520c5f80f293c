"""A small reader of TensorFlow's checkpoint format (TensorBundle V2), in numpy alone.

A checkpoint ``PREFIX`` is two files: ``PREFIX.index``, a LevelDB-style sorted table that maps
each tensor's name to a ``BundleEntryProto`` (dtype, shape, byte offset and size in the data
file, CRC32C), and ``PREFIX.data-00000-of-00001``, the tensors' raw little-endian bytes one
after another. This module parses exactly that, so that published TensorFlow weights can be
converted to torch without TensorFlow installed (nothing in it executes code from the files:
every field is a number or a name, and every offset is bounds-checked).

Format references: tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc} (the bundle),
tensorflow/core/protobuf/tensor_bundle.proto (the entries), and LevelDB's doc/table_format.md
(the table: data blocks of prefix-compressed entries, an index block, a 48-byte footer).
TensorFlow writes the index table uncompressed, which is all this reader accepts.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from pipeline.errors import DataFormatError

_TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB's table magic number, the footer's last 8 bytes
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes CRC after every block
# TensorFlow DataType enum values (types.proto) this reader understands.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 19: np.dtype("<f2"),
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise DataFormatError("TensorFlow checkpoint index: malformed varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a serialized protobuf message, values unparsed."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:  # varint
            value, pos = _varint(buf, pos)
            out.append((field, value))
        elif wire == 1:  # fixed64
            out.append((field, buf[pos:pos + 8]))
            pos += 8
        elif wire == 2:  # length-delimited
            length, pos = _varint(buf, pos)
            out.append((field, buf[pos:pos + length]))
            pos += length
        elif wire == 5:  # fixed32
            out.append((field, buf[pos:pos + 4]))
            pos += 4
        else:
            raise DataFormatError(f"TensorFlow checkpoint index: unsupported protobuf wire type {wire}")
    if pos != len(buf):
        raise DataFormatError("TensorFlow checkpoint index: truncated protobuf message")
    return out


def _block(data: bytes, offset: int, size: int) -> bytes:
    """The contents of the table block at (offset, size), checked to be inside the file and uncompressed."""
    end = offset + size
    if offset < 0 or end + _BLOCK_TRAILER > len(data):
        raise DataFormatError("TensorFlow checkpoint index: block outside the file")
    if data[end] != 0:
        raise DataFormatError("TensorFlow checkpoint index: compressed blocks are not supported")
    return data[offset:end]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block (keys are prefix-compressed against the previous one)."""
    if len(block) < 4:
        raise DataFormatError("TensorFlow checkpoint index: block too short")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise DataFormatError("TensorFlow checkpoint index: bad restart array")
    entries, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise DataFormatError("TensorFlow checkpoint index: bad block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def _table_entries(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB-format table, in key order."""
    if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise DataFormatError("not a TensorFlow checkpoint index (no table footer)")
    footer = data[len(data) - _FOOTER_SIZE:]
    _, pos = _varint(footer, 0)  # metaindex handle: offset
    _, pos = _varint(footer, pos)  # metaindex handle: size (unused: TF writes no meta blocks)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    entries = []
    for _, handle in _block_entries(_block(data, index_offset, index_size)):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        entries.extend(_block_entries(_block(data, offset, size)))
    return entries


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int, int]:
    """A BundleEntryProto: (dtype, shape, shard_id, offset, size)."""
    dtype, shape, shard, offset, size = 0, [], 0, 0, 0
    for field, v in _proto_fields(value):
        if field == 1:
            dtype = int(v)
        elif field == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            for dim_field, dim in _proto_fields(bytes(v)):
                if dim_field == 2:
                    sizes = [int(s) for f, s in _proto_fields(bytes(dim)) if f == 1]
                    shape.append(sizes[0] if sizes else 0)
        elif field == 3:
            shard = int(v)
        elif field == 4:
            offset = int(v)
        elif field == 5:
            size = int(v)
        elif field == 7:
            raise DataFormatError("TensorFlow checkpoint: sliced (partitioned) tensors are not supported")
    return dtype, tuple(shape), shard, offset, size


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the TensorFlow checkpoint ``prefix`` (``prefix.index`` + its data shard).

    A folder as ``prefix`` means the checkpoint saved with a prefix ending in a slash (files
    ``folder/.index`` and ``folder/.data-00000-of-00001``), as musicnn's are.

    Returns name -> array (a copy, so the file is not held open). A missing file, a malformed
    index, an unknown dtype or a tensor whose bytes do not fit its shape raises a
    `DataFormatError` naming the file.

    Examples
    --------
    >>> weights = read_checkpoint("musicnn/MTT_musicnn/")  # doctest: +SKIP
    >>> weights["dense_1/kernel"].shape  # doctest: +SKIP
    (200, 50)
    """
    prefix = os.path.join(prefix, "") if Path(prefix).is_dir() else str(prefix)
    index_path = Path(prefix + ".index")
    data_path = Path(prefix + ".data-00000-of-00001")
    for path in (index_path, data_path):
        if not path.is_file():
            raise DataFormatError(f"{path}: TensorFlow checkpoint file missing")
    try:
        entries = _table_entries(index_path.read_bytes())
    except DataFormatError as exc:
        raise DataFormatError(f"{index_path}: {exc}") from None
    data = data_path.read_bytes()
    tensors: dict[str, np.ndarray] = {}
    for key, value in entries:
        if key == b"":  # the BundleHeaderProto (shard count, endianness, version)
            continue
        name = key.decode("utf-8", errors="replace")
        dtype_id, shape, shard, offset, size = _entry(value)
        if dtype_id not in _DTYPES:
            raise DataFormatError(f"{index_path}: tensor {name!r} has unsupported dtype {dtype_id}")
        if shard != 0:
            raise DataFormatError(f"{index_path}: tensor {name!r} is in shard {shard}; only one shard is supported")
        dtype = _DTYPES[dtype_id]
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if size != expected or offset < 0 or offset + size > len(data):
            raise DataFormatError(f"{data_path}: tensor {name!r} ({size} bytes at {offset}) does not fit shape {shape}")
        tensors[name] = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=offset).reshape(
            shape).copy()
    return tensors
