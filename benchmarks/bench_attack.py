"""Speed and memory of the attack: the fast pair search against the brute force.

Run on demand (needs the `mnist` extra; trains the LeNet of --recipe on first use):

    .venv/bin/python benchmarks/bench_attack.py [--recipe paper] [--skip-brute-force] \
        [--device cuda]

On the paper's LeNet and real MNIST test samples (theta = +1, Upsilon =
14.5%, each sample towards each of the other classes), prints milliseconds per
attack for the fast path and the brute-force reference at batch 1 and batch
100, their ratio, the average over at least 1,000 attacks at batch 100 and at
a campaign unit's batch of 900, with the projected time of the paper's
270,000-attack campaign, and, in a child process, the time
per iteration and peak memory of one attack on a 3x224x224 input.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from jsma.attacks import JSMA, AttackResult
from jsma.attacks.reference import select_pair_brute_force
from jsma.data import default_cache_dir, load_mnist
from jsma.models import load_checkpoint
from jsma.models._external import resolve_device
from jsma.models._training import cached_model
from jsma.settings import OUTPUTS


def workload(samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (sample, other class) pair of the first test samples: images, sources, targets."""
    data = load_mnist()
    images, labels = data.test.tensors(slice(0, samples))
    classes = data.num_classes
    offsets = torch.arange(1, classes)
    targets = ((labels[:, None] + offsets[None, :]) % classes).flatten()
    return images.repeat_interleave(classes - 1, 0), labels.repeat_interleave(classes - 1), targets


class Measured(NamedTuple):
    seconds: float
    adversarial: torch.Tensor
    success: torch.Tensor
    distortion: torch.Tensor
    passes: int  # forward-derivative passes: one per iteration plus the final check


def _synchronized(device: torch.device) -> None:
    if device.type == "cuda":  # CUDA runs asynchronously: time what it has done
        torch.cuda.synchronize(device)


def timed(
    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], AttackResult],
    x: torch.Tensor,
    sources: torch.Tensor,
    targets: torch.Tensor,
    batch: int,
) -> Measured:
    """Attack everything in batches of `batch`; time it and keep what is compared."""
    parts = []
    _synchronized(x.device)
    start = time.perf_counter()
    for at in range(0, len(x), batch):
        chunk = slice(at, at + batch)
        parts.append(run(x[chunk], sources[chunk], targets[chunk]))
    _synchronized(x.device)
    seconds = time.perf_counter() - start
    return Measured(
        seconds,
        torch.cat([p.adversarial for p in parts]),
        torch.cat([p.success for p in parts]),
        torch.cat([p.distortion for p in parts]),
        sum(int(p.iterations.sum()) + len(p) for p in parts),
    )


def _peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss, not inherited on exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status")


