"""Success rates, distortions, per-pair matrices, hardness, adversarial distance.

Notation of the paper (Section V): tau is a success rate, epsilon a mean
distortion (percent of the input features), Upsilon a distortion budget.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from scipy import stats

from jsma.errors import ConfigurationError

__all__ = [
    "BudgetCurves",
    "CampaignArrays",
    "ClassRates",
    "SetResults",
    "budget_curves",
    "class_rates",
    "distance_matrix",
    "distortion_bucket",
    "distortion_matrix",
    "hardness_matrix",
    "pixels_changed",
    "rank_correlation",
    "results_by_split",
    "robustness",
    "success_matrix",
]


def distortion_bucket(distortion: np.ndarray, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """The bucket of each distortion (percent): b where edges[b] < d <= edges[b + 1],
    the first bucket also holding its lower edge (a sample the model already put in
    the target has distortion 0); -1 outside the edges (a larger budget's sample).

    The one rule detection, transfer and the study bucket by (default edges:
    `jsma.settings.DISTORTION_BUCKETS`).
    """
    limits = np.asarray(edges, dtype=np.float64)
    if len(limits) < 2 or not (np.diff(limits) > 0).all():
        raise ConfigurationError(f"bucket edges must be at least two, increasing: {tuple(edges)}")
    values = np.asarray(distortion, dtype=np.float64)
    bucket = np.searchsorted(limits, values, side="left") - 1
    bucket[values == limits[0]] = 0
    bucket[(values < limits[0]) | (values > limits[-1]) | np.isnan(values)] = -1
    return bucket


@dataclass(frozen=True)
class CampaignArrays:
    """A campaign's rows as numpy arrays, one entry per attack.

    `trajectory_offsets` (n + 1,) delimit each attack's changed features in
    `trajectory_features` and their new values in `trajectory_values`, in the
    order they were picked; `trajectory_moved` says whether each pick changed
    its feature (with the paper's search domain a feature already at its bound
    can be picked and stay).
    """

    split: np.ndarray
    index: np.ndarray
    source: np.ndarray
    target: np.ndarray  # -1 for untargeted attacks
    success: np.ndarray
    iterations: np.ndarray
    features_changed: np.ndarray
    distortion: np.ndarray
    adversarial_distance: np.ndarray
    trajectory_offsets: np.ndarray
    trajectory_features: np.ndarray
    trajectory_values: np.ndarray
    trajectory_moved: np.ndarray
    prediction: np.ndarray | None = None  # the class each attack's sample ends in

    @classmethod
    def from_table(cls, table: pa.Table) -> CampaignArrays:
        def column(name: str) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False)

        trajectory = table.column("trajectory_features").combine_chunks()
        values = table.column("trajectory_values").combine_chunks()
        moved = table.column("trajectory_moved").combine_chunks()
        return cls(
            split=column("split").astype(str),
            index=column("index").astype(np.int64),
            source=column("source").astype(np.int64),
            target=table.column("target").fill_null(-1).to_numpy().astype(np.int64),
            success=column("success").astype(bool),
            iterations=column("iterations").astype(np.int64),
            features_changed=column("features_changed").astype(np.int64),
            distortion=column("distortion").astype(np.float64),
            adversarial_distance=column("adversarial_distance").astype(np.float64),
            trajectory_offsets=trajectory.offsets.to_numpy().astype(np.int64),
            trajectory_features=trajectory.values.to_numpy().astype(np.int64),
            trajectory_values=values.values.to_numpy().astype(np.float64),
            trajectory_moved=moved.values.to_numpy(zero_copy_only=False).astype(bool),
            prediction=column("prediction").astype(np.int64),
        )


@dataclass(frozen=True)
class SetResults:
    """The paper's results table, one line: a set of attacks and how they went."""

    name: str
    attacks: int
    success_rate: float
    mean_distortion_success: float  # percent, over the successful attacks
    mean_distortion_all: float  # percent, over every attack


def _set_results(name: str, success: np.ndarray, distortion: np.ndarray) -> SetResults:
    return SetResults(
        name=name,
        attacks=len(success),
        success_rate=float(success.mean()) if len(success) else math.nan,
        mean_distortion_success=float(distortion[success].mean()) if success.any() else math.nan,
        mean_distortion_all=float(distortion.mean()) if len(success) else math.nan,
    )


def results_by_split(arrays: CampaignArrays) -> list[SetResults]:
    """One line per split, then (with several splits) their average, as the paper reports."""
    lines = [
        _set_results(
            name, arrays.success[arrays.split == name], arrays.distortion[arrays.split == name]
        )
        for name in dict.fromkeys(arrays.split.tolist())
    ]
    if len(lines) > 1:
        lines.append(
            SetResults(
                name="average",
                attacks=sum(line.attacks for line in lines),
                success_rate=float(np.mean([line.success_rate for line in lines])),
                mean_distortion_success=float(
                    np.mean([line.mean_distortion_success for line in lines])
                ),
                mean_distortion_all=float(np.mean([line.mean_distortion_all for line in lines])),
            )
        )
    return lines


def _pair_mean(
    source: np.ndarray, target: np.ndarray, values: np.ndarray, num_classes: int
) -> np.ndarray:
    """Mean of `values` per (source, target); NaN where a pair has no entry."""
    sums = np.zeros((num_classes, num_classes))
    counts = np.zeros((num_classes, num_classes))
    np.add.at(sums, (source, target), values)
    np.add.at(counts, (source, target), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _targeted(arrays: CampaignArrays) -> np.ndarray:
    targeted = arrays.target >= 0
    if not targeted.any():
        raise ConfigurationError("per-pair metrics need targeted attacks; this campaign has none")
    return targeted


def success_matrix(arrays: CampaignArrays, num_classes: int) -> np.ndarray:
    """(classes, classes) success rate per (source, target) pair; NaN where none was attacked."""
    keep = _targeted(arrays)
    return _pair_mean(
        arrays.source[keep], arrays.target[keep], arrays.success[keep].astype(float), num_classes
    )


def distortion_matrix(arrays: CampaignArrays, num_classes: int) -> np.ndarray:
    """(classes, classes) mean distortion (%) of the successful attacks per pair."""
    keep = _targeted(arrays) & arrays.success
    return _pair_mean(
        arrays.source[keep], arrays.target[keep], arrays.distortion[keep], num_classes
    )


def pixels_changed(arrays: CampaignArrays, input_shape: Sequence[int]) -> np.ndarray:
    """Per attack, the pixels of a (C, H, W) image that any of its changes touched: a
    pixel counted once across its channels (the L0 most papers on images report).
    Computed from the trajectories, whose features are indices into the flattened
    (C, H, W) image."""
    if len(input_shape) != 3:
        raise ConfigurationError(
            f"pixels are counted in images (C, H, W); these inputs are {tuple(input_shape)}"
        )
    plane = int(input_shape[1]) * int(input_shape[2])
    lengths = np.diff(arrays.trajectory_offsets)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    moved = arrays.trajectory_moved
    touched = np.unique(owner[moved] * plane + arrays.trajectory_features[moved] % plane)
    return np.bincount(touched // plane, minlength=len(lengths)).astype(np.int64)


def in_pixels(arrays: CampaignArrays, input_shape: Sequence[int]) -> CampaignArrays:
    """`arrays` with `features_changed` and `distortion` counting pixels of the
    (C, H, W) images (`pixels_changed`, in percent of H x W) rather than features."""
    pixels = pixels_changed(arrays, input_shape)
    plane = int(input_shape[1]) * int(input_shape[2])
    return dataclasses.replace(arrays, features_changed=pixels, distortion=pixels / plane * 100.0)


def pair_counts(arrays: CampaignArrays, num_classes: int) -> np.ndarray:
    """(classes, classes) number of targeted attacks per (source, target) pair."""
    keep = _targeted(arrays)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (arrays.source[keep], arrays.target[keep]), 1)
    return counts


@dataclass(frozen=True)
class ClassRates:
    """The targeted attacks per class, as their source or as their target: how many
    (classes,), their success rate and the mean distortion (%) of the successes
    (NaN for a class with none)."""

    attacks: np.ndarray
    success_rate: np.ndarray
    mean_distortion: np.ndarray


def class_rates(
    arrays: CampaignArrays, num_classes: int, *, by: Literal["source", "target"]
) -> ClassRates:
    """Success and distortion per source class (how exploitable its samples are) or per
    target class (how easily others are pushed into it): the summary of a matrix too
    large to read, for many classes."""
    keep = _targeted(arrays)
    classes = (arrays.source if by == "source" else arrays.target)[keep]
    success = arrays.success[keep]
    attacks = np.bincount(classes, minlength=num_classes)
    successes = np.bincount(classes, weights=success.astype(float), minlength=num_classes)
    distortion = np.bincount(
        classes[success], weights=arrays.distortion[keep][success], minlength=num_classes
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return ClassRates(
            attacks=attacks,
            success_rate=np.where(attacks > 0, successes / attacks, np.nan),
            mean_distortion=np.where(successes > 0, distortion / successes, np.nan),
        )


def distance_matrix(arrays: CampaignArrays, num_classes: int) -> np.ndarray:
    """(classes, classes) mean adversarial distance A(X, t) per pair."""
    keep = _targeted(arrays)
    return _pair_mean(
        arrays.source[keep], arrays.target[keep], arrays.adversarial_distance[keep], num_classes
    )


@dataclass(frozen=True)
class BudgetCurves:
    """Success and distortion had the budget been each of `budgets` (fractions).

    success: (attacks, budgets) bool; distortion: (attacks, budgets) percent
    of the features changed within that budget.
    """

    budgets: np.ndarray
    success: np.ndarray
    distortion: np.ndarray

    @property
    def success_rate(self) -> np.ndarray:
        return self.success.mean(axis=0)

    @property
    def mean_distortion_success(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (self.distortion * self.success).sum(axis=0) / self.success.sum(axis=0)

    @property
    def mean_distortion_all(self) -> np.ndarray:
        return self.distortion.mean(axis=0)


def budget_curves(
    arrays: CampaignArrays, budgets: np.ndarray, num_features: int, *, features_per_step: int
) -> BudgetCurves:
    """Rebuild every attack at each smaller budget from its trajectory.

    JSMA is deterministic and a budget Upsilon only caps its iterations at
    floor(M * Upsilon / k) (k features per step), so at a smaller budget an
    attack runs the same first steps: it succeeds if it succeeded within the
    cap, and its distortion is the number of distinct features among the
    features changed by those steps.
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    caps = np.floor(num_features * budgets / features_per_step + 1e-9).astype(np.int64)
    success = arrays.success[:, None] & (arrays.iterations[:, None] <= caps[None, :])

    # Distinct features within each prefix: count the first pick that moved each feature
    # along each trajectory.
    offsets, features = arrays.trajectory_offsets, arrays.trajectory_features
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(len(lengths)), lengths)
    picks = np.flatnonzero(arrays.trajectory_moved)
    order = picks[np.lexsort((picks, features[picks], row[picks]))]
    first = arrays.trajectory_moved.copy()
    same = (row[order][1:] == row[order][:-1]) & (features[order][1:] == features[order][:-1])
    first[order[1:][same]] = False
    distinct_before = np.concatenate([[0], np.cumsum(first)])  # over the flat array
    steps = np.minimum(arrays.iterations[:, None], caps[None, :]) * features_per_step
    steps = np.minimum(steps, lengths[:, None])
    changed = distinct_before[offsets[:-1, None] + steps] - distinct_before[offsets[:-1, None]]
    return BudgetCurves(budgets, success, changed * (100.0 / num_features))


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoidal integral of y over x along the last axis (numpy 1 and 2 alike)."""
    return ((x[..., 1:] - x[..., :-1]) * (y[..., 1:] + y[..., :-1]) / 2).sum(axis=-1)


def hardness_matrix(arrays: CampaignArrays, curves: BudgetCurves, num_classes: int) -> np.ndarray:
    """H(s, t): the integral over the success rate tau of the mean distortion epsilon
    needed to reach it, by the trapezoidal rule over the budgets (paper Section V-C).

    For each pair, tau_k and epsilon_k (mean distortion of the attacks that
    succeed within budget k) are taken at every budget; budgets where no
    attack of the pair succeeds yet contribute nothing. A pair that succeeds within
    fewer than two budgets has no integral: NaN (like a pair never attacked), never 0,
    which would read as the easiest pair.
    """
    keep = _targeted(arrays)
    hardness = np.full((num_classes, num_classes), np.nan)
    source, target = arrays.source[keep], arrays.target[keep]
    success, distortion = curves.success[keep], curves.distortion[keep]
    for s in range(num_classes):
        for t in range(num_classes):
            pair = (source == s) & (target == t)
            if not pair.any():
                continue
            tau = success[pair].mean(axis=0)
            reached = success[pair].sum(axis=0)
            with np.errstate(invalid="ignore"):
                epsilon = (distortion[pair] * success[pair]).sum(axis=0) / reached
            valid = reached > 0
            if valid.sum() > 1:
                hardness[s, t] = _trapezoid(epsilon[valid], tau[valid])
    return hardness


def attack_keys(arrays: CampaignArrays, *, with_target: bool = True) -> np.ndarray:
    """One key per attack, (split, sample index, target): the same attack has the same
    key in every campaign. A structured array, so numpy's sorting and set routines
    (`np.unique`, `np.intersect1d`) take it; `with_target=False` keys the sample."""
    fields = [("split", arrays.split.dtype), ("index", np.int64)]
    keys = np.empty(len(arrays.index), dtype=[*fields, *([("target", np.int64)] * with_target)])
    keys["split"], keys["index"] = arrays.split, arrays.index
    if with_target:
        keys["target"] = arrays.target
    return keys


def sample_keys(arrays: CampaignArrays) -> np.ndarray:
    """One integer per (split, sample index) of this campaign (0, 1, ... in key order):
    the attacks of one sample share it."""
    return np.unique(attack_keys(arrays, with_target=False), return_inverse=True)[1].reshape(-1)


def robustness(arrays: CampaignArrays) -> tuple[float, float]:
    """rho(F): the smallest adversarial distance over the attacked (sample, target)
    pairs, and the mean over samples of each sample's smallest distance."""
    keep = _targeted(arrays)
    distance = arrays.adversarial_distance[keep]
    sample = sample_keys(arrays)[keep]
    per_sample = np.full(sample.max() + 1, np.inf)
    np.minimum.at(per_sample, sample, distance)
    return float(distance.min()), float(per_sample.mean())


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation over the entries both define (off-diagonal pairs)."""
    both = np.isfinite(first) & np.isfinite(second)
    if both.sum() < 3 or np.ptp(first[both]) == 0 or np.ptp(second[both]) == 0:
        return math.nan  # undefined for constant inputs
    return float(stats.spearmanr(first[both], second[both]).statistic)


def adversarial_samples(
    arrays: CampaignArrays, originals: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Rebuild the samples that the attacks `rows` crafted, from their trajectories.

    originals: (len(rows), *input_shape), the attacked inputs, in the order of
    `rows`. Returns a float copy with every recorded change applied; where a
    feature changed more than once, its last value holds.
    """
    rows = np.asarray(rows, dtype=np.int64)
    samples = np.array(originals, dtype=np.float64, copy=True)
    if len(rows) != len(samples):
        raise ConfigurationError(f"{len(rows)} rows but {len(samples)} original samples")
    flat = samples.reshape(len(rows), -1)
    starts, stops = arrays.trajectory_offsets[rows], arrays.trajectory_offsets[rows + 1]
    lengths = stops - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    first_of_owner = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + np.arange(lengths.sum()) - first_of_owner
    features = arrays.trajectory_features[positions]
    values = arrays.trajectory_values[positions]
    # Keep the last change of each (sample, feature): the first one of the reversed order.
    reverse = slice(None, None, -1)
    _, last = np.unique(np.stack([owner[reverse], features[reverse]]), axis=1, return_index=True)
    chosen = len(owner) - 1 - last
    flat[owner[chosen], features[chosen]] = values[chosen]
    return samples
