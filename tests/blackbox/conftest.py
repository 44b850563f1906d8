"""Oracles for the black-box tests: a small seeded model, its ONNX export (once per
run), and the real model server (MLServer from `.venv-server`) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.blackbox import ModelOracle
from jsma.models import ModelSpec, export_onnx
from tests.servers.model_server import Served, serve

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (1, 16, 16)
CLASSES = 5


def small_model() -> torch.nn.Module:
    """A seeded, untrained LeNet on 12x12 inputs: scores vary enough to test with."""
    torch.manual_seed(0)
    spec = ModelSpec("lenet", {"input_shape": SHAPE, "num_classes": CLASSES})
    return spec.build().eval()


def queries(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *SHAPE), dtype=np.float32)


@pytest.fixture
def model_oracle() -> ModelOracle:
    return ModelOracle(small_model(), identity="model:small", max_batch=16)


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(small_model(), tmp_path_factory.mktemp("onnx") / "small.onnx", SHAPE)


@pytest.fixture(scope="session")
def model_server(onnx_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """MLServer serving the exported model on 127.0.0.1 only, counting every input it
    receives. scripts/test makes its environment (scripts/server-env)."""
    folder = tmp_path_factory.mktemp("server")
    try:
        with serve(onnx_file, folder, name="small", input_shape=SHAPE, classes=CLASSES) as served:
            yield served
    except RuntimeError as error:
        pytest.fail(str(error))
