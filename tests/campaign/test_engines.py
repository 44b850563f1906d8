"""Engines: the same rows whoever runs the units, and a worker's death costs nothing."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from jsma.campaign import Campaign, CampaignSpec, InProcess, LocalPool, local_engine
from jsma.data import Dataset
from jsma.errors import CampaignError, ConfigurationError, ModelError
from tests.campaign.conftest import MODEL_SPEC, Recording, _comparable, _model

SPEC = CampaignSpec(splits=("validation", "test"), samples=4, unit_size=2)  # 4 units


class DiesOnce(nn.Module):
    """A model whose first forward in a process other than its creator's kills that
    process with SIGKILL, once per marker file: a worker dying mid-unit."""

    def __init__(self, inner: nn.Module, marker: Path, always: bool = False) -> None:
        super().__init__()
        self.inner, self.marker, self.always = inner, str(marker), always
        self.creator = os.getpid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self.creator:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
                first = True
            except FileExistsError:
                first = False
            if first or self.always:
                os.kill(os.getpid(), signal.SIGKILL)
        out: torch.Tensor = self.inner(x)
        return out


class NotFinite(nn.Module):
    """Finite outputs without gradients (the check before a campaign passes), NaN
    under the attack's differentiation: the error is raised in the worker."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = MODEL_SPEC.build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * (float("nan") if torch.is_grad_enabled() else 1.0)


@pytest.fixture
def reference(tiny_dataset: Dataset, tmp_path: Path) -> list[dict[str, object]]:
    """The rows of the campaign run in this process: what every engine must reproduce."""
    Campaign.run(tmp_path / "reference", SPEC, _model(), tiny_dataset, engine=InProcess())
    return _comparable(Campaign.open(tmp_path / "reference").results())


@pytest.mark.slow
def test_a_pool_gives_the_rows_of_one_process(
    tiny_dataset: Dataset, tmp_path: Path, reference: list[dict[str, object]]
) -> None:
    status = Campaign.run(tmp_path / "run", SPEC, _model(), tiny_dataset, engine=LocalPool(2))
    assert status.complete
    assert _comparable(Campaign.open(tmp_path / "run").results()) == reference


@pytest.mark.slow
def test_one_engine_resumes_what_another_began(
    tiny_dataset: Dataset, tmp_path: Path, reference: list[dict[str, object]], recording: Recording
) -> None:
    directory = tmp_path / "run"
    Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=LocalPool(2))
    for unit in sorted((directory / "units").glob("*.parquet"))[:2]:
        unit.unlink()  # as if the pool's run had been stopped
    assert Campaign.open(directory).status().units_done == 2
    assert Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=recording).complete
    assert len(recording.units) == 2
    assert _comparable(Campaign.open(directory).results()) == reference


@pytest.mark.slow
def test_a_worker_killed_mid_unit_costs_nothing(
    tiny_dataset: Dataset,
    tmp_path: Path,
    reference: list[dict[str, object]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = DiesOnce(_model(), tmp_path / "killed")
    status = Campaign.run(tmp_path / "run", SPEC, model, tiny_dataset, engine=LocalPool(2))
    assert (tmp_path / "killed").exists()  # a worker did die
    # The log says which worker died, how, with which unit, and that it is redone.
    died = re.search(
        r"worker \d+ \(killed by SIGKILL, out of memory\?\) was running unit (\S+);", caplog.text
    )
    assert died is not None, caplog.text
    assert died.group(1) in {unit.name for unit in Campaign.open(tmp_path / "run").manifest.units}
    assert "are redone in a new pool" in caplog.text
    assert status.complete
    rows = _comparable(Campaign.open(tmp_path / "run").results())
    assert len(rows) == len(reference)  # none lost, none repeated
    assert rows == reference


@pytest.mark.slow
def test_workers_that_always_die_end_in_a_clear_error(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    model = DiesOnce(_model(), tmp_path / "killed", always=True)
    with pytest.raises(CampaignError, match="worker processes died 2 times in a row"):
        Campaign.run(tmp_path / "run", SPEC, model, tiny_dataset, engine=LocalPool(2, restarts=1))
    assert Campaign.open(tmp_path / "run").status().units_done == 0


@pytest.mark.slow
def test_a_workers_error_reaches_the_caller(tiny_dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="outputs are NaN or infinite for batch rows 0, 1"):
        Campaign.run(tmp_path / "run", SPEC, NotFinite(), tiny_dataset, engine=LocalPool(2))


def test_local_engine_choices() -> None:
    assert isinstance(local_engine(1), InProcess)
    assert local_engine(3, threads=2) == LocalPool(3, 2)
    assert isinstance(local_engine(), InProcess | LocalPool)
    with pytest.raises(ConfigurationError, match="workers must be at least 1, got 0"):
        local_engine(0)
    with pytest.raises(ConfigurationError, match="workers and threads must be at least 1"):
        LocalPool(2, threads=0)
