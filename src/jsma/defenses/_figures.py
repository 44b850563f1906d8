"""Figures of the defense evaluations, drawn from their JSON records (no pyplot state)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from jsma.attacks import JSMA
from jsma.defenses._detection import DetectionSummary
from jsma.gan import generate
from jsma.gan._networks import Generator
from jsma.plotting import show_image
from jsma.plotting._plotting import class_matrix

__all__: list[str] = []


def _shares(counts: Sequence[int]) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    return values * 100 / max(1.0, values.sum())


def campaign_labels(results: Sequence[DetectionSummary]) -> list[str]:
    """Each campaign's direction, with its directory's name when two share a direction."""
    directions = [result.direction for result in results]
    return [
        f"{Path(result.campaign).name}, {result.direction}"
        if directions.count(result.direction) > 1
        else result.direction
        for result in results
    ]


def detection_figure(results: Sequence[DetectionSummary]) -> Figure:
    """ROC curves, the statistic's distribution and the detection rate per
    distortion bucket, one colour per campaign."""
    figure = Figure(figsize=(14, 4), layout="constrained")
    roc, histogram, buckets = figure.subplots(1, 3)
    width = 0.8 / max(1, len(results))
    labels = campaign_labels(results)
    for number, result in enumerate(results):
        name = f"{labels[number]} (AUC {result.auc:.3f})"
        line = roc.plot(result.roc_false_positive_rate, result.roc_true_positive_rate, label=name)[
            0
        ]
        colour = line.get_color()
        points = result.points
        roc.plot(
            [p.test_false_positive_rate for p in points],
            [p.detection_rate for p in points],
            "o",
            color=colour,
        )
        edges = np.array(result.histogram_edges)
        if number == 0:
            histogram.stairs(
                _shares(result.histogram_benign), edges, color="black", label="benign",
                linewidth=1.5,
            )  # fmt: skip
        histogram.stairs(
            _shares(result.histogram_adversarial), edges, color=colour, label=labels[number]
        )
        point = points[-1]
        rates = [v * 100 for v in point.detection_rate_by_bucket]  # NaN: an empty bucket
        bucket_edges = result.distortion_buckets
        positions = np.arange(len(rates)) + (number - (len(results) - 1) / 2) * width
        buckets.bar(
            positions,
            rates,
            width=width,
            color=colour,
            label=f"{labels[number]} at {point.calibrated_false_positive_rate:.0%} FPR",
        )
        labels = [f"{a:g}-{b:g}" for a, b in itertools.pairwise(bucket_edges)]
        buckets.set_xticks(range(len(rates)), labels, fontsize=8)
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set_xlabel("false-positive rate (benign test images)")
    roc.set_ylabel("detection rate (successful adversarial samples)")
    roc.set_title("ROC (dots: thresholds calibrated at 1% and 5%)")
    roc.legend(fontsize=8)
    histogram.set_xlabel("sum of squared neighbour differences")
    histogram.set_ylabel("share of the images (%)")
    histogram.set_title("The statistic")
    histogram.legend(fontsize=8)
    buckets.set_xlabel("distortion of the adversarial sample (%)")
    buckets.set_ylabel("detected (%)")
    buckets.set_ylim(0, 100)
    buckets.set_title("Detection rate per distortion bucket")
    buckets.legend(fontsize=8)
    for axes in (roc, histogram, buckets):
        axes.grid(alpha=0.3)
    return figure


def comparison_figure(matrices: Sequence[tuple[str, np.ndarray]]) -> Figure:
    """Success rate per (source, target) of several models, side by side, one scale."""
    columns = min(3, len(matrices))
    rows = -(-len(matrices) // columns)
    figure = Figure(figsize=(4.3 * columns + 0.8, 3.9 * rows), layout="constrained")
    panels = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).flatten()
    image = None
    for axes, (title, values) in zip(panels, matrices, strict=False):
        image = class_matrix(axes, values * 100, fmt="{:.0f}", limits=(0.0, 100.0), fontsize=6)
        axes.set_title(title, fontsize=10)
    for axes in panels[len(matrices) :]:
        axes.set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=list(panels[: len(matrices)]), shrink=0.8, label="success (%)")
    return figure


def generated_adversarial_figure(
    generator: Generator, model: nn.Module, attack: JSMA, *, seed: int = 0
) -> Figure:
    """One generated digit per class (top) and its JSMA version against `model` towards
    the next class (bottom): "adversarial samples generated using DCGAN"."""
    classes = generator.spec.num_classes
    asked = torch.arange(classes)
    digits = generate(generator, asked, seed=seed)
    targets = (asked + 1) % classes
    result = attack(model, digits, targets, sources=asked)
    figure = Figure(figsize=(0.9 * classes, 2.4), layout="constrained")
    grid = figure.subplots(2, classes, squeeze=False)
    for column in range(classes):
        show_image(grid[0, column], digits[column], generator.spec.bounds)
        grid[0, column].set_title(f"asked {column}", fontsize=8)
        show_image(grid[1, column], result.adversarial[column], generator.spec.bounds)
        mark = "" if bool(result.success[column]) else " ✗"
        grid[1, column].set_title(
            f"→{int(targets[column])}: {int(result.predictions[column])}{mark}", fontsize=8
        )
    figure.suptitle("adversarial samples generated using DCGAN (bottom: target: prediction)")
    return figure
