"""Every metric against a plain, loop-by-loop computation on synthetic campaigns."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.campaign import Campaign, CampaignSpec
from jsma.data import Dataset
from jsma.metrics import (
    CampaignArrays,
    budget_curves,
    distance_matrix,
    distortion_matrix,
    hardness_matrix,
    rank_correlation,
    results_by_split,
    robustness,
    success_matrix,
)
from jsma.metrics._core import adversarial_samples
from jsma.models import ModelSpec
from tests.conftest import NUM_CLASSES

CLASSES = 4
FEATURES = 40


def _synthetic(seed: int = 0, attacks: int = 300) -> CampaignArrays:
    """Attacks with trajectories of distinct features, as theta = +-1 gives."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, CLASSES, attacks)
    target = (source + rng.integers(1, CLASSES, attacks)) % CLASSES
    iterations = rng.integers(0, FEATURES // 2 + 1, attacks)
    success = rng.random(attacks) < 0.7
    trajectories = [rng.permutation(FEATURES)[: 2 * n] for n in iterations]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in trajectories])])
    changed = np.array([len(t) for t in trajectories])
    return CampaignArrays(
        split=np.where(np.arange(attacks) % 3 == 0, "train", "test"),
        index=np.arange(attacks) // 3,
        source=source,
        target=target,
        success=success,
        iterations=iterations,
        features_changed=changed,
        distortion=changed * 100.0 / FEATURES,
        adversarial_distance=rng.random(attacks),
        trajectory_offsets=offsets,
        trajectory_features=np.concatenate(trajectories),
        trajectory_values=np.ones(int(offsets[-1])),
        trajectory_moved=np.ones(int(offsets[-1]), dtype=bool),
    )


def test_results_by_split() -> None:
    arrays = _synthetic()
    lines = {line.name: line for line in results_by_split(arrays)}
    for name in ("train", "test"):
        rows = [i for i in range(len(arrays.split)) if arrays.split[i] == name]
        wins = [arrays.distortion[i] for i in rows if arrays.success[i]]
        assert lines[name].attacks == len(rows)
        assert lines[name].success_rate == pytest.approx(len(wins) / len(rows))
        assert lines[name].mean_distortion_success == pytest.approx(sum(wins) / len(wins))
        assert lines[name].mean_distortion_all == pytest.approx(
            sum(arrays.distortion[i] for i in rows) / len(rows)
        )
    average = lines["average"]
    assert average.success_rate == pytest.approx(
        (lines["train"].success_rate + lines["test"].success_rate) / 2
    )


def test_pair_matrices() -> None:
    arrays = _synthetic()
    success = success_matrix(arrays, CLASSES)
    distortion = distortion_matrix(arrays, CLASSES)
    distance = distance_matrix(arrays, CLASSES)
    for s in range(CLASSES):
        for t in range(CLASSES):
            rows = [
                i
                for i in range(len(arrays.source))
                if (arrays.source[i], arrays.target[i]) == (s, t)
            ]
            if not rows:
                assert math.isnan(success[s, t])
                continue
            assert success[s, t] == pytest.approx(np.mean([arrays.success[i] for i in rows]))
            assert distance[s, t] == pytest.approx(
                np.mean([arrays.adversarial_distance[i] for i in rows])
            )
            wins = [arrays.distortion[i] for i in rows if arrays.success[i]]
            if wins:
                assert distortion[s, t] == pytest.approx(np.mean(wins))
    assert np.isnan(np.diag(success)).all()


def test_budget_curves_truncate_the_trajectories() -> None:
    arrays = _synthetic()
    budgets = np.array([0.0, 0.1, 0.25, 0.5, 1.0])
    curves = budget_curves(arrays, budgets, FEATURES, features_per_step=2)
    for i in range(len(arrays.source)):
        trajectory = arrays.trajectory_features[
            arrays.trajectory_offsets[i] : arrays.trajectory_offsets[i + 1]
        ]
        for k, budget in enumerate(budgets):
            cap = math.floor(FEATURES * budget / 2)
            assert curves.success[i, k] == (arrays.success[i] and arrays.iterations[i] <= cap)
            steps = min(arrays.iterations[i], cap)
            assert curves.distortion[i, k] == pytest.approx(
                len(set(trajectory[: 2 * steps])) * 100 / FEATURES
            )
    # At the full budget the curves give back the stored results.
    np.testing.assert_array_equal(curves.success[:, -1], arrays.success)
    np.testing.assert_allclose(curves.distortion[:, -1], arrays.distortion)


def test_budget_curves_count_repeated_features_once() -> None:
    arrays = _synthetic(attacks=1)
    arrays = CampaignArrays(**{
        **arrays.__dict__,
        "iterations": np.array([3]),
        "trajectory_offsets": np.array([0, 6]),
        "trajectory_features": np.array([5, 7, 5, 9, 7, 7]),  # small theta: features repeat
        "trajectory_values": np.ones(6),
        "trajectory_moved": np.ones(6, dtype=bool),
        "features_changed": np.array([3]),
    })  # fmt: skip
    curves = budget_curves(arrays, np.array([0.05, 0.1, 0.15]), FEATURES, features_per_step=2)
    np.testing.assert_allclose(curves.distortion[0], np.array([2, 3, 3]) * 100 / FEATURES)


