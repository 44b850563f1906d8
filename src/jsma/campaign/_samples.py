"""A campaign's adversarial samples as arrays, rebuilt from the stored trajectories
and the data (the store keeps what changed, not the images): the one way the
project rebuilds them (`Campaign.samples`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jsma.data._dataset import Dataset
from jsma.metrics import CampaignArrays
from jsma.metrics._core import adversarial_samples

__all__ = ["CraftedSamples"]


@dataclass(frozen=True)
class CraftedSamples:
    """A campaign's successful adversarial samples and their originals, as tensors.

    adversarial, originals: (N, C, H, W); sources, targets (-1: untargeted): (N,);
    distortion: (N,) percent of features changed.
    """

    adversarial: torch.Tensor
    originals: torch.Tensor
    sources: torch.Tensor
    targets: torch.Tensor
    distortion: np.ndarray


def originals_of(arrays: CampaignArrays, rows: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The attacked inputs of `rows`, (len(rows), *input_shape) float32, from the data."""
    originals = np.empty((len(rows), *dataset.input_shape), dtype=np.float32)
    for split in np.unique(arrays.split[rows]):
        here = np.flatnonzero(arrays.split[rows] == split)
        originals[here] = dataset.split(str(split)).tensors(arrays.index[rows][here])[0].numpy()
    return originals


def rebuilt_samples(
    arrays: CampaignArrays, rows: np.ndarray, dataset: Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """The adversarial samples of `rows` and their originals, both (len(rows), *shape)."""
    originals = originals_of(arrays, rows, dataset)
    return adversarial_samples(arrays, originals, rows), originals
