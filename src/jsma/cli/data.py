"""`jsma data info`, `jsma train`, `jsma eval`: the data and the models."""

from __future__ import annotations

import argparse

from jsma.cli._common import attacked_model, cache_dir, dataset, print_evaluation
from jsma.cli._options import Commands, data_options, model_options, output_file, positive_int
from jsma.errors import JSMAError
from jsma.settings import RECIPE_NAMES, SPLIT_NAMES

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `data info`, `train` and `eval` commands to the parser."""
    data = commands.add_parser("data", help="inspect the data")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    info = data_commands.add_parser("info", help="source, cache path, per-split counts and classes")
    data_options(info)
    info.set_defaults(handler=_data_info)

    train = commands.add_parser("train", help="train the paper's LeNet (or an MLP)")
    data_options(train)
    train.add_argument(
        "--recipe", choices=sorted(RECIPE_NAMES), default="default",
        help="default (ReLU, Adam) or paper (tanh, SGD: the paper's LeNet)",
    )  # fmt: skip
    train.add_argument(
        "--architecture", choices=("lenet", "mlp"), default="lenet",
        help="lenet (default), or mlp (two hidden layers of 256; needs --out)",
    )  # fmt: skip
    train.add_argument("--epochs", type=positive_int, help="override the recipe's epoch count")
    train.add_argument("--seed", type=int, default=0, help="seed of the initial weights and order")
    train.add_argument(
        "--out",
        type=output_file,
        help="checkpoint path (default: the model cache, keyed by recipe; needed for data "
        "other than MNIST)",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("eval", help="accuracy per split and confusion matrix")
    data_options(evaluate)
    model_options(evaluate)
    evaluate.add_argument(
        "--split", choices=(*SPLIT_NAMES, "all"), default="all", help="the split to evaluate"
    )
    evaluate.set_defaults(handler=_eval)


def _data_info(args: argparse.Namespace) -> int:
    data = dataset(args, quiet=True)
    print(f"source:      {data.source}")
    print(f"cache:       {cache_dir(args)}")
    print(f"input shape: {data.input_shape}, classes: {data.num_classes}")
    print(f"bounds:      [{data.bounds[0]:g}, {data.bounds[1]:g}]")
    if data.class_names is not None:
        print(f"class names: {', '.join(data.class_names)}")
    for note in data.notes:
        print(f"note:        {note}")
    header = "".join(f"{c:>7}" for c in range(data.num_classes))
    print(f"\n{'split':>10} {'count':>7}{header}")
    for split in data.splits():
        counts = "".join(f"{n:>7}" for n in split.class_counts(data.num_classes))
        print(f"{split.name:>10} {len(split):>7}{counts}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from jsma.models import save_checkpoint, train
    from jsma.models._training import cached_model_path

    if args.architecture != "lenet" and args.out is None:
        raise JSMAError("--architecture mlp needs --out (the model cache keeps LeNets)")
    data = dataset(args)
    if args.out is None and data.location != "mnist":
        raise JSMAError(f"{data.source} is not MNIST: give --out (the model cache keeps MNIST's)")
    result = train(
        data, args.recipe, seed=args.seed, epochs=args.epochs, architecture=args.architecture,
        progress=True,
    )  # fmt: skip
    out = args.out or cached_model_path(cache_dir(args), args.recipe, args.seed)
    save_checkpoint(out, result.model, result.info)
    print(f"trained a {args.architecture} with recipe {args.recipe!r} in {result.seconds:.0f} s")
    for name, accuracy in result.info.accuracies.items():
        print(f"{name:>10}: accuracy {accuracy:.2%}")
    print(f"checkpoint: {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from jsma.models import evaluate

    data = dataset(args)
    network, _ = attacked_model(args, data)
    splits = data.splits() if args.split == "all" else (data.split(args.split),)
    evaluations = [evaluate(network, split, data.num_classes) for split in splits if len(split)]
    for evaluation in evaluations:
        print_evaluation(evaluation)
    last = evaluations[-1]
    classes = len(last.confusion)
    print(f"\nconfusion matrix on {last.split} (rows: true class, columns: predicted)")
    print("      " + "".join(f"{c:>6}" for c in range(classes)))
    for true_class, row in enumerate(last.confusion):
        print(f"{true_class:>6}" + "".join(f"{count:>6}" for count in row))
    return 0
