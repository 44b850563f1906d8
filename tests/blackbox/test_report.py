"""The report's black-box section: read from what `jsma blackbox` stored, named
positionally or with --blackbox, in a report with or without campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsma.blackbox import (
    SparseRsSettings,
    TransferAttack,
    attack_through_substitute,
    run_sparse_rs,
    train_substitute,
)
from jsma.cli import main
from jsma.data import Dataset
from tests.blackbox.test_substitute import FAST, tiny_oracle


@pytest.fixture
def blackbox_run(tiny_dataset: Dataset, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    oracle = tiny_oracle(tiny_dataset)
    train_substitute(oracle, tiny_dataset, out, FAST)
    for epsilon in (0.1, 0.3):
        attack_through_substitute(oracle, tiny_dataset, out,
                                  TransferAttack("fgsm", samples=10, epsilon=epsilon))  # fmt: skip
    run_sparse_rs(oracle, tiny_dataset, out, SparseRsSettings(pixels=8, queries_per_sample=20),
                  samples=10, start=8)  # fmt: skip
    return out


def test_a_blackbox_directory_makes_a_report_of_its_own(
    blackbox_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(blackbox_run), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Black-box attacks" in page
    assert "fgsm-0.3" in page
    assert "k = 8, 20 a sample" in page
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    (stored,) = summary["blackbox"]
    assert len(stored["substitute"]["epochs"]) == 3
    assert [a["attack"]["epsilon"] for a in stored["attacks"]] == [0.1, 0.3]
    assert stored["sparse_rs"][0]["settings"]["pixels"] == 8
    assert (tmp_path / "report" / "figures" / "blackbox.png").stat().st_size > 10_000
    capsys.readouterr()
