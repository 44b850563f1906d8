"""Detecting JSMA samples by their roughness (the paper's first defense idea).

JSMA saturates a few pixels and leaves the rest alone, so its samples have
sharper edges than handwriting: the sum over all pairs of neighbouring
pixels of their squared difference is higher. Here that statistic is
computed per image, a threshold is calibrated on benign images at a chosen
false-positive rate, and the detector is evaluated on a campaign's
adversarial samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from jsma._records import read_record, write_record
from jsma.campaign import Campaign
from jsma.campaign._samples import rebuilt_samples
from jsma.data._dataset import Dataset
from jsma.errors import ConfigurationError, JSMAError
from jsma.metrics import CampaignArrays
from jsma.metrics._core import attack_keys, distortion_bucket, sample_keys
from jsma.settings import DISTORTION_BUCKETS, Direction

__all__ = [
    "DetectionResult",
    "StoredDetection",
    "evaluate_detection",
    "neighbour_statistic",
    "read_detection",
]

DETECTION_FILE = "detection.json"


def neighbour_statistic(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Sum over all pairs of horizontally or vertically adjacent pixels of their
    squared difference, per image.

    images: (batch, ..., height, width); leading dimensions after the batch
    (channels) are summed over. Returns (batch,) float64.
    """
    x = torch.as_tensor(images).to(torch.float64)
    if x.ndim < 3:
        raise ConfigurationError(
            f"images must be (batch, ..., height, width), got shape {tuple(x.shape)}"
        )
    across = (x[..., :, 1:] - x[..., :, :-1]).square().flatten(1).sum(dim=1)
    down = (x[..., 1:, :] - x[..., :-1, :]).square().flatten(1).sum(dim=1)
    return (across + down).numpy()


def threshold_at(benign: np.ndarray, false_positive_rate: float) -> float:
    """The smallest threshold that flags (score > threshold) at most
    `false_positive_rate` of the `benign` scores."""
    if not 0 < false_positive_rate < 1:
        raise ConfigurationError(
            f"false_positive_rate must lie in (0, 1), got {false_positive_rate}"
        )
    if len(benign) == 0:
        raise ConfigurationError("no benign scores to calibrate on")
    allowed = math.floor(false_positive_rate * len(benign) + 1e-9)  # benign images over it
    return float(np.sort(benign)[len(benign) - allowed - 1])


@dataclass(frozen=True)
class RocCurve:
    """Detection rate against false-positive rate as the threshold sweeps down."""

    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    thresholds: np.ndarray  # flag when score >= threshold; rates start at (0, 0)

    @property
    def auc(self) -> float:
        fpr, tpr = self.false_positive_rate, self.true_positive_rate
        return float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())


def roc_curve(benign: np.ndarray, adversarial: np.ndarray) -> RocCurve:
    """The ROC curve of the detector `score >= threshold`, over every distinct score."""
    if len(benign) == 0 or len(adversarial) == 0:
        raise ConfigurationError("a ROC curve needs benign and adversarial scores")
    scores = np.concatenate([benign, adversarial])
    positive = np.concatenate([np.zeros(len(benign)), np.ones(len(adversarial))])
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    # One point per distinct score: the last index of each run of equal scores.
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    true_positives = np.cumsum(positive)[ends]
    false_positives = (ends + 1) - true_positives
    return RocCurve(
        np.r_[0.0, false_positives / len(benign)],
        np.r_[0.0, true_positives / len(adversarial)],
        np.r_[np.inf, scores[ends]],
    )


@dataclass(frozen=True)
class OperatingPoint:
    """The detector at a threshold calibrated on benign validation images."""

    calibrated_false_positive_rate: float
    threshold: float
    test_false_positive_rate: float  # measured on the campaign's benign originals
    detection_rate: float  # of the successful adversarial samples
    undetected: int  # successful adversarial samples under the threshold
    undetected_success_rate: float  # of all the campaign's attacks: success and not flagged
    detection_rate_by_bucket: tuple[float, ...]  # per DISTORTION_BUCKETS bucket (NaN: empty)


