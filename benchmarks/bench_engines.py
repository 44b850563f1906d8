"""Campaign engines side by side, in one run: one process against a pool of workers.

    .venv/bin/python benchmarks/bench_engines.py [--samples 200] [--repeats 3] [--workers 2]
    .venv/bin/python benchmarks/bench_engines.py --cluster [--unit-sizes 5 20 100]

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

--cluster: the cost of a Ray task, to size units for a real cluster. A
two-node Ray cluster on 127.0.0.1 (Ray's `cluster_utils`, one CPU per node)
runs the same campaign cut into units of each --unit-sizes; per task, the
overhead is the wall time the two nodes spent beyond the attacks themselves
(2 x wall - the units' own seconds) over the number of tasks: scheduling,
fetching the model from the object store, writing the file.
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

from jsma.campaign import AttackSettings, Campaign, CampaignSpec, Engine, InProcess, LocalPool
from jsma.campaign.ray_engine import RayEngine
from jsma.data import default_cache_dir, load_mnist
from jsma.paper import PAPER_SAMPLES_PER_SET, PAPER_SETS

PAPER_ATTACKS = len(PAPER_SETS) * PAPER_SAMPLES_PER_SET * 9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cluster", action="store_true", help="the per-task cost on Ray")
    parser.add_argument("--unit-sizes", type=int, nargs="+", default=[5, 20, 100])
    args = parser.parse_args()
    if args.cluster:
        cluster_overhead(args.samples, args.unit_sizes)
        return

    from jsma.models._training import cached_model

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
                status = Campaign.run(directory, spec, model, data, engine=engine)
                seconds.append(time.perf_counter() - started)
                assert status.attacks_done == attacks
            table = Campaign.open(directory).results().drop_columns(["seconds"])
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


def cluster_overhead(samples: int, unit_sizes: list[int]) -> None:
    import os

    from jsma.campaign.ray_engine import LOOPBACK_ONLY
    from jsma.models._training import cached_model

    os.environ.update(LOOPBACK_ONLY)  # before Ray is imported
    import ray
    from ray.cluster_utils import Cluster

    data = load_mnist()
    model = cached_model(data, default_cache_dir(), "paper").model
    head = {"num_cpus": 1, "include_dashboard": False}
    nodes = Cluster(initialize_head=True, head_node_args=head)
    nodes.add_node(num_cpus=1)
    print(f"two Ray nodes on 127.0.0.1, one CPU each; {samples * 9} attacks per run")
    print(f"{'unit size':>9} {'tasks':>6} {'wall s':>7} {'attack s':>9} {'overhead per task':>18}")
    try:
        with tempfile.TemporaryDirectory(prefix="jsma-bench-cluster-") as scratch:
            for size in unit_sizes:
                spec = CampaignSpec(
                    samples=samples, unit_size=size,
                    attack=AttackSettings(theta=1.0, output="probabilities"),
                )  # fmt: skip
                engine = RayEngine(address=nodes.address, workers=2)
                started = time.perf_counter()
                status = Campaign.run(Path(scratch) / str(size), spec, model, data, engine=engine)
                wall = time.perf_counter() - started
                tasks = status.units_total
                overhead = (2 * wall - status.seconds) / tasks
                print(
                    f"{size:>9} {tasks:>6} {wall:>7.1f} {status.seconds:>9.1f} "
                    f"{overhead * 1e3:>15.0f} ms"
                )
    finally:
        ray.shutdown()
        nodes.shutdown()


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
