"""Image folders (`DIR/train/CLASS/*.png`, ...): decoded once, kept in the jsma cache."""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from jsma._io import atomic_write
from jsma.data._dataset import Dataset
from jsma.data._files import Bounds, RawSplits, assemble, split_of
from jsma.errors import DataError
from jsma.settings import MAX_DATA_BYTES, MAX_IMAGE_PIXELS

__all__: list[str] = []

logger = logging.getLogger(__name__)


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


def decode_images(
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
    """`decode_images` of a split folder's files, kept under `cache_dir` as a `.npz`
    keyed by every file's name, size and modification time: a second run reads one
    array instead of decoding each file, and any changed, added or removed file makes
    a new key. An unreadable cache entry is decoded again and rewritten."""
    if cache_dir is None:
        return decode_images(files, shown, str(folder), notes, progress=progress)
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
    images = decode_images(files, shown, str(folder), found, progress=progress)
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
        split = split_of(child.name)
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
    check_same_channels(raw, directory)
    return assemble(
        raw, name=directory.name, source=f"{directory} (image folder)", location=directory,
        class_names=classes, bounds=bounds, notes=notes,
    )  # fmt: skip


def check_same_channels(raw: RawSplits, origin: Path) -> None:
    shapes = {split: images.shape[1:] for split, (images, _) in raw.items() if len(images)}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{split} {shape}" for split, shape in shapes.items())
        raise DataError(f"{origin}: splits hold images of different sizes or channels: {listed}")