def test_budget_curves_count_only_the_picks_that_moved() -> None:
    # The paper's search domain: a feature already at its bound is picked and stays.
    arrays = _synthetic(attacks=1)
    arrays = CampaignArrays(**{
        **arrays.__dict__,
        "iterations": np.array([3]),
        "trajectory_offsets": np.array([0, 6]),
        "trajectory_features": np.array([5, 7, 8, 9, 4, 7]),
        "trajectory_values": np.ones(6),
        "trajectory_moved": np.array([False, True, False, False, True, True]),
        "features_changed": np.array([2]),
    })  # fmt: skip
    curves = budget_curves(arrays, np.array([0.05, 0.1, 0.15]), FEATURES, features_per_step=2)
    np.testing.assert_allclose(curves.distortion[0], np.array([1, 1, 2]) * 100 / FEATURES)


def test_hardness_matches_a_trapezoid_by_hand() -> None:
    arrays = _synthetic()
    budgets = np.linspace(0.05, 1.0, 20)
    curves = budget_curves(arrays, budgets, FEATURES, features_per_step=2)
    hardness = hardness_matrix(arrays, curves, CLASSES)
    s, t = int(arrays.source[0]), int(arrays.target[0])
    rows = [i for i in range(len(arrays.source)) if (arrays.source[i], arrays.target[i]) == (s, t)]
    points = []
    for k in range(len(budgets)):
        wins = [curves.distortion[i, k] for i in rows if curves.success[i, k]]
        if wins:
            points.append((len(wins) / len(rows), sum(wins) / len(wins)))
    expected = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(points))
    assert hardness[s, t] == pytest.approx(expected)


def test_robustness() -> None:
    arrays = _synthetic()
    smallest, mean_of_minima = robustness(arrays)
    assert smallest == pytest.approx(arrays.adversarial_distance.min())
    minima: dict[tuple[str, int], float] = {}
    for split, index, distance in zip(
        arrays.split, arrays.index, arrays.adversarial_distance, strict=True
    ):
        key = (str(split), int(index))
        minima[key] = min(minima.get(key, np.inf), distance)
    assert mean_of_minima == pytest.approx(np.mean(list(minima.values())))


def test_adversarial_samples_replay_the_trajectories() -> None:
    arrays = _synthetic()
    rng = np.random.default_rng(3)
    # Repeated features (small theta): the last value written must hold.
    features = arrays.trajectory_features.copy()
    features[1::7] = features[::7][: len(features[1::7])]
    arrays = dataclasses.replace(
        arrays, trajectory_features=features, trajectory_values=rng.random(len(features))
    )
    rows = rng.choice(len(arrays.source), 50, replace=False)
    originals = rng.random((50, 1, 5, 8))
    untouched = originals.copy()
    rebuilt = adversarial_samples(arrays, originals, rows)
    np.testing.assert_array_equal(originals, untouched)
    for sample, row in enumerate(rows):
        expected = originals[sample].copy().reshape(-1)
        for position in range(arrays.trajectory_offsets[row], arrays.trajectory_offsets[row + 1]):
            expected[arrays.trajectory_features[position]] = arrays.trajectory_values[position]
        np.testing.assert_array_equal(rebuilt[sample].reshape(-1), expected)
    with pytest.raises(ValueError, match="rows but"):
        adversarial_samples(arrays, originals[:3], rows)


def test_rank_correlation() -> None:
    first = np.array([[np.nan, 1.0, 2.0], [3.0, np.nan, 4.0], [5.0, 6.0, np.nan]])
    assert rank_correlation(first, first * 10) == pytest.approx(1.0)
    assert rank_correlation(first, -first) == pytest.approx(-1.0)


def test_from_a_real_campaign_table(tiny_dataset: Dataset, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": NUM_CLASSES}).build()
    Campaign.run(tmp_path / "run", CampaignSpec(samples=6, unit_size=3), model, tiny_dataset)
    table = Campaign.open(tmp_path / "run").results()
    arrays = CampaignArrays.from_table(table)
    assert len(arrays.source) == table.num_rows
    curves = budget_curves(arrays, np.array([0.145]), 16 * 16, features_per_step=2)
    np.testing.assert_array_equal(curves.success[:, 0], arrays.success)
    np.testing.assert_allclose(curves.distortion[:, 0], arrays.distortion, rtol=1e-6)


def test_one_rule_for_distortion_buckets() -> None:
    from jsma.errors import ConfigurationError
    from jsma.metrics._core import distortion_bucket
    from jsma.settings import DISTORTION_BUCKETS, PAPER_MAX_DISTORTION

    assert DISTORTION_BUCKETS == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.5)
    assert DISTORTION_BUCKETS[-1] == pytest.approx(PAPER_MAX_DISTORTION * 100)
    values = np.array([0.0, 0.1, 2.0, 2.0001, 14.5, 14.6, -1.0, np.nan])
    assert distortion_bucket(values, DISTORTION_BUCKETS).tolist() == [0, 0, 0, 1, 6, -1, -1, -1]
    for edges in ((0.0,), (0.0, 2.0, 2.0), (4.0, 2.0)):
        with pytest.raises(ConfigurationError, match="bucket edges"):
            distortion_bucket(values, edges)


def test_hardness_is_undefined_where_a_pair_hardly_succeeds() -> None:
    arrays = _synthetic()
    s, t = int(arrays.source[0]), int(arrays.target[0])
    pair = (arrays.source == s) & (arrays.target == t)
    never = CampaignArrays(**{**arrays.__dict__, "success": arrays.success & ~pair})
    budgets = np.linspace(0.05, 1.0, 20)
    hardness = hardness_matrix(never, budget_curves(never, budgets, FEATURES, features_per_step=2),
                               CLASSES)  # fmt: skip
    assert np.isnan(hardness[s, t])  # was 0.0, the easiest colour
    # Left out of the rank correlation, not ranked as the easiest pair.
    distance = np.where(np.isnan(hardness), np.nan, hardness * 2 + 1)
    assert rank_correlation(hardness, distance) == pytest.approx(1.0)