@dataclass(frozen=True)
class DetectionResult:
    """How the neighbour statistic separates a campaign's samples from benign ones."""

    campaign: Path
    direction: Direction
    benign: np.ndarray  # statistic of the campaign's distinct benign originals
    adversarial: np.ndarray  # statistic of its successful adversarial samples
    adversarial_distortion: np.ndarray  # their distortion, percent
    calibration: np.ndarray  # statistic of the benign calibration images
    roc: RocCurve
    points: tuple[OperatingPoint, ...]
    bucket_counts: tuple[int, ...]
    attack_keys: np.ndarray  # (attacks,) metrics.attack_keys: the same across campaigns
    successful_rows: np.ndarray  # rows of `attack_keys` that `adversarial` holds, in order

    @property
    def auc(self) -> float:
        return self.roc.auc

    def summary(self) -> DetectionSummary:
        """What `write_detection` stores of this result: the figures, the operating
        points, the ROC thinned to at most ~400 points (enough to draw, small enough
        to read) and the statistic's histogram."""
        keep = np.unique(np.linspace(0, len(self.roc.thresholds) - 1, 400).astype(int))
        top = float(np.quantile(np.concatenate([self.benign, self.adversarial]), 0.995))
        edges = np.linspace(0.0, top, 61)
        return DetectionSummary(
            campaign=str(self.campaign),
            direction=self.direction,
            auc=self.auc,
            benign_samples=len(self.benign),
            attacks=len(self.attack_keys),
            adversarial_samples=len(self.adversarial),
            mean_benign=float(self.benign.mean()),
            mean_adversarial=float(self.adversarial.mean()) if len(self.adversarial) else math.nan,
            points=self.points,
            distortion_buckets=DISTORTION_BUCKETS,
            bucket_counts=self.bucket_counts,
            histogram_edges=tuple(edges.tolist()),
            histogram_benign=tuple(np.histogram(self.benign, edges)[0].tolist()),
            histogram_adversarial=tuple(np.histogram(self.adversarial, edges)[0].tolist()),
            roc_false_positive_rate=tuple(self.roc.false_positive_rate[keep].tolist()),
            roc_true_positive_rate=tuple(self.roc.true_positive_rate[keep].tolist()),
        )


def _statistics_of(
    arrays: CampaignArrays, rows: np.ndarray, dataset: Dataset, chunk: int = 8192
) -> np.ndarray:
    """The statistic of the adversarial samples of `rows`, rebuilt in chunks (memory
    stays bounded on a 270,000-attack campaign)."""
    scores = [
        neighbour_statistic(rebuilt_samples(arrays, rows[begin : begin + chunk], dataset)[0])
        for begin in range(0, len(rows), chunk)
    ]
    return np.concatenate(scores) if scores else np.zeros(0)


def joint_undetected_success_rate(
    results: Sequence[DetectionResult], threshold: float
) -> tuple[float, int]:
    """An attacker who knows the detector and has several campaigns' samples for the
    same (sample, target) attacks (say, the increasing and decreasing directions)
    keeps any that succeeds under `threshold`. Returns the share of the attacks
    common to all campaigns that succeed undetected that way, and their count.
    """
    if not results:
        raise ConfigurationError("no detection results to combine")
    common = results[0].attack_keys
    for result in results[1:]:
        common = np.intersect1d(common, result.attack_keys)
    evading = [
        result.attack_keys[result.successful_rows[result.adversarial <= threshold]]
        for result in results
    ]
    hits = np.intersect1d(np.unique(np.concatenate(evading)), common)
    return (len(hits) / len(common) if len(common) else float("nan")), len(common)


def evaluate_detection(
    campaign: Path,
    dataset: Dataset,
    *,
    false_positive_rates: Sequence[float] = (0.01, 0.05),
    calibration_split: str = "validation",
) -> DetectionResult:
    """Calibrate on benign `calibration_split` images, then test on `campaign`.

    Negatives are the campaign's distinct benign originals, positives its
    successful adversarial samples (a failed attack produced no adversarial
    sample). JSMA stops as soon as the target class is reached, so these are
    already the least-changed samples an attacker who knows the detector
    would keep; `undetected` counts those that stay under the threshold.
    """
    if not dataset.is_images:
        raise ConfigurationError(
            f"{dataset.source}: detection compares neighbouring pixels, so it needs images; "
            f"these inputs are feature vectors of shape {dataset.input_shape}"
        )
    if not len(dataset.split(calibration_split)):
        raise ConfigurationError(
            f"{dataset.source}: no {calibration_split} images to calibrate the thresholds on; "
            "choose a split that has some (--calibration-split train)"
        )
    opened = Campaign.open(campaign)
    opened.check_data(dataset)
    arrays = opened.arrays()
    successful = np.flatnonzero(arrays.success)
    if not len(successful):
        raise JSMAError(f"{campaign}: no attack succeeded, so there is nothing to detect")
    adversarial = _statistics_of(arrays, successful, dataset)
    distortion = arrays.distortion[successful]

    # Negatives: each attacked benign sample once.
    _, first = np.unique(sample_keys(arrays), return_index=True)
    benign = np.concatenate(
        [
            neighbour_statistic(dataset.split(str(split)).tensors(arrays.index[rows])[0])
            for split in np.unique(arrays.split[first])
            for rows in [first[arrays.split[first] == split]]
        ]
    )
    calibration = neighbour_statistic(dataset.split(calibration_split).tensors()[0])

    edges = DISTORTION_BUCKETS
    bucket = distortion_bucket(distortion, edges)
    counts = np.bincount(bucket[bucket >= 0], minlength=len(edges) - 1)
    points = []
    for rate in false_positive_rates:
        threshold = threshold_at(calibration, rate)
        flagged = adversarial > threshold
        by_bucket = tuple(
            float(flagged[bucket == b].mean()) if counts[b] else float("nan")
            for b in range(len(edges) - 1)
        )
        points.append(
            OperatingPoint(
                calibrated_false_positive_rate=rate,
                threshold=threshold,
                test_false_positive_rate=float((benign > threshold).mean()),
                detection_rate=float(flagged.mean()),
                undetected=int((~flagged).sum()),
                undetected_success_rate=float((~flagged).sum() / len(arrays.success)),
                detection_rate_by_bucket=by_bucket,
            )
        )
    return DetectionResult(
        campaign=campaign,
        direction=opened.manifest.spec.attack.direction,
        benign=benign,
        adversarial=adversarial,
        adversarial_distortion=distortion,
        calibration=calibration,
        roc=roc_curve(benign, adversarial),
        points=tuple(points),
        bucket_counts=tuple(int(c) for c in counts),
        attack_keys=attack_keys(arrays),
        successful_rows=successful,
    )


