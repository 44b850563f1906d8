"""Parquet tables (a file, or a folder of them): images or feature vectors, labels
by name or index, Hugging Face's class names."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from jsma.data._dataset import Dataset
from jsma.data._files import Bounds, RawSplits, assemble, split_of
from jsma.data._images import check_same_channels, decode_images
from jsma.errors import DataError
from jsma.settings import SPLIT_NAMES

__all__: list[str] = []


_LABEL_COLUMNS = ("label", "labels", "target", "y", "class")
_INPUT_COLUMNS = ("image", "img", "pixels", "x", "features", "input")


def read_parquet(path: Path, *, bounds: Bounds | None = None, progress: bool = False) -> Dataset:
    """A Parquet table (or a folder of them, `train-*.parquet`, `test-*.parquet`, as
    dataset hubs store them) with a label column and an image column (encoded bytes,
    or a `{bytes, path}` struct) or an array column; a `split` column or the file
    names tell the splits (else all is test); class names from the hub's metadata, else
    from a `class_name` column (each row's class, by name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    notes: list[str] = []
    parts: dict[str, list[Any]] = {}
    class_names: list[str] | None = None
    named: dict[int, object] = {}  # label -> its `class_name` column's value
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as error:
            raise DataError(f"{file}: not a readable Parquet file ({error})") from None
        label_column = next((c for c in _LABEL_COLUMNS if c in table.column_names), None)
        input_column = next((c for c in _INPUT_COLUMNS if c in table.column_names), None)
        if label_column is None or input_column is None:
            raise DataError(
                f"{file}: needs a label column ({', '.join(_LABEL_COLUMNS)}) and an input "
                f"column ({', '.join(_INPUT_COLUMNS)}); it has {', '.join(table.column_names)}"
            )
        class_names = class_names or _hub_class_names(table.schema, label_column)
        origin = f"{file}:{input_column}"
        inputs = _parquet_inputs(table.column(input_column), origin, notes, progress=progress)
        labels = np.asarray(table.column(label_column).to_numpy(zero_copy_only=False))
        if "class_name" in table.column_names:
            _name_labels(named, labels, table.column("class_name").to_pylist(), file)
        if "split" in table.column_names:
            split_of_row = [split_of(str(s)) for s in table.column("split").to_pylist()]
            if None in split_of_row:
                bad = table.column("split")[split_of_row.index(None)]
                raise DataError(f"{file}: split {bad} is not train, validation or test")
            for name in SPLIT_NAMES:
                rows = np.flatnonzero(np.asarray(split_of_row) == name)
                if len(rows):
                    parts.setdefault(name, []).append((inputs[rows], labels[rows]))
        else:
            parts.setdefault(split_of(file.name) or "test", []).append((inputs, labels))
    whole = path.is_file() and split_of(path.name) is None
    if whole and "split" not in pq.read_schema(path).names:
        notes.append("no split column or split file names: the whole table is the test split")
    raw: RawSplits = {
        split: (np.concatenate([x for x, _ in pieces]), np.concatenate([y for _, y in pieces]))
        for split, pieces in parts.items()
    }
    check_same_channels(raw, path)
    if class_names is None and named:
        unnamed = sorted(set(range(max(named) + 1)) - named.keys())
        if unnamed:
            raise DataError(f"{path}: no row of label {unnamed[0]} gives its class_name")
        class_names = [named[label] for label in range(len(named))]  # type: ignore[misc]
    return assemble(
        raw, name=path.stem, source=f"{path} (Parquet)", location=path,
        class_names=class_names, bounds=bounds, notes=notes,
    )  # fmt: skip


def _name_labels(
    named: dict[int, object], labels: np.ndarray, names: list[object], file: Path
) -> None:
    """Add each label's name from a `class_name` column (one name per label)."""
    for label, name in zip(labels.tolist(), names, strict=True):
        if named.setdefault(int(label), name) != name:
            raise DataError(
                f"{file}: label {label} has two class names, {named[int(label)]!r} and {name!r}"
            )


def _hub_class_names(schema: Any, label_column: str) -> list[str] | None:
    """The label column's class names, as Hugging Face datasets store them."""
    metadata = schema.metadata or {}
    try:
        info = json.loads(metadata[b"huggingface"])
        names = info["info"]["features"][label_column]["names"]
    except (KeyError, TypeError, ValueError):
        return None
    return names if isinstance(names, list) else None


def _parquet_inputs(
    column: Any, origin: str, notes: list[str], *, progress: bool = False
) -> np.ndarray:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
        encoded = column.combine_chunks().field("bytes").to_pylist()
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        encoded = column.to_pylist()
    else:
        values = column.to_pylist()
        try:
            return np.asarray(values)
        except ValueError:
            raise DataError(f"{origin}: rows of different lengths") from None
    if any(item is None for item in encoded):
        raise DataError(f"{origin}: row {encoded.index(None)} has no image bytes")
    return decode_images(
        [io.BytesIO(item) for item in encoded], [f"row {i}" for i in range(len(encoded))],
        origin, notes, progress=progress,
    )  # fmt: skip
