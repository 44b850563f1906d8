from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from jsma.data._idx import read_idx, write_idx
from jsma.errors import DataError


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name, ndim=3), array)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.idx: file not found"):
        read_idx(tmp_path / "absent.idx", ndim=1)


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match=r"bad\.idx: wrong IDX magic number 0x00000d01"):
        read_idx(path, ndim=1)


def test_wrong_dimension_count(tmp_path: Path) -> None:
    path = tmp_path / "labels.idx"
    write_idx(path, np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DataError, match="2 dimensions, expected 1"):
        read_idx(path, ndim=1)


def test_payload_shorter_than_header_says(tmp_path: Path) -> None:
    path = tmp_path / "short.idx"
    write_idx(path, np.zeros((5, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match=r"short\.idx: .*80 values.* holds 77"):
        read_idx(path, ndim=3)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.idx.gz"
    write_idx(path, np.zeros((50, 28, 28), dtype=np.uint8) + 7)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"cut\.idx\.gz: damaged or truncated gzip"):
        read_idx(path, ndim=3)


def test_not_gzip_but_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.gz"
    path.write_bytes(b"\x1f\x8b" + b"nonsense" * 10)
    with pytest.raises(DataError, match=r"garbage\.gz"):
        read_idx(path, ndim=1)


def test_gzip_compress_flag(tmp_path: Path) -> None:
    path = tmp_path / "plain-name"
    write_idx(path, np.ones(3, dtype=np.uint8), compress=True)
    assert gzip.decompress(path.read_bytes())[:4] == b"\x00\x00\x08\x01"


def test_write_rejects_other_dtypes(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.float32))


def test_huge_header_without_data(tmp_path: Path) -> None:
    # 2**31 x 2**31 x 4 values overflow int64 arithmetic; the file holds none of them.
    path = tmp_path / "huge.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**31, 2**31, 4))
    with pytest.raises(DataError, match=r"huge\.idx: .*\(2147483648, 2147483648, 4\).* holds 0"):
        read_idx(path, ndim=3)
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match=r"huge\.idx: .* holds 0"):
        read_idx(path, ndim=3)


def test_gzip_that_expands_beyond_its_header(tmp_path: Path) -> None:
    # 20 announced values followed by 64 MiB of zeros: compressed, about 64 KiB.
    path = tmp_path / "bomb.idx.gz"
    header = b"\x00\x00\x08\x01" + struct.pack(">I", 20)
    with gzip.open(path, "wb") as handle:
        handle.write(header + bytes(20))
        for _ in range(64):
            handle.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb\.idx\.gz: .*20 values.* holds more"):
            read_idx(path, ndim=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # read up to the announced size, not the whole expansion
