"""`jsma campaign run|resume|status|export`: resumable attack campaigns."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from jsma.cli._common import (
    attack_settings,
    attacked_model,
    campaign_data,
    dataset,
    engine,
    feature_mask,
    stored_model_refused,
)
from jsma.cli._options import (
    Commands,
    attack_options,
    campaign_location,
    data_options,
    engine_options,
    model_options,
    output_file,
    positive_int,
)
from jsma.errors import JSMAError
from jsma.settings import DEFAULT_UNIT_SIZE, SAMPLE_ORDERS, SPLIT_NAMES, TARGET_RULES

if TYPE_CHECKING:
    from jsma.campaign._status import CampaignStatus

__all__ = ["register"]

_DIR_HELP = "campaign directory, or a storage URI (s3://bucket/prefix, gs://..., file:///...)"


def register(commands: Commands) -> None:
    """Add the `campaign run|resume|status|export` commands to the parser."""
    campaign = commands.add_parser("campaign", help="run, resume and inspect attack campaigns")
    sub = campaign.add_subparsers(dest="campaign_command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="start (or continue) a campaign in DIR")
    run.add_argument("directory", type=campaign_location, metavar="DIR", help=_DIR_HELP)
    data_options(run)
    model_options(run)
    run.add_argument(
        "--splits", nargs="+", choices=SPLIT_NAMES, default=["test"], help="splits to attack"
    )
    run.add_argument("--samples", type=positive_int, help="N samples of each split (default: all)")
    run.add_argument(
        "--order", choices=SAMPLE_ORDERS,
        help="which N samples: the first N, or stratified (the classes in turn, seeded by "
        "--seed; default for data other than MNIST, often stored class by class)",
    )  # fmt: skip
    run.add_argument(
        "--targets",
        choices=TARGET_RULES,
        default=TARGET_RULES[0],
        help="target rule (default: each of the other classes)",
    )
    attack_options(run)
    run.add_argument(
        "--unit-size", type=positive_int, default=DEFAULT_UNIT_SIZE, help="samples per work unit"
    )
    run.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random target rule and the stratified order",
    )
    _weak_model_option(run)
    engine_options(run)
    run.set_defaults(handler=_run)

    resume = sub.add_parser("resume", help="finish an interrupted campaign")
    resume.add_argument("directory", type=campaign_location, metavar="DIR", help=_DIR_HELP)
    data_options(resume)
    model_options(resume, default="the model the campaign names, when it is jsma's own")
    _weak_model_option(resume)
    engine_options(resume)
    resume.set_defaults(handler=_resume)

    export = sub.add_parser(
        "export", help="every attack's adversarial sample, rebuilt, with its outcome, into a .npz"
    )
    export.add_argument("directory", type=campaign_location, metavar="DIR", help=_DIR_HELP)
    export.add_argument(
        "--out", type=output_file, required=True, metavar="FILE.npz", help="where to write it"
    )
    data_options(export)
    export.set_defaults(handler=_export)

    status = sub.add_parser("status", help="done / total, throughput, ETA")
    status.add_argument("directory", type=campaign_location, metavar="DIR", help=_DIR_HELP)
    status.set_defaults(handler=_status)


def _weak_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-weak-model", action="store_true",
        help="attack a model that classifies the attacked samples about as well as chance "
        "(else refused: it is usually another data's model, or classes in another order)",
    )  # fmt: skip


def _print_status(status: CampaignStatus) -> None:
    print(f"campaign:   {status.directory}")
    print(f"units:      {status.units_done} / {status.units_total}")
    print(f"attacks:    {status.attacks_done} / {status.attacks_total}")
    if status.clean is not None:
        print(
            f"clean:      {status.clean.rate:.2%} of the {status.clean.samples} attacked samples "
            "classified correctly before any attack"
        )
    if status.attacks_done:
        print(f"success:    {status.success_rate:.2%} of the attacks done")
        per_attack = 1e3 / status.throughput
        print(
            f"throughput: {status.throughput:.1f} attacks/s of attack time ({per_attack:.1f} ms "
            "per attack in one worker; loading and start-up not counted)"
        )
        if not status.complete:
            print(f"eta:        {status.eta_seconds / 60:.1f} minutes in one worker")
    state = "complete" if status.complete else "incomplete: jsma campaign resume DIR"
    print(f"state:      {state}")


def _run(args: argparse.Namespace) -> int:
    from jsma.campaign import Campaign, CampaignSpec

    settings = attack_settings(args)
    runner = engine(args)  # a missing extra fails before any data, model or file
    data = dataset(args)
    spec = CampaignSpec(
        splits=tuple(args.splits),
        samples=args.samples,
        targets=args.targets,
        attack=settings,
        unit_size=args.unit_size,
        seed=args.seed,
        mask=feature_mask(args, tuple(data.input_shape)),
        order=args.order or ("first" if data.location == "mnist" else "stratified"),
    )
    network, provenance = attacked_model(args, data)
    status = Campaign.run(
        args.directory, spec, network, data, provenance=provenance, progress=True,
        engine=runner, refuse_near_chance=not args.allow_weak_model,
    )  # fmt: skip
    _print_status(status)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from jsma.campaign import Campaign

    campaign = Campaign.open(args.directory)
    runner = engine(args)
    data = campaign_data(args, campaign)
    # The model the manifest names, unless the options name one.
    stored = campaign.manifest.model
    reference = None if args.model is not None else stored.reference
    if reference is None and args.model is None:
        raise JSMAError(
            f"{args.directory}: this campaign attacked {stored.describe()}, which no file "
            "names: give it with --model"
        )
    if reference is not None and reference.runs_code:
        raise stored_model_refused(args.directory, stored)
    network, provenance = attacked_model(args, data, reference)
    status = campaign.resume(
        network, data, provenance=provenance, progress=True, engine=runner,
        refuse_near_chance=not args.allow_weak_model,
    )  # fmt: skip
    _print_status(status)
    return 0


def _export(args: argparse.Namespace) -> int:
    from jsma.campaign import Campaign

    campaign = Campaign.open(args.directory)
    data = campaign_data(args, campaign)
    count = campaign.export(data, args.out)
    succeeded = int(campaign.arrays().success.sum())
    print(f"exported {count:,} attacks ({succeeded:,} successful) to {args.out}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from jsma.campaign._status import glance  # footers only, without torch

    _print_status(glance(args.directory))
    return 0
