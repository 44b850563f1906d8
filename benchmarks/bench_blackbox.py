"""Queries a second from each kind of oracle, side by side in one run.

Needs the `blackbox` extra and the model server's environment (`scripts/server-env`):

    .venv/bin/python benchmarks/bench_blackbox.py [--queries 2000] [--repeats 3]

The paper's LeNet answers the first `--queries` MNIST test images: as a PyTorch
model run without gradients, exported to ONNX and run by ONNX Runtime, and served by
MLServer (ONNX Runtime behind the Open Inference Protocol, JSON over HTTP, on
127.0.0.1), at several request sizes; then the same through a query ledger (a
durable, fsynced log per chunk) to show what the log costs, and the ledger answering
from its log alone (a resumed run). Printed: the median over `--repeats` of queries a
second and of the wall time, and the labels' agreement with the model's. Each is run
once untimed first (a warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/servers: the model server's starter

from jsma import load_mnist  # noqa: E402
from jsma.blackbox import Oracle, OracleRef, QueryLedger  # noqa: E402
from jsma.models import ModelRef, export_onnx  # noqa: E402
from tests.servers.model_server import serve  # noqa: E402


def timed(run: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    run()  # warm up: first requests, thread pools, the server's first session runs
    seconds, labels = [], np.zeros(0)
    for _ in range(repeats):
        started = time.perf_counter()
        labels = run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_mnist()
    inputs = data.test.tensors(np.arange(args.queries))[0].numpy()
    model, _ = ModelRef.parse("paper").load()
    folder = Path(tempfile.mkdtemp(prefix="bench-blackbox-"))
    onnx = export_onnx(model, folder / "lenet.onnx", data.input_shape)
    reference = OracleRef.parse("paper").open().answer(inputs).labels
    rows: list[tuple[str, int, float, float]] = []

    def measure(name: str, batch: int, run: Callable[[], np.ndarray]) -> None:
        seconds, labels = timed(run, args.repeats)
        agreement = float((labels == reference).mean())
        rows.append((name, batch, seconds, agreement))
        print(f"{name:<34} batch {batch:>4}: {args.queries / seconds:>9,.0f} queries/s, "
              f"{seconds:6.3f} s, agreement {agreement:.2%}", flush=True)  # fmt: skip

    def labels_of(oracle: Oracle) -> Callable[[], np.ndarray]:
        return lambda: oracle.answer(inputs).labels

    for batch in (16, 64, 256):
        measure("PyTorch model (no gradients)", batch,
                labels_of(OracleRef.parse("paper").open(max_batch=batch)))  # fmt: skip
        measure("ONNX Runtime", batch, labels_of(OracleRef.parse(onnx).open(max_batch=batch)))
    with serve(onnx, folder / "server", name="lenet", input_shape=data.input_shape,
               classes=data.num_classes) as served:  # fmt: skip
        for batch in (16, 64, 256):
            served_batch = OracleRef.parse(served.url).open(max_batch=batch)
            measure("MLServer (HTTP, JSON)", batch, labels_of(served_batch))
        server = OracleRef.parse(served.url).open(max_batch=64)
        logs = iter(range(10_000))

        def fresh_ledger() -> np.ndarray:
            with QueryLedger(server, folder / f"log-{next(logs)}.jqlog") as ledger:
                return ledger.answer(inputs).labels

        measure("MLServer through a fresh ledger", 64, fresh_ledger)
        with QueryLedger(server, folder / "cached.jqlog") as ledger:
            ledger.answer(inputs)
        before = len(served.received())

        def from_log() -> np.ndarray:
            with QueryLedger(server, folder / "cached.jqlog") as ledger:
                return ledger.answer(inputs).labels

        measure("a ledger answering from its log", 64, from_log)
        assert len(served.received()) == before, "the ledger sent answered queries again"
    print(f"\n{args.queries} MNIST test images, median of {args.repeats}; data in {folder}")


if __name__ == "__main__":
    main()
