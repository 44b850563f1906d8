"""Oracles for the black-box tests: a small seeded model, its ONNX export (once per
run), and the real model server (MLServer from `.venv-server`) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from jsma.blackbox import ModelOracle
from jsma.models import ModelSpec, export_onnx

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str  # the model's URL: http://127.0.0.1:PORT/v2/models/small
    count_file: Path  # one line per input the server received

    def received(self) -> list[str]:
        return self.count_file.read_text().split() if self.count_file.exists() else []


@pytest.fixture(scope="session")
def model_server(onnx_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """MLServer serving the exported model on 127.0.0.1 only (HTTP, gRPC; no metrics),
    counting every input it receives. scripts/test makes its environment."""
    mlserver = ROOT / ".venv-server" / "bin" / "mlserver"
    if not mlserver.exists():
        pytest.fail("the model server's environment is missing: run scripts/server-env")
    folder = tmp_path_factory.mktemp("server")
    http_port, grpc_port = _free_port(), _free_port()
    settings = {
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
        "parallel_workers": 0, "metrics_endpoint": None,
    }  # fmt: skip
    model = {
        "name": "small", "implementation": "jsma_onnx_runtime.OnnxModel",
        "parameters": {"uri": str(onnx_file)},
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *SHAPE]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, CLASSES]}],
    }  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(json.dumps(model))
    count_file = folder / "received.txt"
    environment = {
        **os.environ, "PYTHONPATH": str(ROOT / "tests" / "servers"),
        "JSMA_SERVER_COUNT_FILE": str(count_file),
    }  # fmt: skip
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [str(mlserver), "start", str(folder)], env=environment, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the model server did not start:\n{(folder / 'server.log').read_text()}"
                )
            time.sleep(0.25)
        yield Server(f"{base}/v2/models/small", count_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
