from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.cli import main
from jsma.errors import JSMAError
from jsma.study import analyze
from jsma.study.simulate import (
    SimulationResult,
    knn_observer,
    model_observer,
    oracle_observer,
    serving,
    simulate,
)

TRIALS = 8


@pytest.mark.slow
def test_oracles_through_the_real_pages(
    study: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
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
    caplog.set_level(logging.INFO)
    assert main(["study", "simulate", str(study), "--participants", "2", "--concurrency", "2",
                 "--trials", str(TRIALS)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "answers:    16 sent, 16 stored, 0 duplicates" in printed
    # httpx's line per request is not logged (it was: thousands of lines).
    assert not [record for record in caplog.records if record.name.startswith("http")]
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


def test_observers_wait_for_a_server_that_is_restarting(study: Path) -> None:
    # Nothing listens on the port at first: the observers retry until the server is up.
    port = _free_port()
    outcome: list[object] = []

    def observers() -> None:
        result = simulate(study, "oracle", observe=oracle_observer, participants=2, concurrency=2,
                          url=f"http://127.0.0.1:{port}", trials_per_participant=TRIALS,
                          retry_seconds=20)  # fmt: skip
        outcome.append(result)

    thread = threading.Thread(target=observers)
    thread.start()
    time.sleep(0.5)
    with serving(study, trials_per_participant=TRIALS, port=port):
        thread.join(timeout=60)
    assert not thread.is_alive()
    result = outcome[0]
    assert isinstance(result, SimulationResult)
    assert result.retries > 0
    assert (result.answers_sent, result.answers_stored, result.duplicates) == (16, 16, 0)


def test_observers_give_up_on_a_server_that_never_answers(study: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(JSMAError, match=r"GET /: no answer from .* within 0.3 s \(ConnectError\)"):
        simulate(study, "oracle", observe=oracle_observer, participants=1, concurrency=1,
                 url=url, retry_seconds=0.3)  # fmt: skip
    assert time.monotonic() - started < 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("channels", [1, 3])
def test_observers_see_the_stimulus_as_the_data_holds_it(channels: int, tmp_path: Path) -> None:
    from jsma.study._design import _save_png
    from jsma.study.simulate import _picture

    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (channels, 5, 6))
    _save_png(tmp_path / "stimulus.png", image, (-1.0, 1.0))
    png = (tmp_path / "stimulus.png").read_bytes()
    for told in (channels, 0):  # 0: a study made before it recorded its channels
        seen = _picture(png, told)
        expected = (image[0] + 1) / 2 if channels == 1 else (image + 1) / 2
        assert seen.shape == expected.shape
        assert np.abs(seen - expected).max() <= 1 / 255 + 1e-6

    class Echo(torch.nn.Module):
        """Scores each class by how close the input's mean is to it: sees the bounds."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=tuple(range(1, x.ndim)))[:, None]
            return -(mean - torch.tensor([[-1.0, 0.0, 1.0]])).abs() * 100

    dark = np.zeros((channels, 5, 6)) if channels == 3 else np.zeros((5, 6))
    assert model_observer(Echo(), bounds=(-1.0, 1.0))(dark, None) == (True, 0)
    assert model_observer(Echo())(dark, None) == (True, 1)  # [0, 1] data: 0 is its middle
