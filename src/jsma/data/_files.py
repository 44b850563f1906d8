"""A user's own data: a `.npz` of arrays, a folder of images, or a Parquet table.

Every reader ends in `assemble`, which decides the layout, the dtype and the
bounds once for all splits, refuses what would be guessed (a value range that
is neither [0, 1] nor [-1, 1], an ambiguous label), and says in `Dataset.notes`
each conversion it made, so that the command can print it.
"""

from __future__ import annotations

import logging
import math
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jsma.data._dataset import Dataset, Split
from jsma.errors import DataError
from jsma.settings import MAX_CLASSES, MAX_DATA_BYTES, SPLIT_NAMES

__all__: list[str] = []

logger = logging.getLogger(__name__)

Bounds = tuple[float, float]
RawSplits = dict[str, tuple[np.ndarray, np.ndarray]]

# What each split may be called in a file's keys, a folder's or a file's name.
_SPLIT_ALIASES: Mapping[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid", "dev"),
    "test": ("test", "testing"),
}
_CHANNELS = (1, 3, 4)
_EIGHT_BIT = 255.0


# --- one conversion for every reader -------------------------------------------------


def _layout(shape: tuple[int, ...], origin: str, notes: list[str]) -> str:
    """How to read inputs of `shape` (n, ...): "features", "nhw", "nchw" or "nhwc"."""
    if len(shape) == 2:
        return "features"
    if len(shape) == 3:
        notes.append(f"(N, H, W) images read as one channel: (N, 1, {shape[1]}, {shape[2]})")
        return "nhw"
    if len(shape) == 4:
        if shape[1] in _CHANNELS:
            return "nchw"
        if shape[3] in _CHANNELS:
            notes.append(f"channels-last images {shape[1:]} read as (C, H, W)")
            return "nhwc"
        raise DataError(
            f"{origin}: images of shape {shape[1:]} have neither 1, 3 nor 4 channels first or last"
        )
    raise DataError(
        f"{origin}: inputs must be (N, C, H, W), (N, H, W, C), (N, H, W) or (N, D); got "
        f"shape {shape}"
    )


def _arranged(inputs: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhw":
        return inputs[:, None]
    if layout == "nhwc":
        return np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))
    return inputs


def _labels(labels: np.ndarray, count: int, origin: str) -> np.ndarray:
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"{origin}: {labels.shape} labels for {count} inputs; expected ({count},)")
    if labels.dtype.kind not in "iu":
        what = (
            "missing values (null)"
            if labels.dtype.kind == "O" or (labels.dtype.kind == "f" and np.isnan(labels).any())
            else labels.dtype
        )
        raise DataError(f"{origin}: labels must be whole numbers, got {what}")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{origin}: label {labels.min()} is negative (classes are 0, 1, ...)")
    if len(labels) and int(labels.max()) >= MAX_CLASSES:
        raise DataError(
            f"{origin}: label {int(labels.max())} would make {int(labels.max()) + 1:,} classes; "
            f"jsma reads at most {MAX_CLASSES:,} (classes are 0, 1, ..., with no gaps)"
        )
    return labels.astype(np.int64)


def _value_bounds(found: Bounds, bounds: Bounds | None, origin: str, notes: list[str]) -> Bounds:
    """The bounds of float inputs whose values span `found`."""
    low, high = found
    if bounds is not None:
        if low < bounds[0] or high > bounds[1]:
            raise DataError(
                f"{origin}: values span [{low:g}, {high:g}], outside the bounds "
                f"[{bounds[0]:g}, {bounds[1]:g}] given"
            )
        return bounds
    for candidate in ((0.0, 1.0), (-1.0, 1.0)):
        if candidate[0] <= low and high <= candidate[1]:
            notes.append(
                f"values span [{low:g}, {high:g}]: bounds [{candidate[0]:g}, {candidate[1]:g}] "
                "(--bounds LO HI to say otherwise)"
            )
            return candidate
    raise DataError(
        f"{origin}: values span [{low:g}, {high:g}], neither within [0, 1] nor [-1, 1]: give "
        "the bounds the model takes (--bounds LO HI)"
    )


def _class_names(
    names: Sequence[object] | None, source: str, notes: list[str]
) -> tuple[str, ...] | None:
    """The names as text: bytes decoded, anything else refused; control and direction
    characters (ESC, newlines, a right-to-left override) escaped, since names reach the
    terminal and the study's pages."""
    if names is None:
        return None
    cleaned, escaped = [], False
    for number, name in enumerate(names):
        if isinstance(name, bytes):
            name = name.decode("utf-8", errors="backslashreplace")
        if not isinstance(name, str) or not name:
            raise DataError(
                f"{source}: class name {number} is {name!r}; class names must be non-empty text"
            )
        shown = "".join(
            c.encode("unicode_escape").decode() if unicodedata.category(c) in ("Cc", "Cf") else c
            for c in name
        )
        escaped = escaped or shown != name
        cleaned.append(shown)
    if escaped:
        notes.append("class names' control and direction characters shown as escapes")
    return tuple(cleaned)


