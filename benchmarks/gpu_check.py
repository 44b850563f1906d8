"""Everything a GPU should be checked for, in one command and one summary.

    scripts/gpu-check                 # on CUDA: under 8 minutes on one H100
    scripts/gpu-check --device cpu    # the same steps, smaller (CI keeps it working)

1. the CUDA-marked tests (`pytest -m cuda`; on the CPU they are skipped, and said so);
2. the attack's speed (`bench_attack`'s timing): ms per attack at batch 100 and at a
   campaign unit's batch of 900, the paper's LeNet, every sample towards the 9 other
   classes, the fast pair search;
3. a real campaign (`Campaign.run` in this process on the device), timed, and the
   paper's 270,000 attacks projected from it and from step 2;
4. one 3x224x224 input: a ResNet-18 with 1,000 classes (torchvision, where it is
   installed: `scripts/bench-env`), else `bench_attack`'s small CNN, a budget of
   `--iterations` pair steps: ms per step and peak memory.

Each step is bounded in size (and the tests in time); a step that fails is reported as
failed and the others still run. `--out FILE` keeps the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))  # bench_attack, _torchvision

from bench_attack import large_input_child, timed, workload

from jsma.attacks import JSMA, AttackResult
from jsma.campaign import Campaign, CampaignSpec, InProcess
from jsma.data import load_mnist
from jsma.models import ModelRef
from jsma.models._external import resolve_device

PAPER_ATTACKS = 270_000
ROOT = Path(__file__).parents[1]
# Sizes per device kind: test samples timed (x 9 targets), a campaign's samples.
SIZES = {"cuda": {"samples": 1000, "campaign": 1000}, "cpu": {"samples": 20, "campaign": 20}}


def _tests(timeout: float) -> dict[str, Any]:
    """`pytest -m cuda`: how many passed, skipped and failed."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    counts = {
        word: int(number)
        for number, word in re.findall(r"(\d+) (passed|skipped|failed|error)", done.stdout)
    }
    return {"exit_code": done.returncode, **counts}


def _attack_speed(model: torch.nn.Module, samples: int, device: torch.device) -> dict[str, Any]:
    x, sources, targets = (t.to(device) for t in workload(samples))
    attack = JSMA(output="probabilities")

    def run(xs: torch.Tensor, ss: torch.Tensor, ts: torch.Tensor) -> AttackResult:
        return attack(model, xs, ts, sources=ss)

    timed(run, x[:100], sources[:100], targets[:100], 100)  # warm-up (CUDA kernels)
    figures: dict[str, Any] = {"attacks": len(x)}
    for batch in (100, 900):
        measured = timed(run, x, sources, targets, batch)
        per_attack = measured.seconds / len(x)
        figures[f"ms_per_attack_batch_{batch}"] = per_attack * 1e3
        figures[f"success_batch_{batch}"] = float(measured.success.float().mean())
    figures["paper_minutes_projected"] = PAPER_ATTACKS * figures["ms_per_attack_batch_900"] / 6e4
    return figures


def _campaign(model: torch.nn.Module, samples: int) -> dict[str, Any]:
    data = load_mnist()
    spec = CampaignSpec(splits=("test",), samples=samples, unit_size=100)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        status = Campaign.run(Path(directory) / "campaign", spec, model, data, engine=InProcess())
        wall = time.perf_counter() - started
    return {
        "attacks": status.attacks_done,
        "wall_seconds": wall,
        "success_rate": status.success_rate,
        "paper_minutes_projected": PAPER_ATTACKS * wall / status.attacks_done / 60,
    }


