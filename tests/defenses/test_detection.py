from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from jsma._records import dumps, load
from jsma.campaign import Campaign
from jsma.data import Dataset
from jsma.defenses import evaluate_detection, neighbour_statistic
from jsma.defenses._detection import (
    StoredDetection,
    joint_undetected_success_rate,
    read_detection,
    roc_curve,
    threshold_at,
    write_detection,
)
from jsma.defenses._figures import detection_figure
from jsma.errors import JSMAError
from jsma.metrics import CampaignArrays
from jsma.settings import DISTORTION_BUCKETS
from tests.conftest import increasing_and_decreasing


def _statistic_by_loops(image: np.ndarray) -> float:
    """image: (..., height, width); every channel's neighbouring pairs, one by one."""
    planes = image.reshape(-1, *image.shape[-2:])
    total = 0.0
    for plane in planes:
        height, width = plane.shape
        for row in range(height):
            for column in range(width):
                if column + 1 < width:
                    total += (plane[row, column] - plane[row, column + 1]) ** 2
                if row + 1 < height:
                    total += (plane[row, column] - plane[row + 1, column]) ** 2
    return total


@pytest.mark.parametrize("shape", [(5, 1, 6, 7), (3, 3, 4, 4), (4, 9, 2)])
def test_neighbour_statistic_matches_loops(shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(0).random(shape)
    expected = [_statistic_by_loops(image) for image in images]
    np.testing.assert_allclose(neighbour_statistic(images), expected, rtol=1e-12)
    np.testing.assert_allclose(
        neighbour_statistic(torch.from_numpy(images).float()), expected, rtol=1e-5
    )
    assert neighbour_statistic(np.full((2, 1, 4, 4), 0.7)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="height, width"):
        neighbour_statistic(np.zeros((4, 9)))


def test_threshold_at_calibrates_the_false_positive_rate() -> None:
    benign = np.random.default_rng(1).normal(size=1000)
    for rate in (0.01, 0.05, 0.2):
        threshold = threshold_at(benign, rate)
        assert (benign > threshold).mean() <= rate
        # The smallest such threshold: any lower benign score would flag too many.
        lower = benign[benign < threshold].max()
        assert (benign > lower).mean() > rate
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="false_positive_rate"):
            threshold_at(benign, bad)


def test_roc_auc_is_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(2)
    benign = rng.integers(0, 30, 400).astype(float)  # many ties on purpose
    adversarial = rng.integers(10, 45, 300).astype(float)
    curve = roc_curve(benign, adversarial)
    u = stats.mannwhitneyu(adversarial, benign).statistic
    assert curve.auc == pytest.approx(u / (len(benign) * len(adversarial)))
    assert (curve.false_positive_rate[0], curve.true_positive_rate[0]) == (0, 0)
    assert (curve.false_positive_rate[-1], curve.true_positive_rate[-1]) == (1, 1)
    assert (np.diff(curve.false_positive_rate) >= 0).all()
    assert (np.diff(curve.true_positive_rate) >= 0).all()
    for fpr, tpr, threshold in zip(
        curve.false_positive_rate[1:], curve.true_positive_rate[1:], curve.thresholds[1:],
        strict=True,
    ):  # fmt: skip
        assert fpr == (benign >= threshold).mean()
        assert tpr == (adversarial >= threshold).mean()


@pytest.fixture
def campaigns(tiny_dataset: Dataset, tmp_path: Path) -> list[Path]:
    return increasing_and_decreasing(tiny_dataset, tmp_path, samples=10, unit_size=5)


