"""Everything a report shows about one campaign, computed from its stored rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from jsma._records import encode
from jsma.campaign import Campaign, CampaignStatus
from jsma.campaign._campaign import CampaignLike
from jsma.campaign._manifest import Manifest
from jsma.campaign.location import Folder
from jsma.metrics import (
    BudgetCurves,
    CampaignArrays,
    SetResults,
    budget_curves,
    distance_matrix,
    distortion_matrix,
    hardness_matrix,
    rank_correlation,
    results_by_split,
    robustness,
    success_matrix,
)
from jsma.metrics._core import in_pixels
from jsma.settings import Direction, L0Count

__all__ = ["ReportSummary", "summarise"]

# Budgets for the curves and the hardness integral: every 0.5% up to the campaign's.
_BUDGET_STEP = 0.005


@dataclass(frozen=True, eq=False)
class CampaignSummary:
    """A campaign's metrics, ready to draw and to write as JSON."""

    directory: Folder
    manifest: Manifest
    status: CampaignStatus
    arrays: CampaignArrays
    results: list[SetResults]
    success: np.ndarray
    distortion: np.ndarray
    hardness: np.ndarray
    distance: np.ndarray
    curves: BudgetCurves
    robustness: float
    mean_sample_robustness: float
    hardness_distance_correlation: float
    # What distortion counts: features (the paper's elements), or pixels of images.
    l0: L0Count = "features"

    @property
    def hardness_undefined(self) -> np.ndarray:
        """The attacked pairs whose hardness has no integral (success within fewer than
        two budgets): hatched in the matrix, left out of the rank correlation."""
        return np.isnan(self.hardness) & np.isfinite(self.success)

    @property
    def l0_units(self) -> int:
        """How many features (or pixels) one input has: what a distortion is a share of."""
        shape = self.manifest.data.input_shape
        return int(np.prod(shape)) if self.l0 == "features" else int(shape[1] * shape[2])

    def l0_statement(self) -> str:
        """What the distortion counts, in words, with the count."""
        shape = self.manifest.data.input_shape
        if self.l0 == "pixels":
            return (
                f"the share of the {self.l0_units:,} pixels ({shape[1]} x {shape[2]}) changed "
                f"in any of their {shape[0]} channels"
            )
        dims = " x ".join(map(str, shape))
        return f"the share of the {self.l0_units:,} features ({dims}) changed"

    @property
    def theta(self) -> float:
        return self.manifest.spec.attack.theta

    @property
    def direction(self) -> Direction:
        return self.manifest.spec.attack.direction

    @property
    def variations(self) -> list[str]:
        """How the attack differs from the paper's JSMA (saliency, variant, search domain):
        what tells campaigns of one directory name apart."""
        attack = self.manifest.spec.attack
        words = [] if attack.saliency == "jsma" else [attack.saliency.upper()]
        if attack.variant == "maximal":
            words.append("M-JSMA")
        elif attack.variant == "single":
            words.append("single features")
        if attack.search_domain == "all":
            words.append("the paper's search domain")
        return words

    @property
    def label(self) -> str:
        name = self.directory.name
        parts: list[str] = [] if self.direction in name else [self.direction]
        parts += [f"theta = {self.theta:+g}", *self.variations]
        return f"{name} ({', '.join(parts)})"

    @property
    def stem(self) -> str:
        """The start of its figures' file names: the directory's name and the variations,
        so that reports of other attacks in one output folder keep their own figures."""
        extra = "-".join(w.lower().replace(" ", "-").replace("'", "") for w in self.variations)
        return f"{self.directory.name}-{extra}" if extra else self.directory.name

    def configuration(self) -> dict[str, Any]:
        """How the campaign was set up, as JSON values: spec, model, data (without its
        fingerprint) and the versions that ran it."""
        data = {k: v for k, v in encode(self.manifest.data).items() if k != "fingerprint"}
        return {
            "spec": encode(self.manifest.spec),
            "model": encode(self.manifest.model),
            "data": data,
            "versions": dict(self.manifest.versions),
        }

    def to_json(self) -> dict[str, Any]:
        number = matrix = encode  # NaN (not defined) as null, strict JSON
        configuration = self.configuration()
        return {
            "directory": str(self.directory),
            "direction": self.direction,
            "l0": self.l0,
            "l0_per_input": self.l0_units,
            **{key: configuration[key] for key in ("spec", "model", "data")},
            "attacks": self.status.attacks_done,
            "throughput_attacks_per_second": number(self.status.throughput),
            "results": [
                {
                    "set": line.name,
                    "attacks": line.attacks,
                    "success_rate": number(line.success_rate),
                    "mean_distortion_success": number(line.mean_distortion_success),
                    "mean_distortion_all": number(line.mean_distortion_all),
                }
                for line in self.results
            ],
            "robustness": self.robustness,
            "mean_sample_robustness": self.mean_sample_robustness,
            "hardness_distance_correlation": number(self.hardness_distance_correlation),
            "budgets": self.curves.budgets.tolist(),
            "success_rate_by_budget": self.curves.success_rate.tolist(),
            "mean_distortion_success_by_budget": [
                number(v) for v in self.curves.mean_distortion_success.tolist()
            ],
            "matrices": {
                "success": matrix(self.success),
                "distortion": matrix(self.distortion),
                "hardness": matrix(self.hardness),
                "adversarial_distance": matrix(self.distance),
            },
        }


