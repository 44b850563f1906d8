"""Reading and writing the IDX format of the MNIST distribution files.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values. MNIST
uses type 0x08 (unsigned byte): images are 3-d (count, rows, columns) and
labels 1-d (count).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import IO, cast

import numpy as np

from jsma.errors import DataError, InputTypeError

__all__: list[str] = []

_UNSIGNED_BYTE = 0x08


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzipped or not) with `ndim` dimensions.

    Raises `DataError` naming the file for a missing file, damaged gzip data, a
    wrong magic number or type, a dimension count other than `ndim`, or a
    payload whose size does not match the header. A plain file's length is
    checked against the header before the payload is read; a gzip file is
    decompressed in chunks that stop one byte past the announced size, so a
    file that expands beyond its header costs no more memory than the header
    announced, and a header announcing more than the file holds costs nothing.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path) if compressed else path.open("rb") as stream:
            return _read_stream(cast(IO[bytes], stream), path, ndim, compressed)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: damaged or truncated gzip data ({error})") from error


def _read_stream(stream: IO[bytes], path: Path, ndim: int, compressed: bool) -> np.ndarray:
    data = stream.read(4)
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
    dimensions = stream.read(4 * ndim)
    if len(dimensions) < 4 * ndim:
        raise DataError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", dimensions)
    expected = math.prod(shape)  # a Python int: no overflow
    if not compressed and path.stat().st_size != header_size + expected:
        # The file's length says it all before anything is read.
        holds = path.stat().st_size - header_size
    else:
        payload = _read_at_most(stream, expected + 1)  # one more byte reveals a longer payload
        holds = len(payload)
    if holds != expected:
        raise DataError(
            f"{path}: IDX header announces shape {shape} ({expected} values) "
            f"but the file holds {'more' if holds > expected else holds}"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """Up to `limit` bytes, read in chunks: memory follows the data, not the header's claim."""
    chunks, left = [], limit
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write a uint8 array as an IDX file; gzip it when the name ends in .gz."""
    if array.dtype != np.uint8:
        raise InputTypeError(f"IDX writing supports uint8 arrays only, got {array.dtype}")
    header = struct.pack(">HBB", 0, _UNSIGNED_BYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload) if compress else payload)
