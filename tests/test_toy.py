from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.cli import main
from jsma.errors import JSMAError
from jsma.toy import craft_toy, read_toy, toy_figure, toy_surfaces, train_and_network
from jsma.toy._toy import TOY_FIGURE, TOY_FILE, and_labels


@pytest.fixture(scope="module")
def toy():  # type: ignore[no-untyped-def]
    return train_and_network(seed=0, steps=1500)


def test_the_network_learns_and(toy) -> None:  # type: ignore[no-untyped-def]
    low, mid_a, mid_b, high = toy.corner_outputs
    assert max(low, mid_a, mid_b) < 0.05
    assert high > 0.95
    assert toy.grid_accuracy >= 0.98
    again = train_and_network(seed=0, steps=1500)
    assert again.corner_outputs == toy.corner_outputs  # seeded


def test_and_labels() -> None:
    points = torch.tensor([[0.2, 0.9], [0.6, 0.7], [0.9, 0.1], [0.51, 0.51]])
    assert and_labels(points).tolist() == [0.0, 1.0, 0.0, 1.0]


def test_surfaces_are_the_forward_derivative(toy) -> None:  # type: ignore[no-untyped-def]
    surfaces = toy_surfaces(toy.model, resolution=21)
    assert surfaces.output.shape == surfaces.derivative_x1.shape == (21, 21)
    step = 1e-3
    for row, column in [(5, 10), (10, 10), (15, 3), (12, 12)]:
        x1, x2 = float(surfaces.axis[column]), float(surfaces.axis[row])
        with torch.no_grad():
            f = lambda a, b: float(toy.model(torch.tensor([[a, b]], dtype=torch.float64).float()))  # noqa: E731
            d1 = (f(x1 + step, x2) - f(x1 - step, x2)) / (2 * step)
            d2 = (f(x1, x2 + step) - f(x1, x2 - step)) / (2 * step)
        assert surfaces.derivative_x1[row, column] == pytest.approx(d1, rel=0.05, abs=1e-3)
        assert surfaces.derivative_x2[row, column] == pytest.approx(d2, rel=0.05, abs=1e-3)
    # Steep only near the boundary: far from it the derivative is tiny.
    axis = surfaces.axis
    far = (np.abs(axis[:, None] - 0.5) > 0.2) & (np.abs(axis[None, :] - 0.5) > 0.2)
    assert np.abs(surfaces.derivative_x2[far]).max() < 0.05 * surfaces.derivative_x2.max()


def test_crafting_follows_the_largest_derivative(toy) -> None:  # type: ignore[no-untyped-def]
    crafting = craft_toy(toy.model, (0.3, 0.4), theta=0.05)
    assert crafting.outputs[0] < 0.5
    assert crafting.flipped
    for point, following, feature in zip(
        crafting.points[:-1], crafting.points[1:], crafting.features, strict=True
    ):
        x = torch.tensor(point[None], requires_grad=True)
        (gradient,) = torch.autograd.grad(toy.model(x).sum(), x)
        assert feature == int(gradient[0].argmax())
        moved = following - point
        assert moved[feature] == pytest.approx(0.05, abs=1e-6)
        assert moved[1 - feature] == 0
    with pytest.raises(ValueError, match="unit square"):
        craft_toy(toy.model, (1.5, 0.2))
    figure = toy_figure(toy_surfaces(toy.model, resolution=11), crafting)
    assert len(figure.axes) == 6  # three panels and their colour bars


def test_toy_cli_stores_what_the_report_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "toy"
    assert main(["toy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "F(1, 1) = 0.99" in printed
    assert "output flipped to 1" in printed
    assert (out / TOY_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = read_toy(out)
    assert record.corner_outputs[3] > 0.99
    assert record.crafting.flipped
    assert f"F(1, 1) = {record.corner_outputs[3]:.4f}" in printed
    (out / TOY_FILE).write_text('{"seed": 0}')
    with pytest.raises(JSMAError, match=r"toy\.json: not a valid toy record \(theta: missing"):
        read_toy(out)
    with pytest.raises(JSMAError, match="run `jsma toy --out DIR` first"):
        read_toy(tmp_path)