def large_input_child(max_iterations: int, device: torch.device) -> None:
    """Attack one 3x224x224 input with a small CNN; print time per iteration and peak RSS
    (and peak CUDA memory on a GPU)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, 10),
    ).to(device)  # fmt: skip
    x = torch.rand(1, 3, 224, 224, device=device) * 0.5
    features = x[0].numel()
    with torch.no_grad():
        target = (model(x).argmax(1) + 1) % 10
    before = _peak_rss_gib()
    # A budget of exactly `max_iterations` pair steps; the target is far away.
    attack = JSMA(max_distortion=(2 * max_iterations + 0.5) / features)
    _synchronized(device)
    start = time.perf_counter()
    result = attack(model, x, target)
    _synchronized(device)
    seconds = time.perf_counter() - start
    peak = _peak_rss_gib()
    cuda_peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    print(
        json.dumps(
            {
                "features": features,
                "iterations": int(result.iterations[0]),
                "seconds_per_iteration": seconds / max(int(result.iterations[0]), 1),
                "peak_rss_gib": peak,
                "rss_before_attack_gib": before,
                "peak_cuda_gib": cuda_peak,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200, help="test samples (x 9 targets)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each fast timing")
    parser.add_argument(
        "--brute-repeats", type=int, default=1, help="repeats of each (slow) brute-force timing"
    )
    parser.add_argument("--model", type=Path, help="a checkpoint instead of the cached LeNet")
    parser.add_argument(
        "--recipe", default="paper", help="recipe of the cached LeNet (default: paper)"
    )
    parser.add_argument(
        "--output", choices=OUTPUTS, default="logits",
        help="what the attack differentiates (default: logits)",
    )  # fmt: skip
    parser.add_argument("--skip-brute-force", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--large-iterations", type=int, default=20)
    parser.add_argument("--large-input-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.large_input_child:
        large_input_child(args.large_iterations, device)
        return

    data = load_mnist()
    loaded = (
        load_checkpoint(args.model)
        if args.model
        else cached_model(data, default_cache_dir(), args.recipe, progress=True)
    )
    model = loaded.model.to(device)
    x, sources, targets = (t.to(device) for t in workload(args.samples))
    attack = JSMA(output=args.output)

    def run(xs: torch.Tensor, ss: torch.Tensor, ts: torch.Tensor) -> AttackResult:
        return attack(model, xs, ts, sources=ss)

    def brute(xs: torch.Tensor, ss: torch.Tensor, ts: torch.Tensor) -> AttackResult:
        return attack(model, xs, ts, sources=ss, pair_search=select_pair_brute_force)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"attack on the {args.output}"
    )
    print(
        f"model: LeNet, recipe {loaded.info.recipe.get('name')!r}, "
        f"test accuracy {loaded.info.accuracies.get('test', math.nan):.2%}"
    )

    rows = []
    # The brute force costs ~1 s per iteration at batch 100: keep its workload small.
    for batch, count in ((1, 27), (100, 200)):
        count = min(count, len(x))
        work = (x[:count], sources[:count], targets[:count])
        fast_runs = [timed(run, *work, batch) for _ in range(args.repeats)]
        fast_ms = statistics.median(r.seconds for r in fast_runs) / count * 1e3
        slow_ms = math.nan
        if not args.skip_brute_force:
            slow_runs = [timed(brute, *work, batch) for _ in range(args.brute_repeats)]
            if not torch.equal(fast_runs[0].adversarial, slow_runs[0].adversarial):
                raise SystemExit("the fast path and the brute force disagree: a bug")
            slow_ms = statistics.median(r.seconds for r in slow_runs) / count * 1e3
        rows.append((batch, count, fast_ms, slow_ms))

    print("\nms per attack (median of repeats), identical adversarial samples from both paths")
    print(f"{'batch':>6} {'attacks':>8} {'fast':>9} {'brute':>9} {'brute/fast':>11}")
    for batch, count, fast_ms, slow_ms in rows:
        print(f"{batch:>6} {count:>8} {fast_ms:>9.2f} {slow_ms:>9.2f} {slow_ms / fast_ms:>11.1f}")

    # At least 1,000 attacks, at batch 100 and at a campaign unit's batch
    # (100 samples x 9 targets = 900 attacks).
    for batch in (100, 900):
        runs = [timed(run, x, sources, targets, batch) for _ in range(args.repeats)]
        per_attack = statistics.median(r.seconds for r in runs) / len(x)
        last = runs[-1]
        print(f"\n{len(x)} attacks, batch {batch}: {per_attack * 1e3:.2f} ms per attack (median)")
        print(
            f"  success {float(last.success.float().mean()):.2%}, mean distortion of successes "
            f"{float(last.distortion[last.success].mean()):.2f}%, "
            f"{last.passes / len(x):.1f} forward-derivative passes per attack"
        )
        print(f"  projected 270,000-attack campaign: {270_000 * per_attack / 60:.1f} minutes")

    # A 3x224x224 input, in a child process so that its peak memory is its own.
    features = 3 * 224 * 224
    print(
        f"\n3x224x224 input ({features} features), small CNN, {args.large_iterations} pair steps:"
    )
    print(f"  a float32 M x M pair matrix would take {features**2 * 4 / 2**30:.0f} GiB")
    child = subprocess.run(
        [sys.executable, __file__, "--large-input-child",
         "--large-iterations", str(args.large_iterations), "--device", str(device)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"  {report['seconds_per_iteration'] * 1e3:.0f} ms per iteration, "
        f"peak memory {report['peak_rss_gib']:.2f} GiB "
        f"(process before the attack: {report['rss_before_attack_gib']:.2f} GiB)"
    )
    assert math.isfinite(report["peak_rss_gib"])


if __name__ == "__main__":
    main()
