"""Small file helpers shared by the data cache, checkpoints and campaigns."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from jsma.errors import StorageError

__all__ = ["atomic_write", "csv_cell", "csv_text", "ensure_writable", "file_digest"]

# What a spreadsheet reads as the start of a formula (OWASP's list): a cell that
# begins so, from a participant id say, would run when the CSV is opened.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """Open a temporary file beside `path`; rename it into place on success.

    A crash or an exception mid-write leaves `path` as it was (absent or the
    previous version) and removes the temporary file: readers never see half
    a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); give it the mode open() would.
    os.fchmod(fd, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_writable(*folders: Path) -> None:
    """Create `folders` and prove each takes a file, or raise `StorageError` naming it.

    Called before long work, so that a read-only or blocked destination fails
    in a second rather than after the results are computed. A real write is
    the only test that holds for every user, file system and mount.
    """
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise StorageError(
                f"{folder}: results cannot be written there ({error.strerror or error})"
            ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def csv_cell(value: object) -> object:
    """`value` as a CSV cell no spreadsheet runs: text that starts like a formula gets a
    leading `'` (numbers are left as they are)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document of `header` and `rows`, every cell through `csv_cell`: the one
    way the project writes CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(name) for name in header])
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return buffer.getvalue()
