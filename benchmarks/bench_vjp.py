"""Ways to get the logits path's two vector-Jacobian products, side by side.

Run on demand (needs the shipped `paper` LeNet and MNIST):

    .venv/bin/python benchmarks/bench_vjp.py [--rows 256] [--threads 1] [--repeats 7]

JSMA on the logits needs, per step, alpha = dZ_t/dx and beta = d(sum of the other
Z_j)/dx. `jsma.attacks.target_derivatives` takes two backward passes through one
forward pass. This prints the median time per batch of `--rows` test images of
three ways, measured interleaved in one run, their ratio to the first, and the
largest difference of their results:

- two: two `torch.autograd.grad` calls (what the attack does, in its channels-last
  layout, which all three use);
- batched: one call with both cotangents stacked, `is_grads_batched=True` (vmap);
- doubled: one forward and one backward of the batch twice over, each half
  differentiating one of the two sums;
- compiled (with `--compile`): the two passes through `torch.compile(model)` (its
  compile time printed apart).
"""

from __future__ import annotations

import argparse
import statistics
import time
import typing
from collections.abc import Callable

import torch
from torch import nn

import jsma
from jsma.attacks._derivatives import _channels_last  # the attack's input layout

Way = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _masks(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(targets, outputs.shape[1]).to(outputs.dtype)


def two(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = _channels_last(x.detach()).requires_grad_(True)
    outputs = model(inputs)
    mask = _masks(outputs, t)
    (alpha,) = torch.autograd.grad((outputs * mask).sum(), inputs, retain_graph=True)
    (beta,) = torch.autograd.grad((outputs * (1 - mask)).sum(), inputs)
    return alpha, beta


def batched(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = _channels_last(x.detach()).requires_grad_(True)
    outputs = model(inputs)
    mask = _masks(outputs, t)
    cotangents = torch.stack([mask, 1 - mask])
    (both,) = torch.autograd.grad(outputs, inputs, cotangents, is_grads_batched=True)
    return both[0], both[1]


def doubled(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = _channels_last(torch.cat([x, x]).detach()).requires_grad_(True)
    outputs = model(inputs)
    n = len(x)
    mask = _masks(outputs[:n], t)
    total = (outputs[:n] * mask).sum() + (outputs[n:] * (1 - mask)).sum()
    (both,) = torch.autograd.grad(total, inputs)
    return both[:n], both[n:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=256, help="images per batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=7, help="timings of each way")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = jsma.pretrained("paper").model.eval().requires_grad_(False)
    images, labels = jsma.load_mnist().test.tensors()
    x, t = images[: args.rows], (labels[: args.rows] + 1) % 10
    ways: dict[str, Way] = {"two": two, "batched": batched, "doubled": doubled}
    if args.compile:
        compiled = typing.cast(nn.Module, torch.compile(model))
        start = time.perf_counter()
        two(compiled, x, t)  # compiles forward and backward
        print(f"torch.compile: {time.perf_counter() - start:.1f} s before the first result")
        ways["compiled"] = lambda _, x, t: two(compiled, x, t)
    reference = two(model, x, t)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):  # interleaved: a busy moment slows every way alike
        for name, way in ways.items():
            start = time.perf_counter()
            way(model, x, t)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["two"])
    print(f"{args.rows} rows, {args.threads} thread(s), medians of {args.repeats}")
    for name, way in ways.items():
        alpha, beta = way(model, x, t)
        difference = max(
            float((alpha - reference[0]).abs().max()), float((beta - reference[1]).abs().max())
        )
        median = statistics.median(times[name])
        print(
            f"{name:8s} {median * 1e3:7.1f} ms  x{median / base:.2f}  "
            f"largest difference {difference:.1e}"
        )


if __name__ == "__main__":
    main()
