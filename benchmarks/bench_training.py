"""How long each training recipe takes on this machine, and what accuracy it reaches.

Run on demand (it trains on the real MNIST data, minutes per recipe):

    .venv/bin/python benchmarks/bench_training.py [--recipes default paper] [--epochs N]

Prints, per recipe: total seconds, median seconds per epoch, validation and
test accuracy, and the ratio of each recipe's time to the default's.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from jsma.data import load_mnist
from jsma.models import TrainingResult, train
from jsma.models._training import RECIPES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", nargs="+", default=["default", "paper"], choices=RECIPES)
    parser.add_argument("--epochs", type=int, help="override every recipe's epoch count")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = load_mnist()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results: dict[str, TrainingResult] = {}
    for name in args.recipes:
        results[name] = train(dataset, name, seed=args.seed, epochs=args.epochs, progress=True)

    columns = ("recipe", "epochs", "total s", "s/epoch", "val acc", "test acc")
    print("\n" + " ".join(f"{column:>8}" for column in columns))
    for name, result in results.items():
        per_epoch = statistics.median(record.seconds for record in result.history)
        print(
            f"{name:>8} {len(result.history):>8} {result.seconds:>8.1f} {per_epoch:>8.1f} "
            f"{result.info.accuracies['validation']:>8.2%} {result.info.accuracies['test']:>8.2%}"
        )
    if "default" in results:
        base = results["default"].seconds
        for name, result in results.items():
            print(f"time ratio {name}/default: {result.seconds / base:.2f}")


if __name__ == "__main__":
    main()
