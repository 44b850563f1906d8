"""Campaign storage: a manifest and one Parquet file per work unit.

A campaign directory (or object store prefix, see `jsma.campaign.location`)
holds `campaign.json` (the spec, the model and data fingerprints, versions)
and `units/<split>-<start>-<stop>.parquet`, one row per attack. Every file is
written to a temporary name and moved into place, so a crash leaves whole
files only; unit files carry page checksums and
their unit name, spec digest, row count and a digest of every value in the
footer, and a file that fails any of these checks, or whose rows contradict
themselves, is redone rather than trusted. (Page checksums alone do not cover
the data pages' headers: a flipped bit there can cut a trajectory short and
still read.) The files are plain Parquet: pandas, pyarrow and DuckDB read them
without jsma.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jsma.campaign.location import Folder

__all__: list[str] = []

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
        # Whether each pick changed its feature: with the paper's search domain a
        # feature already at its bound can be picked and stay (absent before 0.3.0).
        ("trajectory_moved", pa.list_(pa.bool_())),
    ]
)
# Unit files of jsma 0.1.0 and 0.2.0: every pick moved its feature.
_SCHEMA_BEFORE_MOVED = SCHEMA.remove(SCHEMA.get_field_index("trajectory_moved"))


UNITS = "units"


def unit_name(unit: WorkUnit) -> str:
    """Where the file of `unit` lives, relative to the campaign's root."""
    return f"{UNITS}/{unit.name}.parquet"


@dataclass(frozen=True)
class WorkUnit:
    """Positions [start, stop) of one split (the samples `CampaignSpec.sample_indices`
    puts there): the grain of work and of storage."""

    split: str
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{self.split}-{self.start:06d}-{self.stop:06d}"


@dataclass(frozen=True)
class UnitStamp:
    """What a unit file must say about itself to be trusted: its unit, its campaign's
    spec digest and the fingerprint of the model that made its rows."""

    unit: WorkUnit
    spec_digest: str
    model_fingerprint: str
    # Specs this campaign had before it was extended to more samples: their units'
    # rows are the same, so their files are trusted too.
    earlier_digests: tuple[str, ...] = ()


def _canonical_bytes(column: pa.Array) -> Iterator[bytes]:
    """A column's values as bytes that depend on the values alone (not on chunks,
    slices or how Parquet stored them)."""
    # A list's type without its item's name: Parquet reads "item" back as "element".
    kind = "list" if pa.types.is_list(column.type) else str(column.type)
    yield f"{kind}:{len(column)}:{column.null_count};".encode()
    if column.null_count:
        yield np.asarray(column.is_valid()).tobytes()
    if pa.types.is_list(column.type):
        offsets = np.asarray(column.offsets, dtype=np.int64)
        yield (offsets - offsets[0]).tobytes()
        yield from _canonical_bytes(column.flatten())
    elif pa.types.is_string(column.type):
        texts = [text.encode() for text in column.fill_null("").to_pylist()]
        yield np.array([len(text) for text in texts], dtype=np.int64).tobytes()
        yield b"".join(texts)
    else:
        zero = pa.scalar(False if pa.types.is_boolean(column.type) else 0, column.type)
        values = np.asarray(column.fill_null(zero))
        yield np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()


def rows_digest(table: pa.Table) -> str:
    """SHA-256 of every value of `table`, column by column: what a unit file's footer
    holds and its reader checks."""
    digest = hashlib.sha256()
    for name in table.column_names:
        digest.update(f"{name};".encode())
        for part in _canonical_bytes(table.column(name).combine_chunks()):
            digest.update(part)
    return digest.hexdigest()


def _contradictions(table: pa.Table) -> str | None:
    """What the rows' own columns say against each other, or None: trajectories of
    values and moves as long as their features, features changed as many as the
    distinct features their picks moved."""
    features = table.column("trajectory_features").combine_chunks()
    lengths = np.asarray(pc.list_value_length(features).fill_null(0), dtype=np.int64)
    for other in ("trajectory_values", "trajectory_moved"):
        other_lengths = np.asarray(pc.list_value_length(table.column(other)).fill_null(0))
        if not np.array_equal(lengths, other_lengths):
            return (
                f"trajectory features and {other.removeprefix('trajectory_')} of different lengths"
            )
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    flat = np.asarray(features.flatten(), dtype=np.int64)
    moved = np.asarray(table.column("trajectory_moved").combine_chunks().flatten(), dtype=bool)
    rows, flat = rows[moved], flat[moved]
    distinct_pairs = np.unique((rows << 32) | (flat & 0xFFFFFFFF))
    distinct = np.bincount(distinct_pairs >> 32, minlength=len(lengths))
    changed = np.asarray(table.column("features_changed"), dtype=np.int64)
    if (wrong := np.flatnonzero(distinct != changed)).size:
        row = int(wrong[0])
        return f"row {row}: {changed[row]} features changed, {distinct[row]} in its trajectory"
    return None


