"""A campaign's adversarial samples as tensors, rebuilt from the stored trajectories
and the data (the store keeps what changed, not the images)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from jsma.campaign.location import Folder, folder_at
from jsma.campaign.manifest import open_campaign
from jsma.campaign.runner import load_results
from jsma.data.dataset import Dataset
from jsma.errors import ConfigurationError, JSMAError
from jsma.metrics import CampaignArrays, adversarial_samples

__all__ = ["CraftedSamples", "crafted_samples"]


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


def crafted_samples(campaign: str | os.PathLike[str] | Folder, dataset: Dataset) -> CraftedSamples:
    """Rebuild every successful sample of `campaign` from its trajectory and the data."""
    folder = folder_at(campaign)
    manifest = open_campaign(folder)
    if manifest.data.input_shape != tuple(dataset.input_shape):
        raise ConfigurationError(
            f"{folder}: attacked inputs of shape {manifest.data.input_shape}; the data given "
            f"has {tuple(dataset.input_shape)}"
        )
    arrays = CampaignArrays.from_table(load_results(folder))
    rows = np.flatnonzero(arrays.success)
    if not len(rows):
        raise JSMAError(f"{folder}: no attack succeeded, so it holds no adversarial sample")
    originals = np.empty((len(rows), *dataset.input_shape), dtype=np.float32)
    for split in np.unique(arrays.split[rows]):
        here = np.flatnonzero(arrays.split[rows] == split)
        originals[here] = dataset.split(str(split)).tensors(arrays.index[rows][here])[0].numpy()
    adversarial = adversarial_samples(arrays, originals, rows)
    return CraftedSamples(
        adversarial=torch.from_numpy(adversarial).float(),
        originals=torch.from_numpy(originals),
        sources=torch.from_numpy(arrays.source[rows]),
        targets=torch.from_numpy(arrays.target[rows]),
        distortion=arrays.distortion[rows],
    )
