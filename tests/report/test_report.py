from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from jsma.campaign import AttackSettings, CampaignSpec, load_results, run_campaign
from jsma.cli import main
from jsma.data import Dataset
from jsma.metrics import CampaignArrays, results_by_split, success_matrix
from jsma.models import ModelSpec
from jsma.report import write_report
from tests.conftest import NUM_CLASSES


@pytest.fixture
def campaigns(tiny_dataset: Dataset, tmp_path: Path) -> list[Path]:
    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": NUM_CLASSES}).build()
    directories = []
    for name, theta in (("increasing", 1.0), ("decreasing", -1.0)):
        spec = CampaignSpec(samples=8, unit_size=4, attack=AttackSettings(theta=theta))
        run_campaign(tmp_path / name, spec, model, tiny_dataset)
        directories.append(tmp_path / name)
    return directories


def _strict(value: str) -> object:
    raise ValueError(f"not strict JSON: {value}")


def test_report_files(campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path) -> None:
    files = write_report(campaigns, tmp_path / "report", tiny_dataset)
    page = files.html.read_text()
    # Self-contained: every figure is embedded, nothing is fetched.
    images = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(images) == len(files.figures) == 2 * 5 + 2
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", page)
    for path in files.figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "97.10%" in page  # the paper's numbers stand beside ours

    summary = json.loads(files.summary.read_text(), parse_constant=_strict)
    assert [entry["variant"] for entry in summary] == ["increasing", "decreasing"]
    for entry, directory in zip(summary, campaigns, strict=True):
        arrays = CampaignArrays.from_table(load_results(directory))
        (line,) = results_by_split(arrays)
        assert entry["results"][0]["success_rate"] == pytest.approx(line.success_rate)
        expected = success_matrix(arrays, NUM_CLASSES)
        for row, values in zip(entry["matrices"]["success"], expected, strict=True):
            assert row == [None if v != v else pytest.approx(v) for v in values]
        assert len(entry["success_rate_by_budget"]) == len(entry["budgets"])


def test_report_without_data(campaigns: list[Path], tmp_path: Path) -> None:
    files = write_report(campaigns[:1], tmp_path / "report")
    assert len(files.figures) == 4 + 2  # no grid of samples without the data


def test_report_cli(campaigns: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", *map(str, campaigns), "--no-samples"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (campaigns[0] / "report" / "report.html").is_file()
