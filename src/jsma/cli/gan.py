"""`jsma gan train`: a conditional DCGAN on the training split, judged by a classifier."""

from __future__ import annotations

import argparse

from jsma.cli._common import dataset, jsma_model
from jsma.cli._options import (
    Commands,
    count_up_to,
    data_options,
    model_options,
    output_directory,
    positive_int,
)

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `gan train` command to the parser."""
    gan = commands.add_parser("gan", help="a conditional DCGAN that makes fresh digits")
    sub = gan.add_subparsers(dest="gan_command", required=True, metavar="COMMAND")
    train = sub.add_parser(
        "train",
        help="train it (resumably), judge its digits with an independent classifier "
        "(--model: the judge), draw a grid",
        description="Train a class-conditional DCGAN on the training split into DIR "
        "(started again, it continues after the last finished epoch), then judge 10,000 "
        "generated digits with a classifier the GAN never saw: the model options below "
        "name that judge (default: the cached `default` LeNet).",
    )
    train.add_argument(
        "--out", type=output_directory, required=True, metavar="DIR", help="output directory"
    )
    train.add_argument("--epochs", type=positive_int, default=10, help="epochs (default 10)")
    train.add_argument("--seed", type=int, default=0, help="seed of the training")
    train.add_argument(
        "--batch-size", type=count_up_to(65_536), default=64, help="batch size (default 64)"
    )
    train.add_argument(
        "--width",
        type=count_up_to(1024),
        default=32,
        help="channels of the narrowest layer (default 32)",
    )
    train.add_argument(
        "--samples", type=positive_int, default=10_000,
        help="generated digits to judge, and images per side of the Frechet distances",
    )  # fmt: skip
    data_options(train, outside=False)
    model_options(train, outside=False)
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from jsma.gan import GanRecipe, GanSpec, run_gan

    data = dataset(args)
    judge, description = jsma_model(args, data)
    channels, height, width = data.input_shape
    spec = GanSpec((channels, height, width), data.num_classes, data.bounds, width=args.width)
    recipe = GanRecipe(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    name = description.checkpoint or f"recipe {description.recipe}"
    run = run_gan(
        data, judge.model, args.out, recipe, spec=spec, judge_name=name,
        samples=args.samples, progress=True,
    )  # fmt: skip
    quality, gan = run.quality, run.gan
    per_epoch = gan.seconds / len(gan.history)
    print(f"trained:     {len(gan.history)} epochs, {gan.seconds:.0f} s ({per_epoch:.0f} s each)")
    print(f"judge:       {name}")
    print(
        f"generated:   {quality.samples}; labelled as asked {quality.as_asked:.1%}, "
        f"confidently (p >= {quality.threshold:g}) {quality.confident:.1%}, "
        f"both {quality.confident_as_asked:.1%}"
    )
    print(
        f"Frechet distance (judge features): generated vs test {quality.fid_generated_test:.2f}, "
        f"train vs test {quality.fid_train_test:.2f}"
    )
    print(f"generator:   {run.checkpoint}")
    print(f"samples:     {run.figure}")
    return 0
