"""The paper's toy example (Section III): a tiny network learns the Boolean AND.

A 2-2-1 sigmoid network is trained on points of the unit square labelled
AND(x1 > 0.5, x2 > 0.5). Its output is flat almost everywhere and steep in a
narrow band; the forward derivative dF/dx is large exactly in that band, so it
shows where a small change of the input flips the output, and which feature
to change. `craft_toy` follows it from an input mapped to 0 until F(X) > 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from jsma._records import read_record, write_record
from jsma.attacks import forward_derivative
from jsma.errors import ConfigurationError, JSMAError
from jsma.models._networks import AndNet
from jsma.plotting import save_figure

__all__ = [
    "ToyRecord",
    "craft_toy",
    "read_toy",
    "run_toy",
    "toy_figure",
    "toy_surfaces",
    "train_and_network",
]


def and_labels(points: torch.Tensor) -> torch.Tensor:
    """AND of the two inputs read as Booleans (a coordinate above 0.5 is true)."""
    return ((points[:, 0] > 0.5) & (points[:, 1] > 0.5)).to(points.dtype)


@dataclass(frozen=True)
class ToyModel:
    """The trained AND network and how well it learned AND."""

    model: AndNet
    corner_outputs: tuple[float, float, float, float]  # F at (0,0), (0,1), (1,0), (1,1)
    grid_accuracy: float  # on a 101 x 101 grid, points within 0.05 of the boundary left out
    loss: float


def train_and_network(
    *, seed: int = 0, samples: int = 1000, steps: int = 3000, learning_rate: float = 0.05
) -> ToyModel:
    """Train `AndNet` on `samples` uniform points of [0, 1]^2, full batch, seeded.

    Adam on the binary cross-entropy; about a second on a CPU.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AndNet()
    points = torch.rand(samples, 2, generator=generator)
    labels = and_labels(points)[:, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy(model(points), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        corners = model(torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))[:, 0]
        axis = torch.linspace(0, 1, 101)
        grid = torch.cartesian_prod(axis, axis)
        clear = ((grid - 0.5).abs() > 0.05).all(dim=1)
        predicted = model(grid[clear])[:, 0] > 0.5
        accuracy = (predicted == and_labels(grid[clear]).bool()).float().mean().item()
    c00, c01, c10, c11 = (float(v) for v in corners)
    return ToyModel(model, (c00, c01, c10, c11), accuracy, loss.item())


@dataclass(frozen=True)
class ToySurfaces:
    """F and its forward derivative on a square grid; arrays indexed [x2, x1]."""

    axis: np.ndarray
    output: np.ndarray
    derivative_x1: np.ndarray
    derivative_x2: np.ndarray


def toy_surfaces(model: nn.Module, resolution: int = 101) -> ToySurfaces:
    """The network's output and forward derivative over the unit square."""
    axis = torch.linspace(0, 1, resolution)
    x2, x1 = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([x1.flatten(), x2.flatten()], dim=1)
    with torch.no_grad():
        output = model(points)[:, 0]
    jacobian = forward_derivative(model, points)[:, 0, :]  # (points, 2): dF/dx1, dF/dx2
    shape = (resolution, resolution)
    return ToySurfaces(
        axis.numpy(),
        output.reshape(shape).numpy(),
        jacobian[:, 0].reshape(shape).numpy(),
        jacobian[:, 1].reshape(shape).numpy(),
    )


@dataclass(frozen=True)
class ToyCrafting:
    """The path of a crafted input: points[0] is the start, outputs[k] is F(points[k])."""

    points: np.ndarray  # (steps + 1, 2)
    outputs: np.ndarray  # (steps + 1,)
    features: tuple[int, ...]  # the feature changed at each step (0: x1, 1: x2)

    @property
    def flipped(self) -> bool:
        return bool(self.outputs[-1] > 0.5)


def craft_toy(
    model: nn.Module,
    start: tuple[float, float] = (0.3, 0.4),
    *,
    theta: float = 0.05,
    max_steps: int = 40,
) -> ToyCrafting:
    """Push `start` towards output 1 with the forward derivative, one feature at a time.

    At each step the feature with the largest dF/dx_i among those below 1 grows
    by `theta` (the single-output form of the saliency map: the target is the
    only output); it stops once F > 0.5, or when no feature can raise F.
    """
    if not all(0 <= value <= 1 for value in start):
        raise ConfigurationError(f"start must lie in the unit square [0, 1]^2, got {tuple(start)}")
    if not theta > 0:
        raise ConfigurationError(
            f"theta must be positive (the crafting raises inputs), got {theta}"
        )
    point = torch.tensor([start], dtype=torch.float32)
    points = [point[0].clone()]
    features: list[int] = []
    with torch.no_grad():
        outputs = [float(model(point)[0, 0])]
    while outputs[-1] <= 0.5 and len(features) < max_steps:
        gradient = forward_derivative(model, point)[0, 0]
        gradient[point[0] >= 1] = -torch.inf  # at the bound: cannot grow further
        feature = int(gradient.argmax())
        if gradient[feature] <= 0:
            break
        point[0, feature] = min(1.0, float(point[0, feature]) + theta)
        features.append(feature)
        points.append(point[0].clone())
        with torch.no_grad():
            outputs.append(float(model(point)[0, 0]))
    return ToyCrafting(torch.stack(points).numpy(), np.array(outputs), tuple(features))


def toy_figure(surfaces: ToySurfaces, crafting: ToyCrafting | None = None) -> Figure:
    """The learned output and the two forward derivatives over the square, with the
    crafted path drawn on each panel."""
    figure = Figure(figsize=(13, 4), layout="constrained")
    panels = figure.subplots(1, 3)
    extent = (0.0, 1.0, 0.0, 1.0)
    for axes, values, title, cmap in (
        (panels[0], surfaces.output, "learned output F(X)", "viridis"),
        (panels[1], surfaces.derivative_x1, "forward derivative dF/dx1", "magma"),
        (panels[2], surfaces.derivative_x2, "forward derivative dF/dx2", "magma"),
    ):
        image = axes.imshow(values, origin="lower", extent=extent, cmap=cmap)
        figure.colorbar(image, ax=axes, shrink=0.85)
        axes.set_title(title)
        axes.set_xlabel("x1")
        axes.set_ylabel("x2")
        if crafting is not None:
            axes.plot(crafting.points[:, 0], crafting.points[:, 1], "w.-", markersize=4)
            axes.plot(*crafting.points[0], "wo", markersize=7)
            axes.plot(*crafting.points[-1], "r*", markersize=11)
    if crafting is not None:
        figure.suptitle(
            f"AND network: crafted from ({crafting.points[0, 0]:.2f}, "
            f"{crafting.points[0, 1]:.2f}), F = {crafting.outputs[0]:.3f}, to "
            f"({crafting.points[-1, 0]:.2f}, {crafting.points[-1, 1]:.2f}), "
            f"F = {crafting.outputs[-1]:.3f} in {len(crafting.features)} steps"
        )
    return figure


TOY_FILE = "toy.json"
TOY_FIGURE = "toy-and.png"


@dataclass(frozen=True)
class ToyRecord:
    """What `run_toy` stores: the network's fit, the crafted path, and the settings."""

    KIND: ClassVar[str] = "toy"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (no header, the path's parts flat)

    seed: int
    theta: float
    corner_outputs: tuple[float, float, float, float]
    grid_accuracy: float
    crafting: ToyCrafting

    @classmethod
    def upgraded(cls, data: dict[str, Any], format: int) -> dict[str, Any]:
        data = dict(data)
        parts = {new: data.pop(old, None) for old, new in _FORMAT_0_CRAFTING.items()}
        return {**data, "crafting": parts}


_FORMAT_0_CRAFTING = {
    "crafted_path": "points",
    "crafted_outputs": "outputs",
    "crafted_features": "features",
}


def run_toy(
    directory: Path,
    *,
    seed: int = 0,
    start: tuple[float, float] = (0.3, 0.4),
    theta: float = 0.05,
) -> ToyRecord:
    """Train the AND network, craft from `start`, and store `toy.json` and the figure
    `toy-and.png` in `directory` (what `jsma report --toy DIRECTORY` shows)."""
    toy = train_and_network(seed=seed)
    crafting = craft_toy(toy.model, start, theta=theta)
    record = ToyRecord(seed, theta, toy.corner_outputs, toy.grid_accuracy, crafting)
    save_figure(toy_figure(toy_surfaces(toy.model), crafting), directory / TOY_FIGURE)
    write_record(directory / TOY_FILE, record)
    return record


def read_toy(directory: Path) -> ToyRecord:
    """The record `run_toy` stored in `directory`; a `JSMAError` naming the file if it is
    absent or damaged."""
    record = read_record(
        ToyRecord,
        directory / TOY_FILE,
        missing="no toy results here (run `jsma toy --out DIR` first)",
    )
    if record.crafting.points.shape != (len(record.crafting.outputs), 2):
        raise JSMAError(
            f"{directory / TOY_FILE}: not a valid toy record (the crafted path is not one "
            "(x1, x2) point per output)"
        )
    return record