def write_unit(folder: Folder, stamp: UnitStamp, table: pa.Table, *, seconds: float) -> str:
    """Write one unit's rows atomically, stamped with what identifies them and a digest
    of their values; return the name."""
    metadata = {
        b"jsma.unit": stamp.unit.name.encode(),
        b"jsma.spec": stamp.spec_digest.encode(),
        b"jsma.model": stamp.model_fingerprint.encode(),
        b"jsma.rows": str(table.num_rows).encode(),
        b"jsma.seconds": repr(seconds).encode(),
        b"jsma.digest": rows_digest(table).encode(),
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


def _footer_info(metadata: dict[bytes, bytes], stamp: UnitStamp, where: str) -> UnitInfo | None:
    """The unit's row count and seconds from its footer's metadata, or None (logged) if
    the footer is damaged or belongs to another unit, configuration or model."""
    try:
        rows, seconds = int(metadata[b"jsma.rows"]), float(metadata[b"jsma.seconds"])
    except (KeyError, ValueError) as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", where, _describe(error))
        return None
    expected = {b"jsma.unit": stamp.unit.name, b"jsma.model": stamp.model_fingerprint}
    digests = {digest.encode() for digest in (stamp.spec_digest, *stamp.earlier_digests)}
    if (
        any(metadata.get(key) != value.encode() for key, value in expected.items())
        or metadata.get(b"jsma.spec") not in digests
    ):
        logger.warning("%s: made for another unit, configuration or model; redone", where)
        return None
    if rows < 0 or not seconds >= 0:
        logger.warning(
            "%s: damaged footer (rows %d, seconds %r); it will be redone", where, rows, seconds
        )
        return None
    return UnitInfo(rows, seconds)


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
    except FileNotFoundError:
        return None
    except Exception as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", where, _describe(error))
        return None
    return _footer_info(metadata, stamp, where)


def read_unit(folder: Folder, stamp: UnitStamp) -> pa.Table | None:
    """A unit's rows after every check (footer, page checksums, row count, the digest of
    the values, the rows' own consistency), else None. The file is opened once.

    Files of 0.1.0 carry no digest; they get every other check. Files before 0.3.0
    have no `trajectory_moved` column: it is added, every pick moved.
    """
    name = unit_name(stamp.unit)
    where = f"{folder}/{name}"
    try:
        # One file, read as one file: `pq.read_table(path)` would take `key=value`
        # folders on the path for Hive partitions and add their columns.
        with folder.open(name) as source:
            parquet = pq.ParquetFile(source, page_checksum_verification=True)
            info = _footer_info(parquet.metadata.metadata or {}, stamp, where)
            if info is None:
                return None
            table = parquet.read()
    except FileNotFoundError:
        return None
    except Exception as error:
        logger.warning("%s: damaged unit file (%s); it will be redone", where, _describe(error))
        return None
    columns = table.schema.remove_metadata()
    earlier = columns.equals(_SCHEMA_BEFORE_MOVED)
    if table.num_rows != info.rows or not (columns.equals(SCHEMA) or earlier):
        logger.warning("%s: unexpected rows or columns; it will be redone", where)
        return None
    stored = (table.schema.metadata or {}).get(b"jsma.digest")
    if stored is not None and stored != rows_digest(table).encode():
        logger.warning("%s: values differ from their digest; it will be redone", where)
        return None
    if earlier:
        table = _with_every_pick_moved(table)
    if (problem := _contradictions(table)) is not None:
        logger.warning("%s: inconsistent rows (%s); it will be redone", where, problem)
        return None
    return table


def _with_every_pick_moved(table: pa.Table) -> pa.Table:
    """A unit table of before 0.3.0 with the `trajectory_moved` column it implies."""
    features = table.column("trajectory_features").combine_chunks()
    offsets = pc.subtract(features.offsets, features.offsets[0])
    moved = pa.ListArray.from_arrays(offsets, pa.array(np.ones(len(features.flatten()), bool)))
    return table.append_column(SCHEMA.field("trajectory_moved"), moved)


def table_info(table: pa.Table) -> UnitInfo:
    """What the footer of the unit file `table` was read from says (rows, seconds)."""
    metadata = table.schema.metadata or {}
    return UnitInfo(int(metadata[b"jsma.rows"]), float(metadata[b"jsma.seconds"]))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def remove_stale_temporaries(folder: Folder) -> int:
    """Delete the temporary files that killed writers left in `units/`; call under the lock."""
    stale = folder.temporaries(UNITS)
    for name in stale:
        folder.delete(name)
    return len(stale)
