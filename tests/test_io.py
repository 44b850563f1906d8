from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jsma._io import atomic_write


def test_atomic_write_replaces_on_success(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "file.bin"
    with atomic_write(path) as handle:
        handle.write(b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_current_umask()


def test_atomic_write_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"old")

    def crash() -> None:
        with atomic_write(path) as handle:
            handle.write(b"half")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        crash()
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_cell_that_starts_like_a_formula_is_quoted(start: str) -> None:
    from jsma._io import csv_cell, csv_text

    assert csv_cell(f"{start}1+1") == f"'{start}1+1"
    assert csv_cell("P-1") == "P-1"  # only the start counts
    assert csv_cell(-3) == -3  # numbers are numbers
    text = csv_text(["id", "n"], [[f"{start}cmd", -1]])
    assert text.splitlines()[1].startswith(("'", "\"'"))