def _large_input(iterations: int, device: torch.device, timeout: float) -> dict[str, Any]:
    """A ResNet-18 on one 3x224x224 input where torchvision is installed, else the small
    CNN of `bench_attack`; in a child process, so that peak memory is its own."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks');"
        "from gpu_check import _large_input_child;"
        f"_large_input_child({iterations}, {str(device)!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _large_input_child(iterations: int, device_name: str) -> None:
    device = torch.device(device_name)
    try:
        from _torchvision import import_torchvision

        torchvision = import_torchvision()
    except (SystemExit, ImportError):
        print("torchvision is missing: the small CNN of bench_attack instead", file=sys.stderr)
        large_input_child(iterations, device)
        return
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).eval().to(device)
    x = torch.rand(1, 3, 224, 224, device=device) * 0.5
    with torch.no_grad():
        target = (model(x).argmax(1) + 1) % 1000
    attack = JSMA(max_distortion=(2 * iterations + 0.5) / x[0].numel())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = attack(model, x, target)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    steps = max(int(result.iterations[0]), 1)
    print(
        json.dumps(
            {
                "model": "resnet18",
                "seconds_per_iteration": seconds / steps,
                "iterations": steps,
                "peak_cuda_gib": torch.cuda.max_memory_allocated(device) / 2**30
                if device.type == "cuda"
                else None,
            }
        )
    )


def _step(name: str, summary: dict[str, Any], work: Any) -> None:
    started = time.perf_counter()
    try:
        summary[name] = work()
    except Exception as error:  # a failed step is reported; the others still run
        summary[name] = {"failed": f"{type(error).__name__}: {error}"}
    summary[name]["step_seconds"] = time.perf_counter() - started
    print(f"{name}: {json.dumps(summary[name], default=str)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cpu or auto")
    parser.add_argument("--iterations", type=int, default=20, help="pair steps at 224x224")
    parser.add_argument("--out", type=Path, help="keep the summary here as JSON")
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = SIZES["cuda" if device.type == "cuda" else "cpu"]
    model, _ = ModelRef.parse("paper").load(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    summary: dict[str, Any] = {"device": f"{device} ({name})", "torch": torch.__version__}
    started = time.perf_counter()
    _step("cuda_tests", summary, lambda: _tests(timeout=300))
    _step("attack_speed", summary, lambda: _attack_speed(model, sizes["samples"], device))
    _step("campaign", summary, lambda: _campaign(model, sizes["campaign"]))
    _step("input_224", summary, lambda: _large_input(args.iterations, device, timeout=180))
    summary["total_seconds"] = time.perf_counter() - started
    print(f"\nGPU check on {summary['device']}, torch {summary['torch']}")
    speed, campaign, large = summary["attack_speed"], summary["campaign"], summary["input_224"]
    tests = summary["cuda_tests"]
    print(
        f"  CUDA tests: {tests.get('passed', 0)} passed, {tests.get('skipped', 0)} skipped, "
        f"{tests.get('failed', 0)} failed"
    )
    if "failed" not in speed:
        print(
            f"  attack: {speed['ms_per_attack_batch_100']:.2f} ms per attack at batch 100, "
            f"{speed['ms_per_attack_batch_900']:.2f} at 900 ({speed['attacks']} attacks); "
            f"paper's 270,000 projected: {speed['paper_minutes_projected']:.1f} min"
        )
    if "failed" not in campaign:
        print(
            f"  campaign: {campaign['attacks']} attacks in {campaign['wall_seconds']:.1f} s, "
            f"success {campaign['success_rate']:.2%}; paper's 270,000 projected: "
            f"{campaign['paper_minutes_projected']:.1f} min"
        )
    if "failed" not in large:
        print(
            f"  224x224 ({large.get('model', 'small CNN')}): "
            f"{large['seconds_per_iteration'] * 1e3:.0f} ms per pair step"
        )
    failed = [
        key for key, value in summary.items() if isinstance(value, dict) and "failed" in value
    ]
    print(f"  total {summary['total_seconds']:.0f} s; failed steps: {', '.join(failed) or 'none'}")
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2, default=str))
    return 1 if failed or tests.get("failed") or tests.get("exit_code") not in (0, 5) else 0


if __name__ == "__main__":
    raise SystemExit(main())
