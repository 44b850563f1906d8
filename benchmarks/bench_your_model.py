"""JSMA on a torchvision ResNet-18 (random weights), jsma beside ART and torchattacks.

Runs in the peers' environment (`scripts/bench-env` makes `.venv-bench`, with
torchvision):

    .venv-bench/bin/python benchmarks/bench_your_model.py [--samples 2] [--iterations 10]

Two settings: 3x32x32 inputs with 10 classes (CIFAR-10's shape, 3,072 features)
and 3x224x224 with 1,000 (ImageNet's, 150,528 features). Each sample is attacked
towards two classes (its prediction + 1 and + 2) with theta = +1 and a budget of
`--iterations` steps of two features (so that a run ends in minutes on a CPU:
the budget is stated, not the paper's 14.5%). Each library runs in its own child
process under a memory cap (`--memory-gib`) and a time limit (`--timeout`), so
that peak memory is that process's alone (its maximum resident set) and a
library that runs out of memory or time is reported as such, not crashing the
run. Prints seconds per attack, milliseconds per step of the batch (jsma, whose
steps are known), success, features changed and peak memory.

A pair search over all M x M feature pairs at 224 pixels would hold a float32
matrix of 150,528^2 entries: 84 GiB per sample, the memory jsma's pair search
never materialises.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
from _torchvision import import_torchvision

SETTINGS = {32: 10, 224: 1000}  # side -> classes
LIBRARIES = (
    "jsma, logits",
    "jsma, probabilities",
    "IBM ART SaliencyMapMethod",
    "torchattacks JSMA",
)


def _model_and_inputs(
    side: int, samples: int, device: str
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torchvision = import_torchvision()

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=SETTINGS[side]).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.rand(samples, 3, side, side)
    model, x = model.to(device), x.to(device)
    with torch.no_grad():
        return model, x, model(x).argmax(dim=1)


def child(library: str, side: int, samples: int, iterations: int, device: str) -> dict[str, Any]:
    """One library on one setting, in this (child) process: its figures as a dict."""
    model, x, predicted = _model_and_inputs(side, samples, device)
    classes = SETTINGS[side]
    features = 3 * side * side
    budget = 2 * iterations / features  # `iterations` pair steps
    # Each sample twice: towards its prediction + 1 and + 2.
    inputs = x.repeat_interleave(2, dim=0)
    sources = predicted.repeat_interleave(2)
    targets = (sources + torch.tensor([1, 2], device=device).repeat(samples)) % classes
    steps = None
    start = time.perf_counter()
    if library.startswith("jsma"):
        from jsma.attacks import JSMA

        output = "logits" if "logits" in library else "probabilities"
        attack = JSMA(theta=1.0, max_distortion=budget, output=output)  # type: ignore[arg-type]
        result = attack(model, inputs, targets, sources=sources)
        adversarial = result.adversarial
        steps = int(result.iterations.max())
    elif library.startswith("IBM ART"):
        from art.attacks.evasion import SaliencyMapMethod
        from art.estimators.classification import PyTorchClassifier

        classifier = PyTorchClassifier(
            model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(3, side, side),
            nb_classes=classes, clip_values=(0.0, 1.0),
            device_type="gpu" if device == "cuda" else "cpu",
        )  # fmt: skip
        art = SaliencyMapMethod(
            classifier, theta=1.0, gamma=budget, batch_size=len(inputs), verbose=False
        )
        one_hot = np.eye(classes, dtype=np.float32)[targets.cpu().numpy()]
        adversarial = torch.from_numpy(art.generate(inputs.cpu().numpy(), y=one_hot)).to(device)
    else:
        import torchattacks

        # Its target is (label + 1) % 10 whatever the classes: the first target only
        # where there are 10 classes, and no chosen target for 1,000.
        adversarial = torchattacks.JSMA(model, theta=1.0, gamma=budget)(inputs, sources)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        reached = model(adversarial).argmax(dim=1) == targets
    changed = (adversarial != inputs).flatten(1).sum(dim=1).float()
    return {
        "seconds_per_attack": seconds / len(inputs),
        "ms_per_step": None if steps is None else seconds / steps * 1e3,
        "success": float(reached.float().mean()),
        "features_changed": float(changed.mean()),
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_cuda_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
    }


def run_child(
    library: str,
    side: int,
    samples: int,
    iterations: int,
    memory_gib: float,
    timeout: float,
    device: str,
) -> dict[str, Any]:
    """The figures of `library` on `side`, or what stopped it (memory, time, an error)."""
    command = [
        sys.executable, __file__, "--child", library, str(side), "--samples", str(samples),
        "--iterations", str(iterations), "--memory-gib", str(memory_gib), "--device", device,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode == 0 and last.startswith("{"):
        figures: dict[str, Any] = json.loads(last)
        return figures
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else f"exit {done.returncode}"
    if "can't allocate memory" in message or "MemoryError" in message or done.returncode == -9:
        return {"error": f"out of memory (cap {memory_gib:g} GiB)"}
    return {"error": message[:90]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10, help="pair steps of budget")
    parser.add_argument("--memory-gib", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per library")
    parser.add_argument("--sides", type=int, nargs="+", default=sorted(SETTINGS))
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where there is a GPU")
    parser.add_argument("--child", nargs=2, metavar=("LIBRARY", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.device == "cpu":  # CUDA reserves address space far beyond what it uses
            cap = int(args.memory_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        library, side = args.child
        figures = child(library, int(side), args.samples, args.iterations, args.device)
        print(json.dumps(figures))
        return

    print(
        f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads; "
        "ResNet-18, random "
        f"weights; {args.samples} samples x 2 targets; budget {args.iterations} steps of 2 "
        f"features; memory cap {args.memory_gib:g} GiB, {args.timeout:.0f} s per library"
    )
    header = (
        f"{'input':<12} {'library':<27} {'s/attack':>9} {'ms/step':>8} {'success':>8} "
        f"{'changed':>8} {'peak GiB':>9}"
    )
    for side in args.sides:
        print(f"\n{header}")
        for library in LIBRARIES:
            figures = run_child(
                library,
                side,
                args.samples,
                args.iterations,
                args.memory_gib,
                args.timeout,
                args.device,
            )
            shape = f"3x{side}x{side}"
            if "error" in figures:
                print(f"{shape:<12} {library:<27} {figures['error']}")
                continue
            step = figures["ms_per_step"]
            print(
                f"{shape:<12} {library:<27} {figures['seconds_per_attack']:>9.2f} "
                f"{'-' if step is None else f'{step:.0f}':>8} {figures['success']:>8.0%} "
                f"{figures['features_changed']:>8.1f} {figures['peak_gib']:>9.2f}"
                + (
                    ""
                    if figures["peak_cuda_gib"] is None
                    else f" ({figures['peak_cuda_gib']:.2f} on the GPU)"
                )
            )


if __name__ == "__main__":
    main()