def test_evaluate_detection_on_a_campaign(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    result = evaluate_detection(campaigns[0], tiny_dataset, false_positive_rates=(0.05, 0.25))
    arrays = CampaignArrays.from_table(Campaign.open(campaigns[0]).results())
    images, _ = tiny_dataset.test.tensors()
    # Positives: each successful attack's sample, rebuilt here by hand.
    expected = []
    for row in np.flatnonzero(arrays.success):
        image = images[arrays.index[row]].numpy().astype(np.float64).reshape(-1)
        start, stop = arrays.trajectory_offsets[row : row + 2]
        image[arrays.trajectory_features[start:stop]] = arrays.trajectory_values[start:stop]
        expected.append(_statistic_by_loops(image.reshape(16, 16)))
    np.testing.assert_allclose(result.adversarial, expected, rtol=1e-9)
    assert len(result.benign) == 10  # each attacked sample once
    assert len(result.calibration) == len(tiny_dataset.validation)
    assert sum(result.bucket_counts) == len(expected)
    assert result.direction == "increasing"
    for point, rate in zip(result.points, (0.05, 0.25), strict=True):
        assert point.threshold == threshold_at(result.calibration, rate)
        flagged = result.adversarial > point.threshold
        assert point.detection_rate == flagged.mean()
        assert point.undetected == (~flagged).sum()
        assert point.undetected_success_rate == (~flagged).sum() / len(arrays.success)
        assert point.test_false_positive_rate == (result.benign > point.threshold).mean()
        edges = np.array(DISTORTION_BUCKETS)
        for bucket, rate_in_bucket in enumerate(point.detection_rate_by_bucket):
            low, high = edges[bucket], edges[bucket + 1]
            distortion = result.adversarial_distortion
            inside = ((distortion > low) | ((bucket == 0) & (distortion == low))) & (
                distortion <= high
            )
            if inside.any():
                assert rate_in_bucket == pytest.approx(flagged[inside].mean())
            else:
                assert np.isnan(rate_in_bucket)
    summary = result.summary()
    assert summary.auc == result.auc
    assert summary.points == result.points
    stored = StoredDetection((summary,), ())  # NaN != NaN: compared as written
    assert dumps(load(StoredDetection, json.loads(dumps(stored)))) == dumps(stored)
    decreasing = evaluate_detection(campaigns[1], tiny_dataset, false_positive_rates=(0.05, 0.25))
    figure = detection_figure([result.summary(), decreasing.summary()])
    assert len(figure.axes) == 3

    # An attacker holding both directions' samples keeps whichever evades.
    threshold = result.points[1].threshold
    evading = set()
    for campaign, detected in zip(campaigns, (result, decreasing), strict=True):
        rows = CampaignArrays.from_table(Campaign.open(campaign).results())
        successful = np.flatnonzero(rows.success)
        for position, row in enumerate(successful):
            if detected.adversarial[position] <= threshold:
                evading.add((int(rows.index[row]), int(rows.target[row])))
    rate, attacks = joint_undetected_success_rate([result, decreasing], threshold)
    assert attacks == len(arrays.success)  # both campaigns made the same attacks
    assert rate == len(evading) / attacks
    assert rate >= max(p.undetected_success_rate for p in (result.points[1], decreasing.points[1]))
    path = write_detection(tmp_path / "d", [result, decreasing])
    stored = json.loads(path.read_text())
    assert stored["joint"][1]["undetected_success_rate"] == rate

    # The typed reader: what was written, and damaged files naming the field.
    read = read_detection(tmp_path / "d")
    assert read is not None
    assert [r.direction for r in read.results] == ["increasing", "decreasing"]
    assert read.results[0].auc == result.auc
    assert read.results[0].points[1].threshold == result.points[1].threshold
    assert read.joint[1].undetected_success_rate == rate
    for damage, message in [
        (lambda d: d["results"][0].pop("auc"), r"results\[0\]\.auc: missing"),
        (lambda d: d["results"][1].update(direction="up"), r"results\[1\]\.direction: expected"),
        (lambda d: d["joint"][0].update(attacks="9"), r"joint\[0\]\.attacks: expected a whole"),
        (lambda d: d.update(format=7), "format 7, written by a newer jsma"),
        (lambda d: d.update(kind="toy"), "a 'toy' record, not a detection record"),
    ]:
        damaged = json.loads(json.dumps(stored))
        damage(damaged)
        path.write_text(json.dumps(damaged))
        with pytest.raises(
            JSMAError, match=r"detection\.json: not a valid detection record \(.*" + message
        ):
            read_detection(tmp_path / "d")
    assert read_detection(tmp_path / "nothing") is None


def test_evaluate_detection_errors(tiny_dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(JSMAError, match="no campaign here"):
        evaluate_detection(tmp_path, tiny_dataset)


def test_the_detection_figure_plots_the_stored_summaries() -> None:
    from jsma.defenses import read_detection

    stored = read_detection(Path(__file__).parents[1] / "fixtures" / "v0.1.0" / "detection")
    assert stored is not None
    figure = detection_figure(list(stored.results))
    roc, _, buckets = figure.axes
    curves = [line for line in roc.lines if line.get_linestyle() == "-"]
    bars = [c for c in buckets.containers if hasattr(c, "patches")]
    for result, curve, container in zip(stored.results, curves, bars, strict=True):
        assert curve.get_xdata() == pytest.approx(result.roc_false_positive_rate)
        assert curve.get_ydata() == pytest.approx(result.roc_true_positive_rate)
        heights = [patch.get_height() for patch in container]
        expected = [v * 100 for v in result.points[-1].detection_rate_by_bucket]
        assert heights == pytest.approx(expected, nan_ok=True)


def test_the_comparison_figure_plots_each_matrix_on_one_scale() -> None:
    from jsma.defenses._figures import comparison_figure

    rng = np.random.default_rng(0)
    matrices = [(f"model {i}", rng.random((4, 4))) for i in range(4)]
    figure = comparison_figure(matrices)
    panels = [axes for axes in figure.axes if axes.get_visible() and axes.images]
    assert [axes.get_title() for axes in panels] == [name for name, _ in matrices]
    for axes, (_, values) in zip(panels, matrices, strict=True):
        (image,) = axes.images
        assert image.get_clim() == (0.0, 100.0)
        assert np.asarray(image.get_array()) == pytest.approx(values * 100)


@pytest.mark.slow
def test_an_untargeted_campaign_beside_targeted_ones_has_no_joint_figure(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    from jsma.defenses._detection import joint_records
    from jsma.defenses._figures import campaign_labels
    from tests.conftest import maximal_campaign

    untargeted = maximal_campaign(tiny_dataset, tmp_path / "maximal")
    results = [
        evaluate_detection(path, tiny_dataset, false_positive_rates=(0.05,))
        for path in (campaigns[0], untargeted)
    ]
    assert joint_records(results) == []  # was "nan% of 0 attacks"
    assert len(joint_records([results[0], results[0]])) == 1
    again = dataclasses.replace(results[0].summary(), campaign="elsewhere/increasing-2")
    labels = campaign_labels([results[0].summary(), again, results[1].summary()])
    assert labels == ["increasing, increasing", "increasing-2, increasing", "both"]
