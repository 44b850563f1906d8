"""Plotting, in one place: the shared helpers (images, class matrices, PNG output) and
the figures of single attacks. Everything draws on matplotlib `Figure` objects, never
pyplot's global state, so figures can be made from any thread or process."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from jsma._io import atomic_write
from jsma.attacks import AttackResult

__all__ = ["attack_figure", "save_figure", "show_image", "targets_figure"]


def show_image(axes: Axes, image: torch.Tensor | np.ndarray, bounds: tuple[float, float]) -> None:
    """Draw a (channels, height, width) image: grayscale for one channel, RGB for three."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
    if array.shape[0] == 1:
        axes.imshow(array[0], cmap="gray", vmin=bounds[0], vmax=bounds[1])
    else:
        rgb = np.clip((array.transpose(1, 2, 0) - bounds[0]) / (bounds[1] - bounds[0]), 0, 1)
        axes.imshow(rgb)
    axes.set_xticks([])
    axes.set_yticks([])


def attack_figure(
    original: torch.Tensor,
    result: AttackResult,
    index: int = 0,
    *,
    original_prediction: tuple[int, float] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Original, adversarial and their difference side by side, with predictions.

    original: (batch, channels, height, width), the batch that `result` attacked.
    """
    sample = result[index]
    name = (lambda k: class_names[k]) if class_names else str
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    left, middle, right = figure.subplots(1, 3)
    show_image(left, original[index], bounds)
    # Two short lines a panel: long class names wrap instead of running into the next.
    title = f"original\nclass {_short(name(sample.source))}"
    if original_prediction is not None:
        predicted = f"{_short(name(original_prediction[0]))} ({original_prediction[1]:.0%})"
        title = f"original\npredicted {predicted}"
    left.set_title(title, fontsize=10)
    show_image(middle, sample.adversarial, bounds)
    middle.set_title(
        f"adversarial\npredicted {_short(name(sample.prediction))} ({sample.probability:.0%})",
        fontsize=10,
    )
    difference = (sample.adversarial - original[index]).detach().cpu().sum(dim=0).numpy()
    limit = float(np.abs(difference).max()) or 1.0
    shown = right.imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit)
    right.set_xticks([])
    right.set_yticks([])
    right.set_title(
        f"difference\n{sample.features_changed} features ({sample.distortion:.2f}%)", fontsize=10
    )
    figure.colorbar(shown, ax=right, shrink=0.8)
    target = "untargeted" if sample.target is None else f"target {_short(name(sample.target))}"
    outcome = "success" if sample.success else f"failure ({sample.stop_reason.name.lower()})"
    figure.suptitle(f"JSMA, {target}: {outcome} after {sample.iterations} iterations")
    return figure


def _short(text: str, most: int = 24) -> str:
    """`text`, cut to `most` characters with an ellipsis: titles stay inside their panel."""
    return text if len(text) <= most else text[: most - 1] + "…"


def targets_figure(
    original: torch.Tensor,
    result: AttackResult,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
) -> Figure:
    """One sample crafted towards every class (the paper's Figure 1, one row).

    original: (channels, height, width); result: the attacks of that sample
    towards each other class. The original stands in its own class's column.
    Classes by `class_names` when given, else by number.
    """
    classes = len(result) + 1
    source = int(result.sources[0])

    def name(k: int) -> str:
        return _short(class_names[k], 12) if class_names else str(k)

    figure = Figure(figsize=(max(6.0, 1.6 * classes), 2.6), layout="constrained")
    axes = figure.subplots(1, classes)
    by_target = (
        {int(t): i for i, t in enumerate(result.targets.tolist())}
        if result.targets is not None
        else {}
    )
    for column, ax in enumerate(axes):
        if column == source:
            show_image(ax, original, bounds)
            ax.set_title(f"original\n{name(source)}", fontsize=9)
            continue
        sample = result[by_target[column]]
        show_image(ax, sample.adversarial, bounds)
        mark = "" if sample.success else " ✗"
        predicted = name(sample.prediction)
        ax.set_title(f"→{name(column)}: {predicted}{mark}\n{sample.distortion:.1f}%", fontsize=9)
    figure.suptitle(
        f"a sample of class {name(source)} crafted towards every class\n"
        "(titles: target: prediction, ✗ failed; L0)",
        fontsize=10,
    )
    return figure


def class_matrix(
    axes: Axes,
    values: np.ndarray,
    *,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    limits: tuple[float, float] | None = None,
    fontsize: float = 7,
    labels: Sequence[str] | None = None,
    undefined: np.ndarray | None = None,
) -> AxesImage:
    """A (classes x classes) matrix (rows: source class, columns: target class), each
    cell labelled with its value; NaN cells are left blank, or hatched and marked n/a
    where `undefined` (a boolean matrix) is set: a measure that does not exist there,
    not a missing pair; `labels` name the classes (default: their numbers)."""
    masked = np.ma.masked_invalid(values)
    if limits is None:
        limits = (float(masked.min()), float(masked.max())) if masked.count() else (0.0, 1.0)
    low, high = limits
    image = axes.imshow(masked, cmap=cmap, vmin=low, vmax=high)
    classes = len(values)
    axes.set_xticks(range(classes))
    axes.set_yticks(range(classes))
    if labels is not None:
        long = max(map(len, labels), default=0) > 2
        axes.set_xticklabels(labels, rotation=45 if long else 0, ha="right" if long else "center")
        axes.set_yticklabels(labels)
    axes.set_xlabel("target class")
    axes.set_ylabel("source class")
    if undefined is not None:
        for row, column in zip(*np.nonzero(undefined), strict=True):
            axes.add_patch(
                Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, hatch="////",
                          edgecolor="grey", linewidth=0)
            )  # fmt: skip
            axes.text(column, row, "n/a", ha="center", va="center", fontsize=fontsize * 0.8)
    for (row, column), value in np.ndenumerate(values):
        if np.isfinite(value):
            bright = high > low and (value - low) / (high - low) > 0.6
            axes.text(
                column, row, fmt.format(value), ha="center", va="center", fontsize=fontsize,
                color="black" if bright else "white",
            )  # fmt: skip
    return image


def figure_png(figure: Figure, *, dpi: int = 120) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_figure(figure: Figure, path: Path, *, dpi: int = 120) -> Path:
    """Write a figure as PNG atomically and return the path."""
    data = figure_png(figure, dpi=dpi)
    with atomic_write(path) as handle:
        handle.write(data)
    return path
