"""Helpers shared by the campaign tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from torch import nn

from jsma.campaign import InProcess
from jsma.campaign.engines import UnitTask
from jsma.campaign.store import UnitInfo


class Recording:
    """An engine that runs units in this process and notes their names, in order."""

    label = "this process, recorded"

    def __init__(self) -> None:
        self.units: list[str] = []

    def run(
        self, model: nn.Module, tasks: Sequence[UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]:
        for task, info in InProcess().run(model, tasks):
            self.units.append(task.name)
            yield task, info


@pytest.fixture
def recording() -> Recording:
    return Recording()
