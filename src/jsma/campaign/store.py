"""Campaign storage: a manifest and one Parquet file per work unit.

A campaign directory holds `campaign.json` (the spec, the model and data
fingerprints, versions) and `units/<split>-<start>-<stop>.parquet`, one row
per attack. Every file is written to a temporary name and renamed into place,
so a crash leaves whole files only; unit files carry page checksums and
their unit name, spec digest and row count in the footer, and a file that
fails any of these checks is redone rather than trusted. The files are plain
Parquet: pandas, pyarrow and DuckDB read them without jsma.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import io
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jsma._io import atomic_write
from jsma.campaign.spec import WorkUnit
from jsma.errors import CampaignError

__all__ = [
    "SCHEMA",
    "CampaignError",
    "UnitInfo",
    "UnitStamp",
    "campaign_lock",
    "read_unit",
    "remove_stale_temporaries",
    "unit_info",
    "unit_path",
    "write_unit",
]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"

SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("index", pa.int32()),
        ("source", pa.int16()),
        ("target", pa.int16()),  # null for an untargeted attack
        ("success", pa.bool_()),
        ("iterations", pa.int32()),
        ("features_changed", pa.int32()),
        ("distortion", pa.float32()),  # percent of the input features
        ("l2", pa.float32()),
        ("prediction", pa.int16()),
        ("probability", pa.float32()),
        ("stop_reason", pa.string()),
        ("seconds", pa.float32()),  # the unit's wall time shared among its attacks
        ("adversarial_distance", pa.float32()),  # A(X, t) at the original input
        ("trajectory_features", pa.list_(pa.int32())),
        ("trajectory_values", pa.list_(pa.float32())),
    ]
)


def unit_path(directory: Path, unit: WorkUnit) -> Path:
    """Where the file of `unit` lives in a campaign directory."""
    return directory / "units" / f"{unit.name}.parquet"


@dataclass(frozen=True)
class UnitStamp:
    """What a unit file must say about itself to be trusted: its unit, its campaign's
    spec digest and the fingerprint of the model that made its rows."""

    unit: WorkUnit
    spec_digest: str
    model_fingerprint: str


def write_unit(directory: Path, stamp: UnitStamp, table: pa.Table, *, seconds: float) -> Path:
    """Write one unit's rows atomically, stamped with what identifies them."""
    metadata = {
        b"jsma.unit": stamp.unit.name.encode(),
        b"jsma.spec": stamp.spec_digest.encode(),
        b"jsma.model": stamp.model_fingerprint.encode(),
        b"jsma.rows": str(table.num_rows).encode(),
        b"jsma.seconds": repr(seconds).encode(),
    }
    buffer = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata(metadata),
        buffer,
        compression="zstd",
        write_page_checksum=True,
    )
    path = unit_path(directory, stamp.unit)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path


@dataclass(frozen=True)
class UnitInfo:
    """What a unit file's footer says: its row count and the seconds its attacks took."""

    rows: int
    seconds: float


def unit_info(path: Path, stamp: UnitStamp) -> UnitInfo | None:
    """The footer's account of a unit file, or None if it is absent, damaged or not this
    unit's (another unit, spec or model).

    Reads only the footer: cheap enough for `status`. `read_unit` checks the data too.
    """
    if not path.is_file():
        return None
    try:
        metadata = pq.read_metadata(path).metadata or {}
        rows, seconds = int(metadata[b"jsma.rows"]), float(metadata[b"jsma.seconds"])
    except Exception as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", path, _describe(error))
        return None
    expected = {
        b"jsma.unit": stamp.unit.name,
        b"jsma.spec": stamp.spec_digest,
        b"jsma.model": stamp.model_fingerprint,
    }
    if any(metadata.get(key) != value.encode() for key, value in expected.items()):
        logger.warning("%s: made for another unit, configuration or model; it will be redone", path)
        return None
    if rows < 0 or not seconds >= 0:
        logger.warning(
            "%s: damaged footer (rows %d, seconds %r); it will be redone", path, rows, seconds
        )
        return None
    return UnitInfo(rows, seconds)


def read_unit(path: Path, stamp: UnitStamp) -> pa.Table | None:
    """A unit's rows after every check (footer, page checksums, row count), else None."""
    info = unit_info(path, stamp)
    if info is None:
        return None
    try:
        # One file, read as one file: `pq.read_table(path)` would take `key=value`
        # folders on the path for Hive partitions and add their columns.
        table = pq.ParquetFile(path, page_checksum_verification=True).read()
    except Exception as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", path, _describe(error))
        return None
    if table.num_rows != info.rows or not table.schema.remove_metadata().equals(SCHEMA):
        logger.warning("%s: unexpected rows or columns; it will be redone", path)
        return None
    return table


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def remove_stale_temporaries(directory: Path) -> int:
    """Delete the temporary files that killed writers left in `units/`; call under the lock."""
    removed = 0
    for path in (directory / "units").glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def campaign_lock(directory: Path) -> Iterator[None]:
    """Hold the campaign's exclusive lock, or fail at once saying who holds it.

    An advisory `flock` on `DIR/.lock`: the kernel drops it when its holder
    exits, however it exits, so a killed run never leaves a stale lock.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode(errors="replace").strip() or "another process"
            raise CampaignError(
                f"{directory}: another run is using this campaign ({holder}); wait for it to "
                "finish or stop it, then resume"
            ) from None
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}".encode(), 0)
        yield
    finally:
        os.close(fd)
