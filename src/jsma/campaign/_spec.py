"""What a campaign attacks: splits, samples, targets and the attack settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from jsma._hashing import splitmix64
from jsma._records import decode, encode
from jsma.attacks import AttackSettings
from jsma.campaign._store import WorkUnit
from jsma.data._dataset import Dataset
from jsma.errors import ConfigurationError
from jsma.settings import (
    DEFAULT_UNIT_SIZE,
    SAMPLE_ORDERS,
    SPLIT_NAMES,
    TARGET_RULES,
    SampleOrder,
    TargetRule,
)

__all__ = ["AttackSettings", "CampaignSpec", "FeatureMask"]

# Attack settings added after 0.2.0, with the value every earlier campaign had: left out
# of the digest at that value, so that those campaigns' unit files keep their stamps.
_LATER_SETTINGS = {"saliency": "jsma", "search_domain": "unsaturated", "binary": False}


@dataclass(frozen=True)
class FeatureMask:
    """The features a campaign's attacks may change, the same for every sample: `JSMA`'s
    shared `mask=` in a form a manifest stores (and its digest covers).

    `shape` broadcasts to one input's shape (a `(28, 28)` mask fits `(1, 28, 28)`
    images; a `(1, H, W)` mask keeps or frees a pixel's channels together); `bits` is
    the row-major flattened mask packed eight features a byte (`np.packbits`), in hex.
    Build one with `FeatureMask.of(array)`.
    """

    shape: tuple[int, ...]
    bits: str

    def __post_init__(self) -> None:
        if not self.shape or any(size < 1 for size in self.shape):
            raise ConfigurationError(f"a mask's shape has positive sizes, got {self.shape}")
        count = math.prod(self.shape)
        if len(self.bits) != 2 * math.ceil(count / 8):
            raise ConfigurationError(
                f"a mask of shape {self.shape} is {math.ceil(count / 8)} bytes of bits, got "
                f"{len(self.bits) / 2:g}"
            )
        try:
            packed = np.frombuffer(bytes.fromhex(self.bits), dtype=np.uint8)
        except ValueError:
            raise ConfigurationError("a mask's bits are hexadecimal digits") from None
        if np.unpackbits(packed)[count:].any():
            raise ConfigurationError("a mask's bits past its last feature must be 0")
        if not self.changeable:
            raise ConfigurationError("the mask lets no feature change: nothing to attack")

    @classmethod
    def of(cls, mask: np.ndarray | torch.Tensor) -> FeatureMask:
        """The mask of a bool array, True where a feature may change."""
        array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask
        if not isinstance(array, np.ndarray) or array.dtype != np.bool_:
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise ConfigurationError(
                f"a mask is a bool array, True where a feature may change; got {kind}"
            )
        return cls(tuple(array.shape), np.packbits(array.ravel()).tobytes().hex())

    def array(self) -> np.ndarray:
        """The mask as a bool array of its shape."""
        packed = np.frombuffer(bytes.fromhex(self.bits), dtype=np.uint8)
        return np.unpackbits(packed)[: math.prod(self.shape)].astype(bool).reshape(self.shape)

    def tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.from_numpy(self.array()).to(device)

    @property
    def changeable(self) -> int:
        """How many of its features may change."""
        packed = np.frombuffer(bytes.fromhex(self.bits), dtype=np.uint8)
        return int(np.unpackbits(packed).sum())

    def check_fits(self, input_shape: tuple[int, ...]) -> None:
        """A `ConfigurationError` unless the mask broadcasts to inputs of this shape."""
        try:
            fits = np.broadcast_shapes(self.shape, input_shape) == tuple(input_shape)
        except ValueError:
            fits = False
        if not fits:
            raise ConfigurationError(
                f"a mask of shape {self.shape} does not fit inputs of shape "
                f"{tuple(input_shape)} (it must broadcast to one input's shape)"
            )


@dataclass(frozen=True, kw_only=True)
class CampaignSpec:
    """A campaign: which samples of which splits, which targets, which attack.

    `samples` takes N samples of each split (None: all of them): the first N, or with
    `order="stratified"` the classes in turn, each class's samples in an order seeded
    by `seed` (`sample_indices`).
    Target rules: `all-others` (each class but the sample's label: the
    paper's 9 attacks per sample), `random` (one other class, seeded),
    `least-likely` (the other class the model finds least likely), and
    `untargeted`. Each unit of `unit_size` samples is attacked as one batch.
    `mask`: the features the attacks may change (None: all of them).
    """

    splits: tuple[str, ...] = ("test",)
    samples: int | None = None
    targets: TargetRule = "all-others"
    attack: AttackSettings = dataclasses.field(default_factory=AttackSettings)
    unit_size: int = DEFAULT_UNIT_SIZE
    seed: int = 0
    mask: FeatureMask | None = None
    order: SampleOrder = "first"

    def __post_init__(self) -> None:
        if self.order not in SAMPLE_ORDERS:
            raise ConfigurationError(
                f"unknown sample order {self.order!r}; choose one of {', '.join(SAMPLE_ORDERS)}"
            )
        unknown = [s for s in self.splits if s not in SPLIT_NAMES]
        if not self.splits or unknown or len(set(self.splits)) != len(self.splits):
            raise ConfigurationError(
                f"splits must be distinct names among {', '.join(SPLIT_NAMES)}, got {self.splits}"
            )
        if self.targets not in TARGET_RULES:
            raise ConfigurationError(
                f"unknown target rule {self.targets!r}; choose one of {', '.join(TARGET_RULES)}"
            )
        if self.attack.variant == "maximal" and self.targets != "untargeted":
            raise ConfigurationError(
                "the maximal variant (M-JSMA) is untargeted: use the target rule 'untargeted' "
                f"(got {self.targets!r})"
            )
        if self.samples is not None and self.samples < 1:
            raise ConfigurationError(f"samples must be positive, got {self.samples}")
        if self.unit_size < 1:
            raise ConfigurationError(f"unit_size must be positive, got {self.unit_size}")

    def units(self, dataset: Dataset) -> list[WorkUnit]:
        """The deterministic list of work units over `dataset`."""
        return self.plan({split: len(dataset.split(split)) for split in self.splits})

    def plan(self, split_sizes: Mapping[str, int]) -> list[WorkUnit]:
        """The deterministic list of work units over splits of these sizes."""
        units = []
        for split in self.splits:
            count = split_sizes[split]
            if self.samples is not None:
                count = min(count, self.samples)
            units += [
                WorkUnit(split, start, min(start + self.unit_size, count))
                for start in range(0, count, self.unit_size)
            ]
        return units

    def sample_indices(self, split: str, labels: np.ndarray) -> np.ndarray:
        """The sample each position of the split attacks (units cover positions): 0, 1,
        2, ... for `first`; for `stratified`, every class's first sample, then every
        class's second, ..., each class's samples ordered by a hash of (seed, split,
        index): the same on every machine and numpy version."""
        if self.order == "first":
            return np.arange(len(labels))
        index = np.arange(len(labels), dtype=np.uint64)
        key = splitmix64(index ^ splitmix64(np.uint64(self.seed * 3 + SPLIT_NAMES.index(split))))
        by_key = np.lexsort((key, labels))  # each class's samples, in key order
        rank = np.empty(len(labels), dtype=np.int64)
        starts = np.searchsorted(labels[by_key], labels[by_key], side="left")
        rank[by_key] = np.arange(len(labels)) - starts
        return np.lexsort((labels, rank)).astype(np.int64)

    def attacks_per_sample(self, num_classes: int) -> int:
        return num_classes - 1 if self.targets == "all-others" else 1

    def to_json(self) -> dict[str, Any]:
        return dict(encode(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CampaignSpec:
        """The spec `to_json` wrote, every field checked (`RecordError` names one)."""
        return decode(cls, data)

    def digest(self) -> str:
        """A short stable hash of the spec, stamped on every unit file."""
        content = self.to_json()
        content["attack"] = {
            name: value
            for name, value in content["attack"].items()
            if not (name in _LATER_SETTINGS and value == _LATER_SETTINGS[name])
        }
        if content["mask"] is None:  # added after 0.2.0, like the later settings
            del content["mask"]
        if content["order"] == "first":  # added in 0.4
            del content["order"]
        text = json.dumps(content, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
