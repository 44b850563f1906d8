"""Campaign storage: a manifest and one Parquet file per work unit.

A campaign directory (or object store prefix, see `jsma.campaign.location`)
holds `campaign.json` (the spec, the model and data fingerprints, versions)
and `units/<split>-<start>-<stop>.parquet`, one row per attack. Every file is
written to a temporary name and moved into place, so a crash leaves whole
files only; unit files carry page checksums and
their unit name, spec digest and row count in the footer, and a file that
fails any of these checks is redone rather than trusted. The files are plain
Parquet: pandas, pyarrow and DuckDB read them without jsma.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from jsma.campaign.location import Folder, folder_at
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
    "unit_name",
    "write_unit",
]

logger = logging.getLogger(__name__)

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


UNITS = "units"


def unit_name(unit: WorkUnit) -> str:
    """Where the file of `unit` lives, relative to the campaign's root."""
    return f"{UNITS}/{unit.name}.parquet"


@dataclass(frozen=True)
class UnitStamp:
    """What a unit file must say about itself to be trusted: its unit, its campaign's
    spec digest and the fingerprint of the model that made its rows."""

    unit: WorkUnit
    spec_digest: str
    model_fingerprint: str


def write_unit(folder: Folder, stamp: UnitStamp, table: pa.Table, *, seconds: float) -> str:
    """Write one unit's rows atomically, stamped with what identifies them; return the name."""
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
    name = unit_name(stamp.unit)
    folder.write(name, buffer.getvalue())
    return name


@dataclass(frozen=True)
class UnitInfo:
    """What a unit file's footer says: its row count and the seconds its attacks took."""

    rows: int
    seconds: float


def unit_info(folder: Folder, stamp: UnitStamp) -> UnitInfo | None:
    """The footer's account of a unit file, or None if it is absent, damaged or not this
    unit's (another unit, spec or model).

    Reads only the footer: cheap enough for `status`. `read_unit` checks the data too.
    """
    name = unit_name(stamp.unit)
    where = f"{folder}/{name}"
    try:
        with folder.open(name) as source:
            metadata = pq.read_metadata(source).metadata or {}
        rows, seconds = int(metadata[b"jsma.rows"]), float(metadata[b"jsma.seconds"])
    except FileNotFoundError:
        return None
    except Exception as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", where, _describe(error))
        return None
    expected = {
        b"jsma.unit": stamp.unit.name,
        b"jsma.spec": stamp.spec_digest,
        b"jsma.model": stamp.model_fingerprint,
    }
    if any(metadata.get(key) != value.encode() for key, value in expected.items()):
        logger.warning("%s: made for another unit, configuration or model; redone", where)
        return None
    if rows < 0 or not seconds >= 0:
        logger.warning(
            "%s: damaged footer (rows %d, seconds %r); it will be redone", where, rows, seconds
        )
        return None
    return UnitInfo(rows, seconds)


def read_unit(folder: Folder, stamp: UnitStamp) -> pa.Table | None:
    """A unit's rows after every check (footer, page checksums, row count), else None."""
    info = unit_info(folder, stamp)
    if info is None:
        return None
    name = unit_name(stamp.unit)
    try:
        # One file, read as one file: `pq.read_table(path)` would take `key=value`
        # folders on the path for Hive partitions and add their columns.
        with folder.open(name) as source:
            table = pq.ParquetFile(source, page_checksum_verification=True).read()
    except Exception as error:
        logger.warning(
            "%s/%s: damaged unit file (%s); it will be redone", folder, name, _describe(error)
        )
        return None
    if table.num_rows != info.rows or not table.schema.remove_metadata().equals(SCHEMA):
        logger.warning("%s/%s: unexpected rows or columns; it will be redone", folder, name)
        return None
    return table


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def remove_stale_temporaries(folder: Folder) -> int:
    """Delete the temporary files that killed writers left in `units/`; call under the lock."""
    stale = folder.temporaries(UNITS)
    for name in stale:
        folder.delete(name)
    return len(stale)


def campaign_lock(
    where: str | os.PathLike[str] | Folder,
) -> contextlib.AbstractContextManager[None]:
    """Hold the campaign's exclusive lock, or fail at once saying who holds it.

    A local directory: an advisory `flock` on `DIR/.lock`, dropped by the kernel
    when its holder exits, however it exits. An object store: a lease object
    (see `ArrowFolder`).
    """
    return folder_at(where).lock()