def write_detection(directory: Path, results: Sequence[DetectionResult]) -> Path:
    """Store `results` as `directory`/detection.json (what `jsma report --defenses` reads)."""
    stored = StoredDetection(
        tuple(result.summary() for result in results), tuple(joint_records(results))
    )
    return write_record(directory / DETECTION_FILE, stored)


@dataclass(frozen=True)
class DetectionSummary:
    """What `write_detection` keeps of a `DetectionResult` (see `DetectionResult.summary`)."""

    campaign: str
    direction: Direction
    auc: float
    benign_samples: int
    attacks: int
    adversarial_samples: int
    mean_benign: float
    mean_adversarial: float  # NaN: no adversarial sample
    points: tuple[OperatingPoint, ...]
    distortion_buckets: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    histogram_edges: tuple[float, ...]
    histogram_benign: tuple[int, ...]
    histogram_adversarial: tuple[int, ...]
    roc_false_positive_rate: tuple[float, ...]
    roc_true_positive_rate: tuple[float, ...]


@dataclass(frozen=True)
class JointRecord:
    """At one calibrated threshold: the share of all attacks that succeed undetected when
    the attacker keeps, for each (sample, target), any campaign's sample that evades."""

    calibrated_false_positive_rate: float
    threshold: float
    undetected_success_rate: float
    attacks: int
    campaigns: tuple[str, ...]


@dataclass(frozen=True)
class StoredDetection:
    """What `write_detection` stored: one summary per campaign and the joint records."""

    KIND: ClassVar[str] = "detection"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (nested histogram and ROC, no header)

    results: tuple[DetectionSummary, ...]
    joint: tuple[JointRecord, ...]

    @classmethod
    def upgraded(cls, data: dict[str, Any], format: int) -> dict[str, Any]:
        results = data.get("results")
        if not isinstance(results, list):
            return data  # load names the problem
        return {**data, "results": [_summary_of_format_0(r) for r in results]}


def _summary_of_format_0(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if "direction" not in data and "variant" in data:  # written before the rename
        data["direction"] = data.pop("variant")
    means, histogram, roc = (data.pop(k, {}) for k in ("mean_statistic", "histogram", "roc"))
    points = data.pop("operating_points", None)
    return {
        **data,
        "mean_benign": means.get("benign"),
        "mean_adversarial": means.get("adversarial"),
        "points": points,
        "histogram_edges": histogram.get("edges"),
        "histogram_benign": histogram.get("benign"),
        "histogram_adversarial": histogram.get("adversarial"),
        "roc_false_positive_rate": roc.get("false_positive_rate"),
        "roc_true_positive_rate": roc.get("true_positive_rate"),
    }


def read_detection(directory: Path) -> StoredDetection | None:
    """The detection results stored in `directory`, None if there are none, or a
    `JSMAError` naming the file when they are damaged."""
    path = directory / DETECTION_FILE
    if not path.is_file():
        return None
    return read_record(StoredDetection, path, missing="no detection results here")


def joint_records(results: Sequence[DetectionResult]) -> list[JointRecord]:
    """`joint_undetected_success_rate` at each calibrated threshold (with 2+ results
    that share attacks: an untargeted campaign shares none with a targeted one)."""
    if len(results) < 2:
        return []
    common = functools.reduce(np.intersect1d, [result.attack_keys for result in results])
    if not len(common):
        return []
    records = []
    for point in results[0].points:
        rate, attacks = joint_undetected_success_rate(results, point.threshold)
        records.append(
            JointRecord(
                point.calibrated_false_positive_rate,
                point.threshold,
                rate,
                attacks,
                tuple(str(result.campaign) for result in results),
            )
        )
    return records
