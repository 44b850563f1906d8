"""JSMA among today's sparse (L0) attacks: the same model, the same samples, one run.

Runs in the peers' environment (`scripts/bench-env` makes `.venv-bench`):

    .venv-bench/bin/python benchmarks/bench_sparse.py [--samples 100] [--models paper]

On the first --samples test samples that each model classifies correctly, every
attack runs once, untargeted and, where it has the mode, towards (label + 1) mod 10.
An attack's result counts only where the model, checked here, gives another class
(untargeted) or the target, with every value inside [0, 1]; its L0 is then the
number of input elements that differ at all (on MNIST, one channel: pixels), and
infinite where it failed. Printed per attack:

- robust accuracy at k = 5, 10, 20 and 50 changed elements (the share of samples the
  attack did not break with at most k), and the median smallest L0;
- AttackBench's optimality (Cinà et al. 2024; their `analysis/utils.py`): 1 - (A - A*)
  / (d* - A*), where A is the area under the attack's robust-accuracy curve up to d*,
  the largest of the per-sample best L0 over all attacks of the table, A* that of the
  per-sample best; 1 is the best found. The curves are step functions of an integer
  L0, so the areas are their exact sums (AttackBench uses the trapezoid over the
  distinct distances);
- milliseconds per sample (wall time of the batch).

The attacks: jsma's JSMA (pairs, probabilities and logits), WJSMA, TJSMA and M-JSMA
with a budget of 50% of the features (an attack stops at its first success, so its
L0 is its smallest); sigma-zero (untargeted only, as adv-lib has it) and FMN-L0 with
1,000 steps (--steps) and VFGA, from adv-lib 0.2.8, with their defaults otherwise;
SparseFool from torchattacks (untargeted only); the JSMA of IBM ART and of torchattacks
(targeted only, gamma 0.5).
Writes the robust-accuracy curves to --out/sparse-<model>.png.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _torchvision import import_torchvision
from torch import nn

from jsma.attacks import JSMA
from jsma.data import load_mnist
from jsma.models import load_checkpoint, pretrained

Attack = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
BUDGETS = (5, 10, 20, 50)


@dataclass
class Outcome:
    name: str
    targeted: bool
    l0: np.ndarray  # per sample, inf where the attack failed
    seconds: float


def _adv_lib() -> types.ModuleType:
    # adv-lib's package imports its visdom logger, and visdom is not installed (see
    # benchmarks/peers.txt): a stand-in module lets the attacks import; they never log.
    sys.modules.setdefault("visdom", types.ModuleType("visdom"))
    import_torchvision()  # adv-lib imports it (for LPIPS, which no attack here uses)
    import adv_lib.attacks

    return adv_lib.attacks


def attacks(model: nn.Module, classes: int, steps: int) -> dict[tuple[str, bool], Attack]:
    """(name, targeted) -> a function of (x, labels, targets or None) -> adversarial x."""
    import torchattacks
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    adv = _adv_lib()
    found: dict[tuple[str, bool], Attack] = {}

    def ours(name: str, **settings: object) -> None:
        attack = JSMA(theta=1.0, max_distortion=0.5, **settings)  # type: ignore[arg-type]
        maximal = settings.get("variant") == "maximal"

        def crafted(
            x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
        ) -> torch.Tensor:
            return attack(model, x, targets, sources=labels).adversarial

        for targeted in (False,) if maximal else (False, True):
            found[(name, targeted)] = crafted

    ours("jsma JSMA, probabilities", output="probabilities")
    ours("jsma JSMA, logits", output="logits")
    ours("jsma WJSMA", saliency="wjsma")
    ours("jsma TJSMA", saliency="tjsma")
    ours("jsma M-JSMA", variant="maximal")
    # adv-lib's sigma-zero is untargeted only (targeted, it returns the inputs).
    found[("adv-lib sigma-zero", False)] = lambda x, labels, targets: adv.sigma_zero(
        model, x, labels, num_steps=steps
    )
    for targeted in (False, True):

        def fmn(x, labels, targets, t=targeted):  # type: ignore[no-untyped-def]
            goal = targets if t else labels
            return adv.fmn(model, x, goal, norm=0, steps=steps, targeted=t)

        def vfga(x, labels, targets, t=targeted):  # type: ignore[no-untyped-def]
            return adv.vfga(model, x, targets if t else labels, targeted=t)

        found[("adv-lib FMN-L0", targeted)] = fmn
        found[("adv-lib VFGA", targeted)] = vfga
    sparsefool = torchattacks.SparseFool(model)
    found[("torchattacks SparseFool", False)] = lambda x, labels, targets: sparsefool(x, labels)
    # torchattacks' JSMA targets (label + 1) mod 10 by default: our targets.
    ta_jsma = torchattacks.JSMA(model, theta=1.0, gamma=0.5)
    found[("torchattacks JSMA", True)] = lambda x, labels, targets: ta_jsma(x, labels)
    classifier = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=classes,
        clip_values=(0.0, 1.0),
    )
    art = SaliencyMapMethod(classifier, theta=1.0, gamma=0.5, batch_size=100, verbose=False)

    def art_jsma(x, labels, targets):  # type: ignore[no-untyped-def]
        one_hot = np.eye(classes, dtype=np.float32)[targets.numpy()]
        return torch.from_numpy(art.generate(x.numpy(), y=one_hot))

    found[("IBM ART JSMA", True)] = art_jsma
    return found


def l0_of(
    model: nn.Module,
    x: torch.Tensor,
    adversarial: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
) -> np.ndarray:
    """Changed elements per sample where the attack truly succeeded, else inf."""
    adversarial = adversarial.detach().to(x.dtype).reshape(x.shape)
    with torch.no_grad():
        predicted = model(adversarial).argmax(1)
    success = predicted != labels if targets is None else predicted == targets
    inside = ((adversarial >= 0) & (adversarial <= 1)).flatten(1).all(1)
    changed = (adversarial != x).flatten(1).sum(1).double()
    return torch.where(success & inside, changed, math.inf).numpy()


def robust_accuracy(l0: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Share of samples not broken with at most k changed elements, for each k."""
    return (l0[None, :] > budgets[:, None]).mean(axis=1)