def assemble(
    raw: RawSplits,
    *,
    name: str,
    source: str,
    location: Path,
    class_names: Sequence[str] | None,
    bounds: Bounds | None,
    notes: list[str],
) -> Dataset:
    """The `Dataset` of `raw` inputs and labels per split, each conversion noted."""
    present = {split: pair for split, pair in raw.items() if len(pair[0])}
    if not present:
        raise DataError(f"{source}: no samples in any split")
    first = next(iter(present.values()))[0]
    layout = _layout(first.shape, source, notes)
    dtypes = {pair[0].dtype for pair in present.values()}
    kinds = {dtype.kind for dtype in dtypes}
    eight_bit = dtypes <= {np.dtype(np.uint8)}
    if not eight_bit and kinds <= set("iub"):
        low = min(int(pair[0].min()) for pair in present.values())
        high = max(int(pair[0].max()) for pair in present.values())
        if kinds == {"b"}:
            notes.append("boolean features read as 0 and 1")
        elif low >= 0 and high <= 255:
            notes.append(f"whole-number values in [{low}, {high}] read as 8-bit levels")
            eight_bit = True
    elif not kinds <= set("fiub"):
        raise DataError(f"{source}: inputs must be numbers, got {', '.join(map(str, dtypes))}")

    scale, float_bounds = 1.0, None
    if eight_bit:
        if bounds is None or tuple(bounds) == (0.0, 1.0):
            scale, bounds = _EIGHT_BIT, (0.0, 1.0)
            notes.append("8-bit values k read as k / 255, in bounds [0, 1]")
        elif tuple(bounds) == (0.0, _EIGHT_BIT):
            notes.append("8-bit values taken as they are, in bounds [0, 255]")
        else:
            raise DataError(
                f"{source}: 8-bit data takes --bounds 0 1 (k / 255, the default) or 0 255 "
                f"(as stored), not {list(bounds)}"
            )
    splits = {}
    for split in SPLIT_NAMES:
        inputs, labels = raw.get(split, (first[:0], np.zeros(0, np.int64)))
        origin = f"{source} ({split})"
        labels = _labels(np.asarray(labels), len(inputs), origin)
        if len(inputs) and inputs.shape[1:] != first.shape[1:]:
            raise DataError(
                f"{origin}: inputs of shape {inputs.shape[1:]}, the other splits' are "
                f"{first.shape[1:]}"
            )
        inputs = _arranged(inputs, layout)
        if eight_bit:
            splits[split] = Split(split, inputs.astype(np.uint8), labels, scale)
            continue
        values = inputs.astype(np.float32)
        rows = values.reshape(len(values), -1) if len(values) else np.zeros((0, 1), np.float32)
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            raise DataError(
                f"{origin}: sample {int(np.flatnonzero(bad)[0])} has NaN or infinite values "
                f"({int(bad.sum())} such samples)"
            )
        splits[split] = Split(split, values, labels, 1.0)
    if not eight_bit:
        stored = [s.images for s in splits.values() if len(s)]
        found = (float(min(v.min() for v in stored)), float(max(v.max() for v in stored)))
        float_bounds = _value_bounds(found, bounds, source, notes)
    return Dataset(
        name=name,
        source=source,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        bounds=_as_bounds(float_bounds or bounds or (0.0, 1.0)),
        class_names=_class_names(class_names, source, notes),
        location=str(location.resolve()),
        notes=tuple(notes),
    )


def _as_bounds(bounds: Sequence[float]) -> Bounds:
    return (float(bounds[0]), float(bounds[1]))


def split_of(name: str) -> str | None:
    """The split a key, folder or file name stands for (`x_val`, `train-0000.parquet`)."""
    lowered = name.lower()
    for split, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if lowered == alias or lowered.startswith((f"{alias}-", f"{alias}_", f"{alias}.")):
                return split
    return None


# --- .npz ----------------------------------------------------------------------------


def _check_npz_sizes(path: Path) -> None:
    """Refuse a `.npz` whose arrays declare more than `MAX_DATA_BYTES`, from their
    headers alone (a small file may declare any shape)."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = 0
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(member)
                declared += math.prod(shape) * dtype.itemsize
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    if declared > MAX_DATA_BYTES:
        raise DataError(
            f"{path}: its arrays declare {declared:,} bytes, over the limit of "
            f"{MAX_DATA_BYTES:,} (JSMA_MAX_DATA_BYTES raises it)"
        )


def read_npz(path: Path, *, bounds: Bounds | None = None) -> Dataset:
    """A `.npz` with `x_train, y_train[, x_val, y_val], x_test, y_test`, or `x, y` (one
    test split), and optionally `class_names` (strings); read without unpickling."""
    notes: list[str] = []
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except zipfile.BadZipFile as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataError(
                f"{path}: holds Python objects, which jsma never unpickles (save class names "
                "as np.array(names, dtype=str), inputs and labels as numeric arrays)"
            ) from None
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    raw: RawSplits = {}
    if "x" in arrays or "y" in arrays:
        if "x" not in arrays or "y" not in arrays:
            raise DataError(f"{path}: has {'x' if 'x' in arrays else 'y'} without its pair")
        raw["test"] = (arrays.pop("x"), arrays.pop("y"))
        notes.append("one split (x, y), used as the test split")
    for key in [k for k in arrays if k.startswith("x_")]:
        split = split_of(key[2:])
        if split is None:
            raise DataError(f"{path}: {key}: not a split jsma knows (train, val, test)")
        if f"y_{key[2:]}" not in arrays:
            raise DataError(f"{path}: {key} has no labels (y_{key[2:]})")
        if split in raw:
            raise DataError(f"{path}: two arrays for the {split} split")
        raw[split] = (arrays.pop(key), arrays.pop(f"y_{key[2:]}"))
    names = arrays.pop("class_names", None)
    if arrays:
        raise DataError(
            f"{path}: unexpected arrays {', '.join(sorted(arrays))} (expected x_train, y_train, "
            "x_val, y_val, x_test, y_test or x, y, and class_names)"
        )
    if not raw:
        raise DataError(f"{path}: no inputs (expected x_train, y_train, x_test, y_test or x, y)")
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
        raise DataError(f"{path}: class_names must be a list of strings, got {names.dtype}")
    class_names = None if names is None else names.tolist()
    return assemble(
        raw, name=path.stem, source=f"{path} (.npz)", location=path,
        class_names=class_names, bounds=bounds, notes=notes,
    )  # fmt: skip