def summarise(where: CampaignLike, *, l0: L0Count = "features") -> CampaignSummary:
    """Read a finished campaign (a directory or a storage URI) and compute every metric
    the report shows; `l0="pixels"` counts distortion in pixels of images (a pixel once
    across its channels), the budget curves and hardness staying in the attack's
    features."""
    campaign = Campaign.open(where)  # every unit read and verified once
    directory, manifest = campaign.folder, campaign.manifest
    status = campaign.status()
    arrays = campaign.arrays()
    if l0 == "pixels":
        arrays = in_pixels(arrays, manifest.data.input_shape)
    classes = manifest.data.num_classes
    features = int(np.prod(manifest.data.input_shape))
    settings = manifest.spec.attack
    steps = max(1, round(settings.max_distortion / _BUDGET_STEP))
    budgets = np.linspace(settings.max_distortion / steps, settings.max_distortion, steps)
    curves = budget_curves(arrays, budgets, features, features_per_step=settings.features_per_step)
    if (arrays.target >= 0).any():
        success, distortion = success_matrix(arrays, classes), distortion_matrix(arrays, classes)
        hardness = hardness_matrix(arrays, curves, classes)
        distance = distance_matrix(arrays, classes)
        smallest, mean_minimum = robustness(arrays)
    else:  # untargeted: no (source, target) pair, so no per-pair measure is defined
        success = distortion = hardness = distance = np.full((classes, classes), np.nan)
        smallest = mean_minimum = float("nan")
    return CampaignSummary(
        directory=directory,
        manifest=manifest,
        status=status,
        arrays=arrays,
        results=results_by_split(arrays),
        success=success,
        distortion=distortion,
        hardness=hardness,
        distance=distance,
        curves=curves,
        robustness=smallest,
        mean_sample_robustness=mean_minimum,
        hardness_distance_correlation=rank_correlation(hardness, distance),
        l0=l0,
    )


@dataclass(frozen=True)
class ReportSummary:
    """summary.json: every number of the page, for other tools."""

    KIND: ClassVar[str] = "report-summary"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (no header)

    campaigns: list[dict[str, Any]]
    toy: dict[str, Any] | None = None
    defenses: list[dict[str, Any]] | None = None
    gan: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    study: dict[str, Any] | None = None
    blackbox: list[dict[str, Any]] | None = None
