"""`jsma transfer`: a campaign's adversarial samples given to other models."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import cache_dir, campaign_data
from jsma.cli._options import Commands, campaign_location, data_options, output_directory
from jsma.errors import JSMAError
from jsma.settings import RECIPE_NAMES

if TYPE_CHECKING:
    from torch import nn

    from jsma.data import Dataset
    from jsma.transfer import TransferResult

__all__ = ["register"]

_MODELS_HELP = (
    "models to evaluate on, each [NAME=]WHAT: a recipe of the model cache "
    f"({', '.join(sorted(RECIPE_NAMES))}), a checkpoint file, a torch.export program "
    "(.pt2) or TorchScript file, a builder package.module:callable(key=value, ...)@WEIGHTS, or a "
    "`jsma defend` output directory (adv-train: DIR; distill: DIR/T100)"
)


def register(commands: Commands) -> None:
    """Add the `transfer` command to the parser."""
    parser = commands.add_parser(
        "transfer", help="give campaigns' adversarial samples to other models (transferability)"
    )
    parser.add_argument(
        "campaigns", type=campaign_location, nargs="+", metavar="CAMPAIGN",
        help="campaigns whose successful samples are transferred (directories or URIs)",
    )  # fmt: skip
    parser.add_argument("--models", nargs="+", required=True, metavar="MODEL", help=_MODELS_HELP)
    parser.add_argument(
        "--out", type=output_directory, help="store transfer.json and transfer.png here"
    )
    parser.add_argument(
        "--buckets", type=float, nargs="+", metavar="PERCENT",
        help="distortion bucket edges in percent (default: 0 2 4 6 10 100)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="cpu", metavar="cpu|cuda|auto",
        help="where the models run (default cpu; auto: CUDA when there is one)",
    )  # fmt: skip
    parser.add_argument(
        "--normalize", action="append", default=[], metavar="NAME=MEAN[,MEAN...]",
        help="the input normalisation of the model called NAME in --models (one mean per "
        "channel, or one for all), with --std NAME=STD[,STD...]; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--std", action="append", default=[], metavar="NAME=STD[,STD...]",
        help="with --normalize NAME=...",
    )  # fmt: skip
    data_options(parser)
    parser.set_defaults(handler=_transfer)


def _named(what: str) -> tuple[str, str]:
    """`[NAME=]WHAT` as (NAME or "", WHAT). Paths may hold `=` too (`runs/theta=1/m.pt`),
    and names (`T=100=DIR`) and builders' arguments (`m:f(k=1)`) may: WHAT is the longest
    tail that names a model."""

    from jsma.models import ModelRef

    known = ModelRef.is_reference
    if known(what):
        return "", what
    for index, char in enumerate(what):
        if char == "=" and known(what[index + 1 :]):
            return what[:index], what[index + 1 :]
    name, _, where = what.rpartition("=")  # nothing exists: the error will name WHAT
    return name, where


def _model(
    what: str, data: Dataset, args: argparse.Namespace, normalised: _Normalisations
) -> tuple[str, nn.Module]:
    """The model `what` names, on `--device`, and its name in the tables."""
    from jsma.models import ModelRef

    name, where = _named(what)
    mean, std = normalised.get(name, ([], []))
    try:
        reference = ModelRef.parse(where, mean=mean, std=std)
        model, _ = reference.load(args.device, data=data, cache_dir=cache_dir(args), progress=True)
    except JSMAError as error:
        raise JSMAError(f"--models {what}: {error}") from None
    if name:
        return name, model
    if reference.form == "recipe":
        return f"{where} LeNet", model
    if reference.form == "builder":
        return reference.architecture, model
    return Path(where).name if Path(where).is_dir() else Path(where).stem, model


_Normalisations = dict[str, tuple[list[float], list[float]]]


def _normalisations(args: argparse.Namespace) -> _Normalisations:
    """`--normalize NAME=...` and `--std NAME=...` as {NAME: (means, stds)}."""

    def parsed(option: str, values: list[str]) -> dict[str, list[float]]:
        found = {}
        for text in values:
            name, equals, numbers = text.partition("=")
            try:
                found[name] = [float(v) for v in numbers.split(",")]
            except ValueError:
                found[name] = []
            if not equals or not name or not found[name]:
                raise JSMAError(f"--{option} takes NAME=VALUE[,VALUE...], got {text!r}")
        return found

    means, stds = parsed("normalize", args.normalize), parsed("std", args.std)
    if means.keys() != stds.keys():
        raise JSMAError("each --normalize NAME=... needs its --std NAME=... (and back)")
    return {name: (means[name], stds[name]) for name in means}


def _campaign_name(where: str | Path) -> str:
    from jsma.campaign import Campaign

    campaign = Campaign.open(where)
    folder, model = campaign.folder, campaign.manifest.model
    made = model.recipe or (Path(model.checkpoint).stem if model.checkpoint else model.architecture)
    return f"{folder.name} ({made})"


def _print(result: TransferResult) -> None:
    def cell(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1%}"

    width = max(len(name) for name in result.evaluated_on) + 2
    measures = (("as_target", "classified as the target"), ("misclassified", "misclassified"))
    for measure, title in measures:
        print(f"\n{title} (rows: crafted on; all samples)")
        print(" " * 34 + "".join(f"{name:>{width}}" for name in result.evaluated_on))
        for crafted, values in zip(result.crafted_on, result.matrix(measure), strict=True):
            print(f"{crafted[:32]:<34}" + "".join(f"{cell(v):>{width}}" for v in values))
    print("\nbenign accuracy on the same samples' originals")
    first = result.crafted_on[0]
    rows = [row for row in result.rows if row.crafted_on == first]
    print(" " * 34 + "".join(f"{cell(row.benign_accuracy):>{width}}" for row in rows))
    # A model far below the others is most often fed inputs it was not trained on.
    best = max((row.benign_accuracy for row in rows if not math.isnan(row.benign_accuracy)),
               default=math.nan)  # fmt: skip
    for row in rows:
        if row.benign_accuracy < best - 0.1:
            print(
                f"warning: {row.evaluated_on} classifies {row.benign_accuracy:.1%} of the "
                f"originals correctly, against {best:.1%} for the best: does it normalise its "
                f"inputs? (--normalize {row.evaluated_on}=... --std {row.evaluated_on}=...)"
            )
    for crafted, counts in result.counts.items():
        print(f"\n{crafted}: {counts[-1]} samples; by distortion bucket: {list(counts[:-1])}")


def _transfer(args: argparse.Namespace) -> int:
    from jsma.plotting import save_figure
    from jsma.transfer import transfer, transfer_figure, write_transfer
    from jsma.transfer._transfer import DEFAULT_BUCKETS

    normalised = _normalisations(args)
    data = campaign_data(args, args.campaigns[0])
    models = dict(_model(what, data, args, normalised) for what in args.models)
    if len(models) != len(args.models):
        raise JSMAError("two models have the same name; name them: --models NAME=WHAT ...")
    if unknown := sorted(normalised.keys() - models.keys()):
        raise JSMAError(f"--normalize names {', '.join(unknown)}, not a model of --models")
    campaigns = {_campaign_name(where): where for where in args.campaigns}
    buckets = tuple(args.buckets) if args.buckets else DEFAULT_BUCKETS
    result = transfer(campaigns, models, data, buckets=buckets)
    _print(result)
    if args.out is not None:
        path = write_transfer(args.out, result)
        figure = save_figure(transfer_figure(result), args.out / "transfer.png")
        print(f"\nresult:  {path}\nfigure:  {figure}")
    return 0
