"""`jsma attack`: one sample, one target (or all, or none), printed and drawn."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import attack_settings, attacked_model, dataset, feature_mask
from jsma.cli._options import (
    Commands,
    attack_options,
    data_options,
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
    parser.add_argument(
        "--out", type=output_file, help="the figure's PNG path (default: in this directory)"
    )
    parser.add_argument(
        "--save", type=output_file, metavar="ADV.npy",
        help="save the adversarial sample(s), (n, *input_shape) float32, to this .npy file",
    )  # fmt: skip
    parser.set_defaults(handler=_attack)


def _print(result: AttackResult, name: Callable[[int], str]) -> None:
    for sample in result.samples():
        target = "untargeted" if sample.target is None else f"target {name(sample.target)}"
        outcome = "success" if sample.success else f"failure ({sample.stop_reason.name.lower()})"
        print(
            f"source {name(sample.source)} -> {target}: {outcome}, "
            f"{sample.iterations} iterations, {sample.features_changed} features "
            f"({sample.distortion:.2f}%), L2 {sample.l2:.2f}, "
            f"predicted {name(sample.prediction)} ({sample.probability:.1%})"
        )


def _attack(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from jsma.attacks import all_other_targets
    from jsma.plotting import attack_figure, save_figure, targets_figure

    if args.variant == "maximal" and (args.target is not None or args.all_targets):
        given = "--target" if args.target is not None else "--all-targets"
        raise JSMAError(f"--variant maximal (M-JSMA) is untargeted: leave out {given}")
    data = dataset(args)
    split = data.split(args.split)
    if not 0 <= args.index < len(split):
        raise JSMAError(
            f"--index {args.index} is outside the {args.split} split "
            + (f"(0 to {len(split) - 1})" if len(split) else "(which is empty)")
        )
    if args.target is not None and args.target >= data.num_classes:
        raise JSMAError(
            f"--target {args.target} is not a class of the data (0 to {data.num_classes - 1})"
        )
    config = attack_settings(args).attack(data.bounds)
    shared_mask = feature_mask(args, tuple(data.input_shape))
    network, _ = attacked_model(args, data)
    device = next(network.parameters()).device
    mask = None if shared_mask is None else shared_mask.tensor(device)
    image, label = split.tensors(np.array([args.index]), device=device)
    name = f"attack-{args.split}-{args.index}"
    if args.all_targets:
        images, sources, targets = all_other_targets(image, label, data.num_classes)
        result = config(network, images, targets, sources=sources, mask=mask)
        name += "-all-targets"
    else:
        chosen = None if args.target is None else torch.tensor([args.target], device=device)
        result = config(network, image, chosen, sources=label, mask=mask)
        name += "-untargeted" if args.target is None else f"-to-{args.target}"
    _print(result, data.class_name)
    if args.save is not None:
        np.save(args.save, result.adversarial.detach().cpu().numpy().astype(np.float32))
        print(f"saved:  {args.save} ({len(result)} adversarial sample(s))")
    if not data.is_images:
        if args.out is not None:
            raise JSMAError("--out draws images; these inputs are feature vectors (use --save)")
        return 0
    if args.all_targets:
        figure = targets_figure(image[0], result, bounds=data.bounds, class_names=data.class_names)
    else:
        with torch.no_grad():
            probabilities = network(image).softmax(dim=1)[0].cpu()
        predicted = int(probabilities.argmax())
        figure = attack_figure(
            image,
            result,
            original_prediction=(predicted, float(probabilities[predicted])),
            bounds=data.bounds,
            class_names=data.class_names,
        )
    out = save_figure(figure, args.out or Path(f"{name}.png"))
    print(f"figure: {out}")
    return 0
