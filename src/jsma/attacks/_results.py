"""What an attack returns: per batch (`AttackResult`, tensors) and per sample
(`SampleResult`), and why each sample stopped."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

__all__ = ["AttackResult", "SampleResult", "StopReason"]


class StopReason(enum.IntEnum):
    """Why a sample's crafting stopped."""

    SUCCESS = 0
    """The model outputs the target (untargeted: no longer the source class)."""
    BUDGET = 1
    """The distortion budget is spent: floor(M * max_distortion / k) iterations of k features."""
    DOMAIN_EXHAUSTED = 2
    """Too few features remain in the search domain (all others saturated)."""
    NO_ADMISSIBLE = 3
    """No feature (pair) satisfies the saliency conditions: the sample fails rather
    than perturb an arbitrary feature."""


@dataclass(frozen=True)
class SampleResult:
    """One sample's attack. `distortion` is in percent of the input features;
    `trajectory` lists (feature index, new value) in the order they were changed
    (features flattened in C order), so any prefix rebuilds a smaller budget."""

    adversarial: torch.Tensor = field(repr=False)
    source: int
    target: int | None
    success: bool
    iterations: int
    features_changed: int
    distortion: float
    l2: float
    prediction: int
    probability: float
    stop_reason: StopReason
    trajectory: tuple[tuple[int, float], ...]


@dataclass(frozen=True, eq=False)
class AttackResult:
    """A batch's attack, as tensors of batch size n (index it for a `SampleResult`).

    adversarial: (n, *input_shape); sources, targets, iterations,
    features_changed, predictions, stop_reasons: (n,) int64 (targets is None
    for an untargeted attack); success: (n,) bool; distortion (percent), l2,
    probabilities: (n,) float; trajectory_features (n, T) int64 padded with -1
    and trajectory_values (n, T), T = the most features the budget allows;
    trajectory_moved (n, T) bool, whether each pick changed its feature (with
    `search_domain="all"` a feature already at its bound can be picked and stay).
    """

    adversarial: torch.Tensor
    sources: torch.Tensor
    targets: torch.Tensor | None
    success: torch.Tensor
    iterations: torch.Tensor
    features_changed: torch.Tensor
    distortion: torch.Tensor
    l2: torch.Tensor
    predictions: torch.Tensor
    probabilities: torch.Tensor
    stop_reasons: torch.Tensor
    trajectory_features: torch.Tensor
    trajectory_values: torch.Tensor
    trajectory_moved: torch.Tensor

    def __len__(self) -> int:
        return len(self.success)

    def __getitem__(self, index: int) -> SampleResult:
        steps = int((self.trajectory_features[index] >= 0).sum())
        features = self.trajectory_features[index, :steps].tolist()
        values = self.trajectory_values[index, :steps].tolist()
        return SampleResult(
            adversarial=self.adversarial[index],
            source=int(self.sources[index]),
            target=None if self.targets is None else int(self.targets[index]),
            success=bool(self.success[index]),
            iterations=int(self.iterations[index]),
            features_changed=int(self.features_changed[index]),
            distortion=float(self.distortion[index]),
            l2=float(self.l2[index]),
            prediction=int(self.predictions[index]),
            probability=float(self.probabilities[index]),
            stop_reason=StopReason(int(self.stop_reasons[index])),
            trajectory=tuple(zip(features, values, strict=True)),
        )

    def samples(self) -> list[SampleResult]:
        return [self[index] for index in range(len(self))]

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if len(self) else float("nan")
