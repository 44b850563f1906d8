"""Start MLServer (from `.venv-server`, made by scripts/server-env) serving an ONNX file
on 127.0.0.1 only: HTTP and gRPC on free loopback ports, no metrics server, no worker
processes. Used by the tests and by benchmarks/bench_blackbox.py."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = ROOT / ".venv-server" / "bin" / "mlserver"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Served:
    url: str  # the model's URL: http://127.0.0.1:PORT/v2/models/NAME
    count_file: Path  # one line (a digest) per input the server received

    def received(self) -> list[str]:
        return self.count_file.read_text().split() if self.count_file.exists() else []


@contextlib.contextmanager
def serve(
    onnx_file: Path, folder: Path, *, name: str, input_shape: Sequence[int], classes: int,
    start_timeout: float = 90.0,
) -> Iterator[Served]:  # fmt: skip
    """MLServer serving `onnx_file` as model `name` until the block ends."""
    if not MLSERVER.exists():
        raise RuntimeError("the model server's environment is missing: run scripts/server-env")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = _free_port(), _free_port()
    settings = {
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
        "parallel_workers": 0, "metrics_endpoint": None,
    }  # fmt: skip
    model = {
        "name": name, "implementation": "jsma_onnx_runtime.OnnxModel",
        "parameters": {"uri": str(onnx_file)},
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *input_shape]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, classes]}],
    }  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(json.dumps(model))
    count_file = folder / "received.txt"
    environment = {
        **os.environ, "PYTHONPATH": str(Path(__file__).parent),
        "JSMA_SERVER_COUNT_FILE": str(count_file),
    }  # fmt: skip
    base = f"http://127.0.0.1:{http_port}"
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            [str(MLSERVER), "start", str(folder)], env=environment, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the model server did not start:\n{(folder / 'server.log').read_text()}"
                    )
                time.sleep(0.25)
            yield Served(f"{base}/v2/models/{name}", count_file)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
