"""Campaign engines side by side, in one run: one process against a pool of workers.

    .venv/bin/python benchmarks/bench_engines.py [--samples 200] [--repeats 3] [--workers 2]

The paper's LeNet, attacked on its probabilities (the `replicate` setting),
increasing, the first --samples test samples towards their 9 other classes
(200: 1,800 attacks), units of the default size. Each configuration runs the
whole campaign into a fresh directory, --repeats times; wall time includes
starting the workers and loading the model in each (and, for Ray, starting
a local Ray on 127.0.0.1 and stopping it: the `ray` extra is needed). Printed: attacks per
second (median), the speed-up over one process with torch's default threads,
the projected time of the paper's 270,000 attacks, and how the rows compare
with the first configuration's (timing aside): identical, or the same
decisions and trajectories with the model's float outputs off in the last bits
(the thread count changes the order of torch's sums, whatever the engine).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from jsma.campaign import (
    AttackSettings,
    CampaignSpec,
    Engine,
    InProcess,
    LocalPool,
    load_results,
    run_campaign,
)
from jsma.campaign.ray_engine import RayEngine
from jsma.data import default_cache_dir, load_mnist
from jsma.paper import PAPER_SAMPLES_PER_SET, PAPER_SETS

PAPER_ATTACKS = len(PAPER_SETS) * PAPER_SAMPLES_PER_SET * 9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from jsma.models import cached_model

    data = load_mnist()
    model = cached_model(data, default_cache_dir(), "paper").model
    spec = CampaignSpec(
        samples=args.samples, attack=AttackSettings(theta=1.0, output="probabilities")
    )
    attacks = args.samples * 9
    default_threads = torch.get_num_threads()
    configurations: list[tuple[str, Engine, int]] = [
        (f"1 process, {default_threads} threads", InProcess(), default_threads),
        ("1 process, 1 thread", InProcess(), 1),
        (f"{args.workers} workers x 1 thread", LocalPool(args.workers, threads=1), default_threads),
        (f"Ray, {args.workers} tasks x 1 thread", RayEngine(workers=args.workers), default_threads),
    ]
    print(f"{attacks} attacks per run, {args.repeats} runs each, {torch.get_num_threads()} cores")
    rows: list[tuple[str, float, str]] = []
    reference: pa.Table | None = None
    with tempfile.TemporaryDirectory(prefix="jsma-bench-engines-") as scratch:
        for name, engine, threads in configurations:
            torch.set_num_threads(threads)  # this process's; a pool's workers set their own
            seconds = []
            for repeat in range(args.repeats):
                directory = Path(scratch) / f"{len(rows)}-{repeat}"
                started = time.perf_counter()
                status = run_campaign(directory, spec, model, data, engine=engine)
                seconds.append(time.perf_counter() - started)
                assert status.attacks_done == attacks
            table = load_results(directory).drop_columns(["seconds"])
            reference = table if reference is None else reference
            rows.append((name, attacks / statistics.median(seconds), compare(table, reference)))
            print(f"  {name}: {', '.join(f'{s:.1f}' for s in seconds)} s")
    base = rows[0][1]
    print()
    print(f"{'engine':<26} {'attacks/s':>10} {'speed-up':>9} {'270,000 attacks':>16}  rows")
    for name, rate, rows_compared in rows:
        projected = PAPER_ATTACKS / rate / 60
        print(
            f"{name:<26} {rate:>10.1f} {rate / base:>8.2f}x {projected:>12.1f} min  {rows_compared}"
        )


FLOATS = ("probability", "adversarial_distance", "l2", "distortion")


def compare(table: pa.Table, reference: pa.Table) -> str:
    """identical / same decisions and trajectories, floats off by at most X / DIFFERENT."""
    if table.equals(reference):
        return "identical"
    if not table.drop_columns(list(FLOATS)).equals(reference.drop_columns(list(FLOATS))):
        return "DIFFERENT decisions or trajectories"
    worst = max(
        float(np.max(np.abs(table[c].to_numpy() - reference[c].to_numpy()))) for c in FLOATS
    )
    return f"same decisions and trajectories; floats off by <= {worst:.1e}"


if __name__ == "__main__":
    main()
