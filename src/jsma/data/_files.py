"""A user's own data: a `.npz` of arrays, a folder of images, or a Parquet table.

Every reader ends in `_assemble`, which decides the layout, the dtype and the
bounds once for all splits, refuses what would be guessed (a value range that
is neither [0, 1] nor [-1, 1], an ambiguous label), and says in `Dataset.notes`
each conversion it made, so that the command can print it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from jsma._io import atomic_write
from jsma.data._dataset import Dataset, Split
from jsma.data._sources import MnistSource, default_cache_dir, load_mnist
from jsma.errors import DataError
from jsma.settings import MAX_CLASSES, MAX_DATA_BYTES, MAX_IMAGE_PIXELS, SPLIT_NAMES

__all__ = ["load_data", "read_image_folder", "read_npz", "read_parquet"]

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


def load_data(
    location: str | Path = "mnist",
    *,
    bounds: Bounds | None = None,
    cache_dir: Path | None = None,
    mnist: MnistSource | None = None,
    progress: bool = False,
) -> Dataset:
    """The data at `location`: `mnist` (the paper's split, from `mnist`), a `.npz`
    file, a folder of images (`DIR/train/CLASS/*.png`, ...), or a Parquet file or
    folder of them. `bounds` are the inputs' value bounds as the model takes them
    (default: [0, 1] for 8-bit data, else read from the values when they lie in
    [0, 1] or [-1, 1]). `Dataset.describe()` says what was read and converted;
    `progress` shows a bar while images are decoded (folders, Parquet image columns).

    Example:
        >>> data = load_data("cifar10-small.npz")  # doctest: +SKIP
        >>> print("\\n".join(data.describe()))  # doctest: +SKIP
    """
    if str(location).lower() == "mnist":
        if bounds is not None and tuple(bounds) != (0.0, 1.0):
            raise DataError(f"MNIST's bounds are [0, 1], not {list(bounds)}")
        return load_mnist(mnist, cache_dir=cache_dir)
    path = Path(location)
    if not path.exists():
        raise DataError(
            f"{path}: no such file or directory (--data takes mnist, a .npz file, an image "
            "folder or a Parquet file)"
        )
    if path.is_dir():
        if any(path.glob("*.parquet")):
            return read_parquet(path, bounds=bounds, progress=progress)
        return read_image_folder(
            path, bounds=bounds, progress=progress, cache_dir=cache_dir or default_cache_dir()
        )
    if not path.is_file():  # a FIFO or a device (a manifest may name one) would block
        raise DataError(f"{path}: not a regular file (a FIFO, a device)")
    if path.suffix.lower() == ".npz":
        return read_npz(path, bounds=bounds)
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path, bounds=bounds, progress=progress)
    raise DataError(f"{path}: not a data file jsma reads (a .npz, a .parquet, or an image folder)")


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


def _assemble(
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


def _split_of(name: str) -> str | None:
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
        split = _split_of(key[2:])
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
    return _assemble(
        raw, name=path.stem, source=f"{path} (.npz)", location=path,
        class_names=class_names, bounds=bounds, notes=notes,
    )  # fmt: skip


# --- image folders -------------------------------------------------------------------


def _image_files(directory: Path, root: Path) -> list[Path]:
    from PIL import Image

    extensions = set(Image.registered_extensions())
    found = sorted(p for p in directory.iterdir() if p.suffix.lower() in extensions)
    for path in found:
        # A FIFO or a device named x.png would block every read; a link out of the
        # folder would read what the folder's sender chose.
        if not path.is_file():
            raise DataError(f"{path}: not a regular file (a FIFO, a device, a folder)")
        if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
            raise DataError(f"{path}: a link out of the image folder, to {path.resolve()}")
    return found


def _decode_images(
    sources: Sequence[Any],
    names: Sequence[str],
    origin: str,
    notes: list[str],
    *,
    progress: bool = False,
) -> np.ndarray:
    """Images (n, H, W) or (n, H, W, 3) as uint8, from files or encoded bytes, all of
    one size; grayscale kept as one channel unless another image has colour."""
    from PIL import Image, UnidentifiedImageError

    pictures = []
    shown = tqdm(
        zip(sources, names, strict=True), total=len(names), disable=not progress,
        unit="image", desc=f"reading {Path(origin).name}", leave=False,
    )  # fmt: skip
    decoded = 0
    for source, name in shown:
        try:
            with Image.open(source) as opened:
                width, height = opened.size
                decoded += width * height * 3
                if width * height > MAX_IMAGE_PIXELS or decoded > MAX_DATA_BYTES:
                    over = width * height > MAX_IMAGE_PIXELS
                    raise DataError(
                        f"{origin}: {name}: {width}x{height} "
                        + (
                            f"is over the limit of {MAX_IMAGE_PIXELS:,} pixels an image "
                            "(JSMA_MAX_IMAGE_PIXELS raises it)"
                            if over
                            else f"takes the images past {MAX_DATA_BYTES:,} bytes decoded "
                            "(JSMA_MAX_DATA_BYTES raises it)"
                        )
                    )
                opened.load()
                pictures.append(opened.copy())
        except DataError:
            raise
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(f"{origin}: {name}: not a readable image ({error})") from None
    if not pictures:
        return np.zeros((0, 1, 1), np.uint8)
    for picture, name in zip(pictures, names, strict=True):
        if picture.mode in ("I", "I;16", "I;16B", "F"):
            raise DataError(
                f"{origin}: {name}: {picture.mode} images (16-bit or float) are not read; "
                "convert them to 8-bit"
            )
        if picture.size != pictures[0].size:
            raise DataError(
                f"{origin}: images of different sizes: {names[0]} is {pictures[0].size[0]}x"
                f"{pictures[0].size[1]}, {name} is {picture.size[0]}x{picture.size[1]}"
            )
    gray = all(picture.mode in ("L", "1") for picture in pictures)
    converted = sum(picture.mode not in ("L", "1", "RGB") for picture in pictures)
    if not gray:
        if converted:
            notes.append(f"{origin}: {converted} images with alpha or a palette converted to RGB")
        if any(picture.mode in ("L", "1") for picture in pictures):
            notes.append(f"{origin}: grayscale images converted to RGB beside colour ones")
    mode = "L" if gray else "RGB"
    return np.stack([np.asarray(picture.convert(mode), dtype=np.uint8) for picture in pictures])


_FOLDER_CACHE_FORMAT = 1


def _decoded_once(
    files: Sequence[Path],
    shown: Sequence[str],
    folder: Path,
    notes: list[str],
    *,
    cache_dir: Path | None,
    progress: bool,
) -> np.ndarray:
    """`_decode_images` of a split folder's files, kept under `cache_dir` as a `.npz`
    keyed by every file's name, size and modification time: a second run reads one
    array instead of decoding each file, and any changed, added or removed file makes
    a new key. An unreadable cache entry is decoded again and rewritten."""
    if cache_dir is None:
        return _decode_images(files, shown, str(folder), notes, progress=progress)
    listing = []
    for file, name in zip(files, shown, strict=True):
        stat = file.stat()
        listing.append([name, stat.st_size, stat.st_mtime_ns])
    key = json.dumps([_FOLDER_CACHE_FORMAT, str(folder.resolve()), listing])
    entry = cache_dir / "image-folders" / f"{hashlib.sha256(key.encode()).hexdigest()}.npz"
    try:
        with np.load(entry, allow_pickle=False) as stored:
            images, stored_notes = stored["images"], [str(n) for n in stored["notes"]]
        if images.dtype == np.uint8 and len(images) == len(files):
            notes += stored_notes
            return images
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # absent or damaged: decode the files
    found: list[str] = []
    images = _decode_images(files, shown, str(folder), found, progress=progress)
    notes += found
    try:
        with atomic_write(entry) as handle:
            np.savez(handle, images=images, notes=np.asarray(found, dtype=str))
    except OSError as error:  # a read-only cache costs the next run's decoding, not this one
        logger.warning("could not cache the decoded images of %s: %s", folder, error)
    return images


def read_image_folder(
    directory: Path,
    *,
    bounds: Bounds | None = None,
    progress: bool = False,
    cache_dir: Path | None = None,
) -> Dataset:
    """`DIR/train/CLASS/*.png`, `DIR/test/CLASS/*.png` (and `val/`): one folder per
    class, named by it; any image format Pillow reads, all of one size. With a
    `cache_dir` (what `load_data` gives: the jsma cache), each split's decoded images
    are kept there and read back while no file changed."""
    notes: list[str] = []
    folders = {}
    for child in sorted(p for p in directory.iterdir() if p.is_dir()):
        split = _split_of(child.name)
        if split is not None:
            if split in folders:
                raise DataError(f"{directory}: two folders for the {split} split")
            folders[split] = child
    if not folders:
        raise DataError(
            f"{directory}: an image folder holds train/, test/ (and val/) folders with one "
            "folder of images per class; found none of them"
        )
    classes = sorted({c.name for f in folders.values() for c in f.iterdir() if c.is_dir()})
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DataError(
            f"{directory}: needs at least two class folders in its split folders, found {found}"
        )
    raw: RawSplits = {}
    for split, folder in folders.items():
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            listed = _image_files(folder / name, directory) if (folder / name).is_dir() else []
            files += listed
            labels += [label] * len(listed)
        shown = [str(f.relative_to(directory)) for f in files]
        images = _decoded_once(files, shown, folder, notes, cache_dir=cache_dir, progress=progress)
        raw[split] = (images, np.asarray(labels, dtype=np.int64))
    _check_same_channels(raw, directory)
    return _assemble(
        raw, name=directory.name, source=f"{directory} (image folder)", location=directory,
        class_names=classes, bounds=bounds, notes=notes,
    )  # fmt: skip


def _check_same_channels(raw: RawSplits, origin: Path) -> None:
    shapes = {split: images.shape[1:] for split, (images, _) in raw.items() if len(images)}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{split} {shape}" for split, shape in shapes.items())
        raise DataError(f"{origin}: splits hold images of different sizes or channels: {listed}")


# --- Parquet -------------------------------------------------------------------------

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
            split_of_row = [_split_of(str(s)) for s in table.column("split").to_pylist()]
            if None in split_of_row:
                bad = table.column("split")[split_of_row.index(None)]
                raise DataError(f"{file}: split {bad} is not train, validation or test")
            for name in SPLIT_NAMES:
                rows = np.flatnonzero(np.asarray(split_of_row) == name)
                if len(rows):
                    parts.setdefault(name, []).append((inputs[rows], labels[rows]))
        else:
            parts.setdefault(_split_of(file.name) or "test", []).append((inputs, labels))
    whole = path.is_file() and _split_of(path.name) is None
    if whole and "split" not in pq.read_schema(path).names:
        notes.append("no split column or split file names: the whole table is the test split")
    raw: RawSplits = {
        split: (np.concatenate([x for x, _ in pieces]), np.concatenate([y for _, y in pieces]))
        for split, pieces in parts.items()
    }
    _check_same_channels(raw, path)
    if class_names is None and named:
        unnamed = sorted(set(range(max(named) + 1)) - named.keys())
        if unnamed:
            raise DataError(f"{path}: no row of label {unnamed[0]} gives its class_name")
        class_names = [named[label] for label in range(len(named))]  # type: ignore[misc]
    return _assemble(
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
    return _decode_images(
        [io.BytesIO(item) for item in encoded], [f"row {i}" for i in range(len(encoded))],
        origin, notes, progress=progress,
    )  # fmt: skip
