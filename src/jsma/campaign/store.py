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

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jsma._io import atomic_write
from jsma.campaign.spec import WorkUnit
from jsma.errors import JSMAError

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA",
    "CampaignError",
    "UnitInfo",
    "read_manifest",
    "read_unit",
    "unit_info",
    "unit_path",
    "write_manifest",
    "write_unit",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "campaign.json"
_FORMAT = 1

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


class CampaignError(JSMAError, ValueError):
    """A campaign directory that cannot be used as asked (mismatch, damage)."""


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    with atomic_write(directory / MANIFEST_NAME) as handle:
        handle.write(json.dumps({"format": _FORMAT, **manifest}, indent=2).encode())


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of `directory`, or None when there is no campaign there."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CampaignError(f"{path}: unreadable campaign manifest ({error})") from error
    if manifest.get("format") != _FORMAT:
        raise CampaignError(f"{path}: unsupported manifest format {manifest.get('format')!r}")
    return manifest


def unit_path(directory: Path, unit: WorkUnit) -> Path:
    return directory / "units" / f"{unit.name}.parquet"


def write_unit(
    directory: Path, unit: WorkUnit, table: pa.Table, *, spec_digest: str, seconds: float
) -> Path:
    """Write one unit's rows atomically, stamped with what identifies them."""
    metadata = {
        b"jsma.unit": unit.name.encode(),
        b"jsma.spec": spec_digest.encode(),
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
    path = unit_path(directory, unit)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path


@dataclass(frozen=True)
class UnitInfo:
    rows: int
    seconds: float


def unit_info(path: Path, unit: WorkUnit, spec_digest: str) -> UnitInfo | None:
    """The footer's account of a unit file, or None if it is absent or not this unit's.

    Reads only the footer: cheap enough for `status`. `read_unit` checks the data too.
    """
    if not path.is_file():
        return None
    try:
        metadata = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException) as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", path, error)
        return None
    if (
        metadata.get(b"jsma.unit") != unit.name.encode()
        or metadata.get(b"jsma.spec") != spec_digest.encode()
    ):
        logger.warning("%s: belongs to another unit or campaign; it will be redone", path)
        return None
    return UnitInfo(int(metadata[b"jsma.rows"]), float(metadata[b"jsma.seconds"]))


def read_unit(path: Path, unit: WorkUnit, spec_digest: str) -> pa.Table | None:
    """A unit's rows after every check (footer, page checksums, row count), else None."""
    info = unit_info(path, unit, spec_digest)
    if info is None:
        return None
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", path, error)
        return None
    if table.num_rows != info.rows or not table.schema.equals(SCHEMA):
        logger.warning("%s: unexpected rows or columns; it will be redone", path)
        return None
    return table
