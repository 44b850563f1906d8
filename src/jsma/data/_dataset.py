"""The in-memory form of a classification data set and its splits: images or feature
vectors, stored compactly (uint8 levels and their scale, or float32 values)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jsma.errors import ConfigurationError, DataError
from jsma.settings import SPLIT_NAMES, SplitName

__all__ = ["Dataset", "Split"]


# The classic MNIST pickle the paper used stores pixel k as k / 256; every
# source is converted to that scale so they all give the same tensors.
PIXEL_SCALE = 256.0


@dataclass(frozen=True)
class Split:
    """One split: inputs of shape (n, channels, height, width) or (n, features), and
    int64 labels (n,).

    `images` are uint8 levels, feature value level / `scale` (MNIST's k / 256, an
    8-bit image's k / 255), or float32 values as they are (`scale` 1).
    """

    name: SplitName
    images: np.ndarray
    labels: np.ndarray
    scale: float = PIXEL_SCALE

    def __post_init__(self) -> None:
        if self.images.dtype not in (np.uint8, np.float32) or self.images.ndim not in (2, 4):
            raise DataError(
                f"split {self.name!r}: inputs must be uint8 or float32 of shape (n, c, h, w) "
                f"or (n, features), got {self.images.dtype} {self.images.shape}"
            )
        if self.images.dtype == np.float32 and self.scale != 1:
            raise DataError(f"split {self.name!r}: float32 inputs take no scale ({self.scale})")
        if not self.scale > 0:
            raise DataError(f"split {self.name!r}: scale must be positive, got {self.scale}")
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
        """Float32 inputs (uint8 level k -> k / scale) and int64 labels, as tensors."""
        chosen = slice(None) if indices is None else indices
        images = torch.from_numpy(self.images[chosen]).to(device=device, dtype=torch.float32)
        labels = torch.from_numpy(self.labels[chosen]).to(device)
        return (images / self.scale if self.scale != 1 else images), labels

    def cut(self, window: slice | np.ndarray) -> Split:
        """Samples `window` (a slice, or sample indices) of this split, as a split of its
        own."""
        return Split(self.name, self.images[window], self.labels[window], self.scale)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """How many samples of each class, shape (num_classes,)."""
        return np.bincount(self.labels, minlength=num_classes)


@dataclass(frozen=True)
class Dataset:
    """A data set in the paper's three splits (any of which may be empty, not all).

    `num_classes` and the input shape come from the data; `bounds` are the
    value bounds of a feature after scaling (the attack clips to them).
    `class_names`, when the data names its classes, gives their number too.
    `location` is what `jsma.data.load_data` takes to read this data again
    ("mnist", or a file's absolute path); `notes` say what conversions reading made.
    """

    name: str
    source: str
    train: Split
    validation: Split
    test: Split
    bounds: tuple[float, float] = (0.0, 1.0)
    class_names: tuple[str, ...] | None = None
    location: str | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        shapes = {split.images.shape[1:] for split in self.splits()}
        if len(shapes) != 1:
            raise DataError(f"{self.source}: splits disagree on the input shape: {sorted(shapes)}")
        if not any(len(split) for split in self.splits()):
            raise DataError(f"{self.source}: no samples in any split")
        if self.class_names is None and self.num_classes < 2:
            raise DataError(
                f"{self.source}: every label is 0, one class; a classifier needs at least two"
            )
        if not self.bounds[0] < self.bounds[1]:
            raise DataError(f"{self.source}: bounds must have low < high, got {self.bounds}")
        if self.class_names is not None:
            if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
                raise DataError(
                    f"{self.source}: class names must be at least two, all different; "
                    f"got {list(self.class_names)[:5]}"
                )
            for split in self.splits():
                if len(split) and split.labels.max() >= len(self.class_names):
                    raise DataError(
                        f"{self.source}: {split.name} label {split.labels.max()} is out of range "
                        f"for {len(self.class_names)} classes (0 to {len(self.class_names) - 1})"
                    )
            return
        # Classes are 0..max label; one no training image has means damaged labels.
        absent = np.flatnonzero(self.train.class_counts(self.num_classes) == 0)
        if len(self.train) and len(absent):
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
    def input_shape(self) -> tuple[int, ...]:
        """(channels, height, width) for images, (features,) for feature vectors."""
        return tuple(int(side) for side in self.train.images.shape[1:])

    @property
    def is_images(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def num_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        return int(max(split.labels.max(initial=-1) for split in self.splits())) + 1

    def class_name(self, label: int) -> str:
        """The name of class `label`: the data's own, else the number."""
        return self.class_names[label] if self.class_names is not None else str(label)

    def describe(self) -> list[str]:
        """What was read, for people: shape, classes, bounds, sizes, and conversions."""
        names = "" if self.class_names is None else f" ({', '.join(self.class_names[:10])}"
        if names:
            names += ", ...)" if len(self.class_names or ()) > 10 else ")"
        kind = "images" if self.is_images else "feature vectors"
        sizes = ", ".join(f"{s.name} {len(s):,}" for s in self.splits() if len(s))
        return [
            f"data:    {self.source}",
            f"inputs:  {kind} of shape {self.input_shape} "
            f"({int(np.prod(self.input_shape)):,} features), {self.train.images.dtype}",
            f"classes: {self.num_classes}{names}",
            f"bounds:  [{self.bounds[0]:g}, {self.bounds[1]:g}]",
            f"splits:  {sizes}",
            *(f"note:    {note}" for note in self.notes),
        ]
