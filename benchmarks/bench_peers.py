"""jsma beside the JSMA of the libraries a user would pick instead, in one run.

Runs in the peers' own environment (torchattacks, IBM ART), so that their pins
never reach jsma's: `scripts/bench-env` makes `.venv-bench`.

    .venv-bench/bin/python benchmarks/bench_peers.py [--samples 100] [--repeats 3]

The same model (the `paper` LeNet), the same first test samples each towards
(label + 1) mod 10 (torchattacks' own default target), theta = +1, a budget
of 14.5% of the features, warm processes (one untimed call first), batches
of 100 where the library batches. Prints milliseconds per attack (median of
--repeats), the success rate (the model outputs the target), the mean share
of features changed by the successes, and each library's time over jsma's.
torchattacks and ART attack the logits; jsma is shown on both outputs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from jsma.attacks import JSMA
from jsma.data import default_cache_dir, load_mnist
from jsma.models._training import cached_model

Run = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Row(NamedTuple):
    name: str
    ms_per_attack: float
    success: float
    distortion: float


def measure(
    name: str,
    run: Run,
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    repeats: int,
) -> Row:
    run(x[:2], labels[:2], targets[:2])  # warm: lazy imports and first-call set-up
    seconds, adversarial = [], x
    for _ in range(repeats):
        start = time.perf_counter()
        adversarial = run(x, labels, targets)
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        success = model(adversarial).argmax(1) == targets
    changed = (adversarial != x).flatten(1).float().mean(1) * 100
    return Row(
        name,
        statistics.median(seconds) / len(x) * 1e3,
        float(success.float().mean()),
        float(changed[success].mean()) if bool(success.any()) else float("nan"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipe", default="paper")
    args = parser.parse_args()

    import torchattacks
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    data = load_mnist()
    model = cached_model(data, default_cache_dir(), args.recipe).model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x, labels = data.test.tensors(slice(0, args.samples))
    targets = (labels + 1) % data.num_classes

    def ours(output: str) -> Run:
        attack = JSMA(theta=1.0, max_distortion=0.145, output=output)  # type: ignore[arg-type]
        return lambda xs, ls, ts: attack(model, xs, ts, sources=ls).adversarial

    def theirs_torchattacks(xs: torch.Tensor, ls: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        # Its default target is (label + 1) % 10: the same targets, no mode to set.
        return torchattacks.JSMA(model, theta=1.0, gamma=0.145)(xs, ls)

    classifier = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(data.input_shape),
        nb_classes=data.num_classes,
        clip_values=data.bounds,
    )
    art_attack = SaliencyMapMethod(
        classifier, theta=1.0, gamma=0.145, batch_size=100, verbose=False
    )

    def theirs_art(xs: torch.Tensor, ls: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        one_hot = np.eye(data.num_classes, dtype=np.float32)[ts.numpy()]
        return torch.from_numpy(art_attack.generate(xs.numpy(), y=one_hot))

    rows = [
        measure(name, run, model, x, labels, targets, args.repeats)
        for name, run in (
            ("jsma, logits", ours("logits")),
            ("jsma, probabilities", ours("probabilities")),
            ("IBM ART SaliencyMapMethod", theirs_art),
            ("torchattacks JSMA", theirs_torchattacks),
        )
    ]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.samples} test "
        f"samples of the {args.recipe!r} LeNet, each towards (label + 1) mod 10"
    )
    print(f"{'library':<27} {'ms/attack':>10} {'success':>8} {'distortion':>11} {'x jsma':>7}")
    reference = rows[0].ms_per_attack
    for row in rows:
        print(
            f"{row.name:<27} {row.ms_per_attack:>10.1f} {row.success:>8.1%} "
            f"{row.distortion:>10.2f}% {row.ms_per_attack / reference:>7.1f}"
        )


if __name__ == "__main__":
    main()
