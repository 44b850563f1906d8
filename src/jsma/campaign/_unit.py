"""One unit of a campaign: its samples, attacked as one batch, as rows of the store's schema.

Pure of any campaign state: a unit needs only its own samples (`UnitData`),
the spec and the model, so it can run in any process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from jsma.attacks import StopReason, adversarial_distance, all_other_targets
from jsma.campaign._spec import CampaignSpec, WorkUnit
from jsma.campaign._store import SCHEMA
from jsma.context import frozen_eval
from jsma.data._dataset import SPLIT_NAMES, Dataset, Split

__all__: list[str] = []  # internal to the package


@dataclass(frozen=True)
class UnitData:
    """One unit's samples cut from the data set, with what the attack needs of the rest:
    all a worker process receives (kilobytes, not the data set)."""

    unit: WorkUnit
    samples: Split
    num_classes: int
    bounds: tuple[float, float]
    indices: np.ndarray | None = None  # the samples' indices in the split (None: its positions)

    @classmethod
    def cut(cls, dataset: Dataset, unit: WorkUnit, order: np.ndarray | None = None) -> UnitData:
        """The unit's samples; `order`: the split's sample at each position
        (`CampaignSpec.sample_indices`; None: the first samples)."""
        if order is None:
            samples = dataset.split(unit.split).cut(slice(unit.start, unit.stop))
            return cls(unit, samples, dataset.num_classes, dataset.bounds)
        indices = order[unit.start : unit.stop]
        samples = dataset.split(unit.split).cut(indices)
        return cls(unit, samples, dataset.num_classes, dataset.bounds, indices)


def _unit_inputs(
    model: nn.Module, data: UnitData, spec: CampaignSpec
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Sample indices, images, sources and targets (None: untargeted) of one unit."""
    unit = data.unit
    device = next(model.parameters()).device
    indices = np.arange(unit.start, unit.stop) if data.indices is None else data.indices
    images, labels = data.samples.tensors(device=device)
    classes = data.num_classes
    if spec.targets == "all-others":
        repeated, sources, targets = all_other_targets(images, labels, classes)
        return np.repeat(indices, classes - 1), repeated, sources, targets
    if spec.targets == "random":
        # Seeded by the unit, which the spec fixes: the same on every run.
        rng = np.random.default_rng([spec.seed, SPLIT_NAMES.index(unit.split), unit.start])
        offsets = torch.from_numpy(rng.integers(1, classes, size=len(indices))).to(device)
        return indices, images, labels, (labels + offsets) % classes
    if spec.targets == "least-likely":
        with frozen_eval(model), torch.no_grad():
            logits = model(images)
        logits[torch.arange(len(labels)), labels] = float("inf")
        return indices, images, labels, logits.argmin(dim=1)
    return indices, images, labels, None


def attack_unit(model: nn.Module, data: UnitData, spec: CampaignSpec) -> tuple[pa.Table, float]:
    """Attack one unit's samples as one batch (all a worker process has); return its
    rows and the seconds the attack took."""
    unit = data.unit
    indices, images, sources, targets = _unit_inputs(model, data, spec)
    attack = spec.attack.attack(data.bounds)
    started = time.perf_counter()
    mask = None if spec.mask is None else spec.mask.tensor(images.device)
    result = attack(model, images, targets, sources=sources, mask=mask)
    seconds = time.perf_counter() - started
    goal = sources if targets is None else targets
    alpha, beta, _ = attack.derivatives(model, images, goal, untargeted=targets is None)
    distance = adversarial_distance(alpha, beta, increasing=attack.increasing)

    steps = (result.trajectory_features >= 0).sum(dim=1).cpu().numpy()
    offsets = pa.array(np.concatenate([[0], np.cumsum(steps)]).astype(np.int32))
    valid = result.trajectory_features >= 0
    features = result.trajectory_features[valid].cpu().numpy().astype(np.int32)
    values = result.trajectory_values[valid].cpu().numpy().astype(np.float32)
    moved = result.trajectory_moved[valid].cpu().numpy()
    count = len(indices)

    def column(tensor: torch.Tensor, dtype: Any) -> np.ndarray:
        return tensor.detach().cpu().numpy().astype(dtype)

    table = pa.Table.from_arrays(
        [
            pa.array([unit.split] * count),
            pa.array(indices.astype(np.int32)),
            pa.array(column(sources, np.int16)),
            pa.nulls(count, pa.int16()) if targets is None else pa.array(column(targets, np.int16)),
            pa.array(column(result.success, np.bool_)),
            pa.array(column(result.iterations, np.int32)),
            pa.array(column(result.features_changed, np.int32)),
            pa.array(column(result.distortion, np.float32)),
            pa.array(column(result.l2, np.float32)),
            pa.array(column(result.predictions, np.int16)),
            pa.array(column(result.probabilities, np.float32)),
            pa.array([StopReason(code).name.lower() for code in result.stop_reasons.tolist()]),
            pa.array(np.full(count, seconds / count, dtype=np.float32)),
            pa.array(column(distance, np.float32)),
            pa.ListArray.from_arrays(offsets, pa.array(features)),
            pa.ListArray.from_arrays(offsets, pa.array(values)),
            pa.ListArray.from_arrays(offsets, pa.array(moved)),
        ],
        schema=SCHEMA,
    )
    return table, seconds