def optimality(l0: np.ndarray, best: np.ndarray) -> float:
    """AttackBench's optimality of one attack against the per-sample best (see above)."""
    finite = best[np.isfinite(best)]
    if not len(finite):
        return math.nan
    largest = int(finite.max())
    steps = np.arange(largest)  # the area of a step function of k in [0, largest)
    area_best = robust_accuracy(np.minimum(best, largest), steps).sum()
    area = robust_accuracy(np.minimum(l0, largest), steps).sum()
    room = largest - area_best
    return 1.0 if room == 0 else float(1 - (area - area_best) / room)


# Attacks that take seconds per sample run on the first --slow-samples samples only.
SLOW = ("torchattacks SparseFool",)


def run(
    name: str, model: nn.Module, samples: int, slow_samples: int, steps: int, out: Path
) -> list[Outcome]:
    data = load_mnist()
    x, labels = data.test.tensors(slice(0, samples * 2))
    with torch.no_grad():
        right = model(x).argmax(1) == labels
    x, labels = x[right][:samples], labels[right][:samples]
    targets = (labels + 1) % data.num_classes
    outcomes = []
    for (attack_name, targeted), attack in attacks(model, data.num_classes, steps).items():
        count = min(slow_samples, len(x)) if attack_name in SLOW else len(x)
        goal = targets[:count] if targeted else None
        started = time.perf_counter()
        adversarial = attack(x[:count].clone(), labels[:count], goal)
        seconds = time.perf_counter() - started
        l0 = np.full(len(x), np.nan)  # NaN: not attacked
        l0[:count] = l0_of(model, x[:count], adversarial, labels[:count], goal)
        outcomes.append(Outcome(attack_name, targeted, l0, seconds))
        print(f"  {attack_name} ({'targeted' if targeted else 'untargeted'}): {seconds:.1f} s")
    _print(name, len(x), outcomes)
    _figure(name, outcomes, out / f"sparse-{name}.png")
    return outcomes


def _print(name: str, count: int, outcomes: list[Outcome]) -> None:
    print(f"\n{name} model, {count} correctly classified test samples, L0 in elements (pixels)")
    for targeted in (False, True):
        rows = [o for o in outcomes if o.targeted == targeted]
        best = np.fmin.reduce(np.stack([o.l0 for o in rows]), axis=0)  # NaN: not attacked
        print(f"\n{'targeted, (label + 1) mod 10' if targeted else 'untargeted'}")
        columns = " ".join(f"{f'RA@{k}':>7}" for k in BUDGETS)
        print(f"{'attack':<34} {columns} {'median L0':>9} {'optimality':>10} {'ms/sample':>9}")
        for outcome in [*rows, Outcome("per-sample best", targeted, best, math.nan)]:
            attacked = ~np.isnan(outcome.l0)
            l0 = outcome.l0[attacked]
            accuracy = robust_accuracy(l0, np.array(BUDGETS))
            label = outcome.name
            if attacked.sum() < count:
                label += f" (first {attacked.sum()})"
            print(
                f"{label:<34} "
                + " ".join(f"{value:>7.1%}" for value in accuracy)
                + f" {np.median(l0):>9.0f} {optimality(l0, best[attacked]):>10.3f} "
                f"{outcome.seconds / attacked.sum() * 1e3:>9.1f}"
            )


def _figure(name: str, outcomes: list[Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    budgets = np.arange(0, 61)
    for axis, targeted in zip(axes, (False, True), strict=True):
        for outcome in (o for o in outcomes if o.targeted == targeted):
            style = "-" if outcome.name.startswith("jsma") else "--"
            l0 = outcome.l0[~np.isnan(outcome.l0)]
            axis.plot(budgets, robust_accuracy(l0, budgets) * 100, style, label=outcome.name)
        axis.set_title(f"{name}: {'targeted' if targeted else 'untargeted'}")
        axis.set_xlabel("changed pixels k")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel("robust accuracy (%)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["paper"],
        help="'paper', 'default' (the shipped LeNets) or NAME=CHECKPOINT",
    )
    parser.add_argument(
        "--slow-samples", type=int, default=10, help="samples for SparseFool (seconds each)"
    )
    parser.add_argument(
        "--steps", type=int, default=1000, help="steps of sigma-zero and FMN (AttackBench: 1000)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/sparse"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for entry in args.models:
        name, _, path = entry.partition("=")
        model = (load_checkpoint(Path(path)) if path else pretrained(name)).model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        run(name, model, args.samples, args.slow_samples, args.steps, args.out)


if __name__ == "__main__":
    main()
