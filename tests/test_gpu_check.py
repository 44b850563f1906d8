"""`scripts/gpu-check` keeps working on the CPU (the day a GPU is lent, it is one call)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu-check"), "--device", "cpu", "--iterations", "2",
         "--out", str(tmp_path / "summary.json")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cuda_tests"]["skipped"] >= 3  # the CUDA-marked tests, seen and skipped
    assert summary["attack_speed"]["attacks"] == 180
    assert summary["campaign"]["attacks"] == 180
    assert summary["input_224"]["iterations"] == 2
    assert "failed steps: none" in done.stdout
