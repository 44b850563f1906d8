"""`jsma attack`: one sample, one target (or all, or none), printed and drawn."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import (
    Commands,
    attack_options,
    data_options,
    dataset,
    model,
    model_options,
    non_negative_int,
    output_file,
)
from jsma.errors import JSMAError
from jsma.settings import SPLIT_NAMES

if TYPE_CHECKING:
    from jsma.attacks import AttackResult

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `attack` command to the parser."""
    parser = commands.add_parser(
        "attack", help="attack one sample and draw it (one target, all targets, or untargeted)"
    )
    data_options(parser)
    model_options(parser)
    parser.add_argument("--split", choices=SPLIT_NAMES, default="test", help="the split to attack")
    parser.add_argument(
        "--index", type=non_negative_int, default=0, help="sample index in the split"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--target", type=non_negative_int, help="target class (default: untargeted)")
    which.add_argument(
        "--all-targets", action="store_true", help="craft towards every other class (Figure 1)"
    )
    attack_options(parser)
    parser.add_argument("--out", type=output_file, help="PNG path (default: in this directory)")
    parser.set_defaults(handler=_attack)


def _print(result: AttackResult) -> None:
    for sample in result.samples():
        target = "untargeted" if sample.target is None else f"target {sample.target}"
        outcome = "success" if sample.success else f"failure ({sample.stop_reason.name.lower()})"
        print(
            f"source {sample.source} -> {target}: {outcome}, "
            f"{sample.iterations} iterations, {sample.features_changed} features "
            f"({sample.distortion:.2f}%), L2 {sample.l2:.2f}, "
            f"predicted {sample.prediction} ({sample.probability:.1%})"
        )


def _attack(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from jsma.attacks import JSMA, all_other_targets
    from jsma.plotting import attack_figure, save_figure, targets_figure

    data = dataset(args)
    split = data.split(args.split)
    if not 0 <= args.index < len(split):
        raise JSMAError(
            f"--index {args.index} is outside the {args.split} split (0 to {len(split) - 1})"
        )
    if args.target is not None and args.target >= data.num_classes:
        raise JSMAError(
            f"--target {args.target} is not a class of the data (0 to {data.num_classes - 1})"
        )
    image, label = split.tensors(np.array([args.index]))
    config = JSMA(
        theta=args.theta,
        max_distortion=args.max_distortion,
        variant=args.variant,
        output=args.output,
        clip_min=data.bounds[0],
        clip_max=data.bounds[1],
    )
    network = model(args, data).model
    name = f"attack-{args.split}-{args.index}"
    if args.all_targets:
        images, sources, targets = all_other_targets(image, label, data.num_classes)
        result = config(network, images, targets, sources=sources)
        figure = targets_figure(image[0], result, bounds=data.bounds)
        name += "-all-targets"
    else:
        chosen = None if args.target is None else torch.tensor([args.target])
        result = config(network, image, chosen, sources=label)
        with torch.no_grad():
            probabilities = network(image).softmax(dim=1)[0]
        predicted = int(probabilities.argmax())
        figure = attack_figure(
            image,
            result,
            original_prediction=(predicted, float(probabilities[predicted])),
            bounds=data.bounds,
        )
        name += "-untargeted" if args.target is None else f"-to-{args.target}"
    _print(result)
    out = save_figure(figure, args.out or Path(f"{name}.png"))
    print(f"figure: {out}")
    return 0
