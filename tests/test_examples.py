"""The scripts of examples/ run as a user would run them, and print what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def _run(tmp_path: Path, script: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.mnist
def test_attack_your_own_model(tmp_path: Path) -> None:
    printed = _run(tmp_path, "attack_your_model.py")
    assert printed.startswith("success ")
    assert "sample 0: 7 -> 8," in printed  # the first test digit is a 7


@pytest.mark.slow
@pytest.mark.mnist
def test_a_campaign_its_report_and_its_rows_read_with_pandas(tmp_path: Path) -> None:
    printed = _run(tmp_path, "campaign_and_report.py", "run")
    assert printed.startswith("180 attacks,")
    assert (tmp_path / "run" / "report" / "report.html").is_file()
    rows = _run(tmp_path, "read_results.py", "run/increasing")
    assert rows.startswith("180 attacks, ")
    assert "source x target" in rows
