"""The report for any number of classes: named classes on the matrices' axes, and
beyond `MATRIX_CLASSES` per-class and extreme-pair tables instead of matrices, each
number checked against a plain computation over the stored rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from jsma.campaign import Campaign, CampaignSpec
from jsma.data import Dataset, Split
from jsma.metrics import class_rates
from jsma.metrics._core import pair_counts
from jsma.report import write_report
from jsma.report._figures import heatmap
from jsma.report._sections.campaigns import class_tables
from jsma.report._summary import summarise
from jsma.settings import MATRIX_CLASSES

CLASSES = 100


def _many_classes(count: int = 60) -> Dataset:
    rng = np.random.default_rng(0)
    labels = (np.arange(count) % CLASSES).astype(np.int64)
    features = rng.random((count, 12), dtype=np.float32)
    names = tuple(f"class-{c:03d}" for c in range(CLASSES))
    empty = Split("train", features[:0], labels[:0], 1.0)
    return Dataset(
        name="many", source="made in the test", train=empty,
        validation=Split("validation", features[:0], labels[:0], 1.0),
        test=Split("test", features, labels, 1.0), class_names=names,
    )  # fmt: skip


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset]:
    data = _many_classes()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, CLASSES)).eval()
    directory = tmp_path_factory.mktemp("many") / "c"
    spec = CampaignSpec(splits=("test",), targets="random", unit_size=30, seed=1)
    Campaign.run(directory, spec, model, data)
    return directory, data


def test_many_classes_get_tables_not_matrices(many: tuple[Path, Dataset], tmp_path: Path) -> None:
    directory, data = many
    files = write_report([directory], tmp_path / "report", data)
    html = files.html.read_text()
    assert f"{CLASSES} classes: too many for readable" in html
    assert "The hardest pairs" in html
    assert "class-007" in html
    assert not list((tmp_path / "report" / "figures").glob("0-c-success.*"))
    assert CLASSES > MATRIX_CLASSES


def test_the_tables_are_the_rows_counted(many: tuple[Path, Dataset]) -> None:
    directory, _ = many
    summary = summarise(directory)
    tables = class_tables(summary, pairs=5)
    arrays = Campaign.open(directory).arrays()
    by_source = {line.name: line for line in tables.per_class}
    for c in range(CLASSES):
        attacked = arrays.source == c
        into = arrays.target == c
        if not (attacked.any() or into.any()):
            assert f"class-{c:03d}" not in by_source
            continue
        line = by_source[f"class-{c:03d}"]
        assert line.attacks_from == attacked.sum()
        assert line.attacks_into == into.sum()
        if attacked.any():
            assert line.success_from == pytest.approx(arrays.success[attacked].mean())
        won = attacked & arrays.success
        if won.any():
            assert line.distortion_from == pytest.approx(arrays.distortion[won].mean())
    rates = class_rates(arrays, CLASSES, by="target")
    assert rates.attacks.sum() == len(arrays.target)
    counts = pair_counts(arrays, CLASSES)
    assert counts.sum() == len(arrays.target)
    hardest, easiest = tables.hardest, tables.easiest
    assert len(hardest) == len(easiest) == 5
    worst = min(summary.success[counts > 0])
    best = max(summary.success[counts > 0])
    assert hardest[0].success_rate == worst
    assert easiest[0].success_rate == best


def test_named_classes_label_the_matrices() -> None:
    names = ("cat", "dog", "frog", "ship")
    figure = heatmap(np.eye(4), "success", labels=names)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == list(names)
    assert [t.get_text() for t in axes.get_yticklabels()] == list(names)


def test_an_untargeted_campaign_reports_without_pairs(tmp_path: Path) -> None:
    data = _many_classes(40)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, CLASSES)).eval()
    spec = CampaignSpec(splits=("test",), targets="untargeted", unit_size=20)
    Campaign.run(tmp_path / "c", spec, model, data)
    files = write_report([tmp_path / "c"], tmp_path / "report", data)
    assert "Untargeted attacks (each pushes its sample out of its own class)" in (
        files.html.read_text()
    )
    summary = json.loads(files.summary.read_text())["campaigns"][0]
    arrays = Campaign.open(tmp_path / "c").arrays()
    assert summary["results"][0]["success_rate"] == pytest.approx(arrays.success.mean())
    assert summary["robustness"] is None
    assert all(value is None for row in summary["matrices"]["success"] for value in row)
