"""Reading and writing the IDX format of the MNIST distribution files.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values. MNIST
uses type 0x08 (unsigned byte): images are 3-d (count, rows, columns) and
labels 1-d (count).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from jsma.errors import DataError

__all__ = ["read_idx", "write_idx"]

_UNSIGNED_BYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: damaged or truncated gzip data ({error})") from error


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzipped or not) with `ndim` dimensions.

    Raises `DataError` naming the file for a missing file, damaged gzip data, a
    wrong magic number or type, a dimension count other than `ndim`, or a
    payload whose size does not match the header.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, type_code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code != _UNSIGNED_BYTE:
        raise DataError(
            f"{path}: wrong IDX magic number 0x{data[:4].hex()}, "
            f"expected 0x0000{_UNSIGNED_BYTE:02x}{ndim:02x} (unsigned bytes, {ndim}-d)"
        )
    if dims != ndim:
        raise DataError(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header_size
    if payload != expected:
        raise DataError(
            f"{path}: IDX header announces shape {shape} ({expected} values) "
            f"but the file holds {payload}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write a uint8 array as an IDX file; gzip it when the name ends in .gz."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX writing supports uint8 arrays only, got {array.dtype}")
    header = struct.pack(">HBB", 0, _UNSIGNED_BYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload) if compress else payload)
