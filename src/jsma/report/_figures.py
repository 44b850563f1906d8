"""The report's figures, each a matplotlib `Figure` (no pyplot state)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from jsma.campaign._samples import rebuilt_samples
from jsma.data._dataset import Dataset
from jsma.metrics._core import sample_keys
from jsma.plotting import show_image
from jsma.plotting._plotting import class_matrix
from jsma.report._summary import CampaignSummary
from jsma.settings import MATRIX_CLASSES

__all__: list[str] = []


def heatmap(
    values: np.ndarray,
    title: str,
    *,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    limits: tuple[float, float] | None = None,
    labels: Sequence[str] | None = None,
    undefined: np.ndarray | None = None,
) -> Figure:
    """A (classes x classes) matrix, rows = source class, columns = target class
    (`undefined` cells hatched, see `class_matrix`);
    `limits` fixes the colour scale (to compare panels), else it spans the values;
    `labels` name the classes. The figure grows with the classes (up to
    `MATRIX_CLASSES`), so that each cell keeps room for its number."""
    side = max(4.4, 0.42 * len(values))
    figure = Figure(figsize=(side * 1.18, side), layout="constrained")
    axes = figure.subplots()
    image = class_matrix(
        axes, values, fmt=fmt, cmap=cmap, limits=limits, labels=labels,
        fontsize=7 if len(values) <= 12 else 5.5, undefined=undefined,
    )  # fmt: skip
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.85)
    return figure


def budget_figure(summaries: Sequence[CampaignSummary]) -> Figure:
    """Success rate and mean distortion of successes against the budget Upsilon."""
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    for summary in summaries:
        budgets = summary.curves.budgets * 100
        left.plot(budgets, summary.curves.success_rate * 100, marker=".", label=summary.label)
        right.plot(budgets, summary.curves.mean_distortion_success, marker=".", label=summary.label)
    left.set_xlabel("budget Upsilon (% of features)")
    left.set_ylabel("success rate (%)")
    left.set_ylim(0, 100)
    right.set_xlabel("budget Upsilon (% of features)")
    right.set_ylabel("mean distortion of successes (%)")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.suptitle("What a smaller budget would have given (rebuilt from the trajectories)")
    return figure


def distortion_histogram(summaries: Sequence[CampaignSummary]) -> Figure:
    """Distribution of the distortion of successful attacks (bins: `distortion_bins`)."""
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.subplots()
    bins = distortion_bins(summaries)
    for summary in summaries:
        wins = summary.arrays.distortion[summary.arrays.success]
        axes.hist(
            wins, bins=bins.tolist(), alpha=0.6, label=f"{summary.label}: {len(wins)} successes"
        )
    counted = {s.l0 for s in summaries}
    axes.set_xlabel(
        f"distortion (% of {counted.pop() if len(counted) == 1 else 'features'} changed)"
    )
    axes.set_ylabel("successful attacks")
    axes.legend(fontsize=8)
    axes.set_title("Distribution of distortion")
    return figure


def distortion_bins(summaries: Sequence[CampaignSummary], *, most: int = 200) -> np.ndarray:
    """Histogram edges on the distortion's own grid: with M features, a distortion is
    k/M (in percent, 100 k / M), and a pair attack moves in steps of 2/M. Bins as wide
    as a step (or whole steps, at most `most` bins), with edges half a feature off the
    grid, so that no distortion falls on an edge (no empty bins between spikes)."""
    features = {s.l0_units for s in summaries}
    # In pixels, a step of two features may touch one pixel or two: steps of one.
    per_step = {
        s.manifest.spec.attack.features_per_step if s.l0 == "features" else 1 for s in summaries
    }
    top = max(float(s.arrays.distortion.max(initial=0)) for s in summaries)
    if len(features) != 1:  # campaigns on different inputs share no grid
        return np.linspace(0, top or 1.0, 41)
    unit = 100 / features.pop()  # one feature, in percent
    width = per_step.pop() if len(per_step) == 1 else 1
    count = int(np.ceil(top / unit / width)) + 1
    width *= max(1, int(np.ceil(count / most)))
    return (np.arange(int(np.ceil(top / unit / width)) + 2) * width - 0.5) * unit


def sample_grid(summary: CampaignSummary, dataset: Dataset) -> Figure | None:
    """Like the paper's Figure 1: one sample per source class (rows) crafted towards
    every target class (columns), rebuilt from the stored trajectories.

    None when the campaign has no sample attacked towards every other class.
    """
    arrays = summary.arrays
    classes = dataset.num_classes
    samples = sample_keys(arrays)
    complete = np.bincount(samples)[samples] == classes - 1
    chosen: dict[int, int] = {}  # source class -> first row of a fully attacked sample
    for found in np.flatnonzero(complete & (arrays.target >= 0)):
        chosen.setdefault(int(arrays.source[found]), int(found))
    if not chosen:
        return None
    name = dataset.class_name
    figure = Figure(
        figsize=(max(1.1 * classes, 6.5), 1.1 * len(chosen) + 0.6), layout="constrained"
    )
    axes = figure.subplots(len(chosen), classes, squeeze=False)
    for row, source in enumerate(sorted(chosen)):
        first = chosen[source]
        rows = np.flatnonzero(samples == samples[first])
        attacks = {int(arrays.target[r]): int(r) for r in rows}
        others = [attacks[c] for c in range(classes) if c != source]
        crafted, originals = rebuilt_samples(arrays, np.array(others), dataset)
        images = {c: crafted[i] for i, c in enumerate(c for c in range(classes) if c != source)}
        images[source] = originals[0]
        for column in range(classes):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(name(source))
            if row == 0:
                ax.set_title(name(column), fontsize=9)
            show_image(ax, images[column], dataset.bounds)
            if column != source and not arrays.success[attacks[column]]:
                _mark_failed(ax)
    figure.suptitle(
        f"{_wrapped(summary.label, figure)}\nrows: source class; columns: target class; "
        "✗ (dashed frame): failed",
        fontsize=10,
    )
    return figure


def _mark_failed(ax: Axes) -> None:
    """A failed attack's cell: a frame of black and white dashes and a boxed ✗, so that
    no image can hide them (a red frame passed for red pixels, a black one vanished on
    MNIST's black edges)."""
    for spine in ax.spines.values():
        spine.set_visible(False)
    for colour, style in (("white", "solid"), ("black", (0, (3, 3)))):
        ax.add_patch(
            Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, edgecolor=colour,
                      linestyle=style, linewidth=2.5, clip_on=False)
        )  # fmt: skip
    ax.text(
        0.97, 0.97, "✗", transform=ax.transAxes, ha="right", va="top", fontsize=8,
        bbox={"facecolor": "white", "edgecolor": "black", "pad": 1.0, "linewidth": 0.5},
    )  # fmt: skip


