"""Does the paper model's training length explain the last point of success?

Trains the `paper` recipe (tanh, SGD 0.1, batches of 500) for --epochs,
keeping snapshots at the --snapshots epochs (the constant learning rate and
the per-epoch shuffles make a snapshot at epoch 30 the `paper` recipe's own
30-epoch model, which it checks when that model is cached), then attacks each
snapshot with the increasing variant on its softmax probabilities (Upsilon =
14.5%) on the first --samples test samples, and prints accuracy beside
success and distortion. Campaigns and snapshots are kept in --out and reused:

    .venv/bin/python benchmarks/bench_training_length.py --epochs 100 --out runs/length

(`--threads 1` leaves a core free for other work, at about twice the time.)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from jsma.campaign import AttackSettings, Campaign, CampaignSpec
from jsma.data import default_cache_dir, load_mnist
from jsma.models import evaluate, load_checkpoint, save_checkpoint, train
from jsma.models._training import EpochRecord, cached_model_path
from jsma.report import summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--snapshots", type=int, nargs="+", default=[30, 60, 100, 150])
    parser.add_argument("--samples", type=int, default=1000, help="first N test samples (x 9)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist()
    snapshots = sorted(e for e in set(args.snapshots) if e <= args.epochs)
    paths = {epoch: args.out / f"paper-epoch{epoch:03d}.safetensors" for epoch in snapshots}

    if not all(path.is_file() for path in paths.values()):
        states: dict[int, dict[str, torch.Tensor]] = {}

        def keep(record: EpochRecord, model: nn.Module) -> None:
            if record.epoch in paths:
                states[record.epoch] = copy.deepcopy(model.state_dict())

        started = time.perf_counter()
        result = train(data, "paper", seed=0, epochs=args.epochs, progress=True, on_epoch=keep)
        print(f"trained {args.epochs} epochs in {time.perf_counter() - started:.0f} s")
        for epoch, state in states.items():
            model = copy.deepcopy(result.model)
            model.load_state_dict(state)
            model.eval()
            accuracies: dict[str, float] = {
                split.name: evaluate(model, split, data.num_classes).accuracy
                for split in (data.validation, data.test)
            }
            info = dataclasses.replace(
                result.info,
                recipe={**result.info.recipe, "epochs": epoch},
                accuracies=accuracies,
            )
            save_checkpoint(paths[epoch], model, info)

    standard = cached_model_path(default_cache_dir(), "paper")
    if 30 in paths and standard.is_file():
        ours = load_checkpoint(paths[30]).model.state_dict()
        theirs = load_checkpoint(standard).model.state_dict()
        same = all(torch.equal(ours[k], theirs[k]) for k in ours)
        print(f"snapshot at epoch 30 identical to `jsma train --recipe paper`: {same}")

    spec = CampaignSpec(
        splits=("test",),
        samples=args.samples,
        attack=AttackSettings(theta=1.0, output="probabilities"),
    )
    print(f"\nincreasing, probabilities, first {args.samples} test samples x 9 targets")
    print(f"{'epochs':>7} {'validation':>11} {'test':>7} {'success':>8} {'dist. succ.':>12}")
    for epoch, path in paths.items():
        loaded = load_checkpoint(path)
        directory = args.out / f"epoch{epoch:03d}-increasing-probabilities"
        Campaign.run(directory, spec, loaded.model, data, progress=True)
        line = summarise(directory).results[-1]
        print(
            f"{epoch:>7} {loaded.info.accuracies['validation']:>11.2%} "
            f"{loaded.info.accuracies['test']:>7.2%} {line.success_rate:>8.2%} "
            f"{line.mean_distortion_success:>11.2f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
