"""Helpers shared by the campaign tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from jsma.campaign import InProcess
from jsma.campaign._engines import UnitTask
from jsma.campaign._store import UnitInfo
from jsma.models import ModelSpec, save_checkpoint
from jsma.models._checkpoint import CheckpointInfo
from tests.conftest import NUM_CLASSES, write_idx_directory

MODEL_SPEC = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": NUM_CLASSES})


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return MODEL_SPEC.build().eval()


def _comparable(table):  # type: ignore[no-untyped-def]
    return table.drop_columns(["seconds"]).to_pylist()


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


@pytest.fixture
def cli_setup(tmp_path: Path) -> tuple[list[str], Path]:
    data = write_idx_directory(tmp_path / "idx", train=10_010, test=40)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, _model(), CheckpointInfo(spec=MODEL_SPEC))
    options = [
        "--data", f"idx:{data}", "--cache-dir", str(tmp_path / "cache"),
        "--model", str(checkpoint), "--allow-weak-model",  # an untrained LeNet
    ]  # fmt: skip
    return options, tmp_path