def _wrapped(text: str, figure: Figure) -> str:
    """`text` broken into lines that fit the figure's width (a long campaign name)."""
    characters = max(30, int(figure.get_figwidth() * 9))
    return "\n".join(textwrap.wrap(text, characters)) or text


def untargeted_grid(summary: CampaignSummary, dataset: Dataset) -> Figure | None:
    """An untargeted (or M-JSMA) campaign's samples: for up to `MATRIX_CLASSES` source
    classes, one sample's original and what the attack made of it, with the class it
    is now given. None without an untargeted attack."""
    arrays = summary.arrays
    chosen: dict[int, int] = {}
    for found in np.flatnonzero(arrays.target < 0):
        if len(chosen) >= MATRIX_CLASSES:
            break
        chosen.setdefault(int(arrays.source[found]), int(found))
    if not chosen:
        return None
    rows = np.array([chosen[k] for k in sorted(chosen)])
    crafted, originals = rebuilt_samples(arrays, rows, dataset)
    name = dataset.class_name
    columns = min(len(rows), 5)
    lines = -(-len(rows) // columns)
    figure = Figure(figsize=(2.6 * columns, 1.5 * lines + 0.8), layout="constrained")
    axes = figure.subplots(lines, 2 * columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for number, row in enumerate(rows):
        before, after = axes[number // columns, 2 * (number % columns) : 2 * (number % columns) + 2]
        for ax, image in ((before, originals[number]), (after, crafted[number])):
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            show_image(ax, image, dataset.bounds)
        before.set_title(name(int(arrays.source[row]))[:14], fontsize=8)
        if arrays.prediction is not None:
            after.set_title(f"→ {name(int(arrays.prediction[row]))[:12]}", fontsize=8)
        if not arrays.success[row]:
            _mark_failed(after)
    figure.suptitle(
        f"{_wrapped(summary.label, figure)}\neach pair: the original (its class) and the "
        "attacked sample (the class it is given); ✗ (dashed frame): failed",
        fontsize=10,
    )
    return figure
