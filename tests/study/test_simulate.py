from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.cli import main
from jsma.study import analyze
from jsma.study.simulate import knn_observer, model_observer, oracle_observer, simulate

TRIALS = 8


def test_oracles_through_the_real_pages(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = simulate(study, "oracle", observe=oracle_observer, participants=6, concurrency=3,
                      trials_per_participant=TRIALS)  # fmt: skip
    assert (result.answers_sent, result.answers_stored, result.duplicates) == (48, 48, 0)
    assert len(result.latencies_ms) > 6 * TRIALS
    assert result.p50_ms <= result.p95_ms
    analysis = analyze(study)
    # Kept apart from people, and they follow the attention checks' instructions.
    assert analysis.participants == {"oracle": 6}
    assert analysis.excluded == {"oracle": 0}
    for line in analysis.lines:
        assert line.saw_source.share == 1.0  # the oracle names the true source
    # The command: the same, printed.
    assert main(["study", "simulate", str(study), "--participants", "2", "--concurrency", "2",
                 "--trials", str(TRIALS)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "answers:    16 sent, 16 stored, 0 duplicates" in printed
    assert "machine observers, never people" in printed


def test_knn_and_model_observers() -> None:
    train = np.zeros((3, 4, 4))
    train[1, :2] = 1.0
    train[2, 2:] = 1.0
    knn = knn_observer(train, np.array([5, 7, 9]))
    probe = np.zeros((4, 4))
    probe[:2] = 0.9
    assert knn(probe, None) == (True, 7)

    class Fixed(torch.nn.Module):
        def __init__(self, logits: list[float]) -> None:
            super().__init__()
            self.logits = torch.tensor([logits])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits.expand(len(x), -1)

    assert model_observer(Fixed([0.0, 5.0, 0.0]))(probe, None) == (True, 1)
    assert model_observer(Fixed([1.0, 1.0, 1.0]))(probe, None) == (False, None)  # 1/3 < 0.5
