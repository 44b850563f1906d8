"""The in-memory form of an image classification data set and its splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jsma.errors import ConfigurationError, DataError
from jsma.settings import SPLIT_NAMES, SplitName

__all__ = ["PIXEL_SCALE", "Dataset", "Split", "SplitName"]


# The classic MNIST pickle the paper used stores pixel k as k / 256; every
# source is converted to that scale so they all give the same tensors.
PIXEL_SCALE = 256.0


@dataclass(frozen=True)
class Split:
    """One split: uint8 images of shape (n, channels, height, width), int64 labels (n,)."""

    name: SplitName
    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(
                f"split {self.name!r}: images must be uint8 of shape (n, c, h, w), "
                f"got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.ndim != 1 or self.labels.dtype != np.int64:
            raise DataError(
                f"split {self.name!r}: labels must be int64 of shape (n,), "
                f"got {self.labels.dtype} {self.labels.shape}"
            )
        if len(self.images) != len(self.labels):
            raise DataError(
                f"split {self.name!r}: {len(self.labels)} labels for {len(self.images)} images"
            )
        if len(self.labels) and self.labels.min() < 0:
            raise DataError(f"split {self.name!r}: negative label {self.labels.min()}")

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(
        self, indices: np.ndarray | slice | None = None, *, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [0, 1) (pixel k -> k / 256) and int64 labels, as tensors."""
        chosen = slice(None) if indices is None else indices
        images = torch.from_numpy(self.images[chosen]).to(device=device, dtype=torch.float32)
        labels = torch.from_numpy(self.labels[chosen]).to(device)
        return images / PIXEL_SCALE, labels

    def class_counts(self, num_classes: int) -> np.ndarray:
        """How many samples of each class, shape (num_classes,)."""
        return np.bincount(self.labels, minlength=num_classes)


@dataclass(frozen=True)
class Dataset:
    """A data set in the paper's three splits.

    `num_classes` and the input shape come from the data; `bounds` are the
    value bounds of a feature after scaling (the attack clips to them).
    """

    name: str
    source: str
    train: Split
    validation: Split
    test: Split
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        shapes = {split.images.shape[1:] for split in self.splits()}
        if len(shapes) != 1:
            raise DataError(f"{self.source}: splits disagree on the image shape: {sorted(shapes)}")
        empty = [split.name for split in self.splits() if not len(split)]
        if empty:
            raise DataError(f"{self.source}: the {' and '.join(empty)} split is empty")
        # Classes are 0..max label; one no training image has means damaged labels.
        absent = np.flatnonzero(self.train.class_counts(self.num_classes) == 0)
        if len(absent):
            raise DataError(
                f"{self.source}: labels run from 0 to {self.num_classes - 1}, but no training "
                f"image has label {', '.join(map(str, absent[:5]))}"
                f"{' ...' if len(absent) > 5 else ''}: the labels look damaged"
            )

    def splits(self) -> tuple[Split, Split, Split]:
        return (self.train, self.validation, self.test)

    def split(self, name: str) -> Split:
        """The split called `name` (train, validation or test)."""
        if name not in SPLIT_NAMES:
            raise ConfigurationError(
                f"unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}"
            )
        split: Split = getattr(self, name)
        return split

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train.images.shape[1:]
        return (channels, height, width)

    @property
    def num_classes(self) -> int:
        return int(max(split.labels.max(initial=-1) for split in self.splits())) + 1
