"""`jsma defend detect|adv-train|distill`: the defenses, evaluated like the attack."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import campaign_data, dataset, jsma_model
from jsma.cli._options import Commands, data_options, model_options, output_directory, positive_int
from jsma.errors import JSMAError
from jsma.settings import OUTPUTS, SPLIT_NAMES

if TYPE_CHECKING:
    from jsma.data import Dataset
    from jsma.defenses import DefenseRecord
    from jsma.models import LoadedModel, Recipe

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `defend detect|adv-train|distill` commands to the parser."""
    defend = commands.add_parser("defend", help="evaluate the defenses: detect, adv-train, distill")
    defend_commands = defend.add_subparsers(dest="defend_command", required=True, metavar="COMMAND")

    detect = defend_commands.add_parser(
        "detect", help="detect a campaign's samples by the squared neighbour differences"
    )
    detect.add_argument(
        "campaigns", type=Path, nargs="+", metavar="CAMPAIGN",
        help="campaign directories whose adversarial samples the detector must tell apart",
    )  # fmt: skip
    detect.add_argument(
        "--fpr", type=float, nargs="+", default=[0.01, 0.05],
        help="false-positive rates to calibrate thresholds at (default 0.01 0.05)",
    )  # fmt: skip
    detect.add_argument(
        "--calibration-split", choices=SPLIT_NAMES, default="validation",
        help="the benign images the thresholds are calibrated on (default: validation)",
    )  # fmt: skip
    detect.add_argument("--out", type=output_directory, required=True, help="output directory")
    data_options(detect)
    detect.set_defaults(handler=_detect)

    baseline_help = (
        "campaign run against the undefended model; the defended models face the same one"
    )
    adv = defend_commands.add_parser(
        "adv-train", help="adversarial training, attacked like the undefended model"
    )
    adv.add_argument("--baseline", type=Path, required=True, help=baseline_help)
    adv.add_argument(
        "--out", type=output_directory, required=True, help="output directory (resumable)"
    )
    adv.add_argument(
        "--from-campaign", type=Path, metavar="CAMPAIGN",
        help="take the adversarial samples from this training-split campaign "
        "(default: craft them on the fly against the model being trained)",
    )  # fmt: skip
    adv.add_argument(
        "--from-gan", type=Path, metavar="GAN",
        help="craft the adversarial samples from fresh digits of this conditional GAN "
        "(a `jsma gan train` directory or its generator.safetensors)",
    )  # fmt: skip
    adv.add_argument(
        "--fraction", type=float, default=0.25,
        help="adversarial samples added per benign sample of a batch (default 0.25)",
    )  # fmt: skip
    adv.add_argument("--epochs", type=positive_int, help="override the recipe's epoch count")
    adv.add_argument(
        "--fine-tune", action="store_true", help="start from the undefended model's weights"
    )
    adv.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning")
    data_options(adv, outside=False)
    model_options(adv, outside=False)
    adv.set_defaults(handler=_adv_train)

    distill = defend_commands.add_parser(
        "distill", help="defensive distillation at several temperatures, attacked both ways"
    )
    distill.add_argument("--baseline", type=Path, required=True, help=baseline_help)
    distill.add_argument(
        "--out", type=output_directory, required=True, help="output directory (resumable)"
    )
    distill.add_argument(
        "--temperatures", type=float, nargs="+", default=[1.0, 10.0, 100.0],
        help="distillation temperatures (default 1 10 100)",
    )  # fmt: skip
    distill.add_argument(
        "--outputs", nargs="+", choices=OUTPUTS, default=list(OUTPUTS),
        help="what the attack differentiates (default both)",
    )  # fmt: skip
    distill.add_argument("--epochs", type=positive_int, help="override the recipe's epoch count")
    distill.add_argument("--seed", type=int, default=0, help="seed of the training")
    data_options(distill, outside=False)
    model_options(distill, outside=False)
    distill.set_defaults(handler=_distill)


def _detect(args: argparse.Namespace) -> int:
    data = campaign_data(args, args.campaigns[0])
    from jsma.defenses import evaluate_detection
    from jsma.defenses._detection import joint_records, write_detection
    from jsma.defenses._figures import detection_figure
    from jsma.plotting import save_figure

    results = [
        evaluate_detection(
            campaign, data, false_positive_rates=args.fpr, calibration_split=args.calibration_split
        )
        for campaign in args.campaigns
    ]
    stored = write_detection(args.out, results)
    figure = save_figure(
        detection_figure([result.summary() for result in results]), args.out / "detection.png"
    )
    for result in results:
        print(
            f"{result.campaign} ({result.direction}): AUC {result.auc:.3f}, "
            f"{len(result.adversarial)} successful adversarial samples, "
            f"{len(result.benign)} benign"
        )
        for point in result.points:
            print(
                f"  threshold {point.threshold:.2f} (calibrated at "
                f"{point.calibrated_false_positive_rate:.0%} FPR on {len(result.calibration)} "
                f"benign images; {point.test_false_positive_rate:.2%} on the test originals): "
                f"detects {point.detection_rate:.2%}, {point.undetected} stay under it "
                f"({point.undetected_success_rate:.2%} of all attacks succeed undetected)"
            )
    joint = joint_records(results)
    if len(results) > 1 and not joint:
        print("no attack is common to these campaigns (other targets): no joint figure")
    for record in joint:
        print(
            f"either campaign's sample, whichever evades the "
            f"{record.calibrated_false_positive_rate:.0%} threshold: "
            f"{record.undetected_success_rate:.2%} of {record.attacks} attacks succeed "
            "undetected"
        )
    print(f"results: {stored}")
    print(f"figure:  {figure}")
    return 0


def _undefended(args: argparse.Namespace, data: Dataset) -> tuple[LoadedModel, Recipe]:
    from jsma.models import Recipe

    loaded, _ = jsma_model(args, data)
    recipe = dict(loaded.info.recipe)
    if not recipe:
        raise JSMAError("the undefended model's checkpoint records no training recipe")
    return loaded, Recipe(**recipe)


def _print_record(record: DefenseRecord, out: Path) -> None:
    from jsma.defenses._evaluation import comparison_lines

    print("\n".join(comparison_lines(record.entries)))
    seconds = record.details.get("training_seconds")
    if seconds is not None:  # the cost beside the gain (absent for records made before)
        print(f"training: {float(seconds):.0f} s")
    print(f"\nresults: {out}  (add it to a report: jsma report CAMPAIGN --defenses {out})")


def _adv_train(args: argparse.Namespace) -> int:
    from jsma.defenses import run_adversarial_training

    if args.from_campaign is not None and args.from_gan is not None:
        raise JSMAError("give --from-campaign or --from-gan, not both")
    data = dataset(args)
    loaded, recipe = _undefended(args, data)
    record = run_adversarial_training(
        args.baseline, loaded.model, data, args.out, recipe=recipe,
        campaign=args.from_campaign, gan=args.from_gan, fraction=args.fraction, epochs=args.epochs,
        fine_tune=args.fine_tune, seed=args.seed, progress=True,
    )  # fmt: skip
    _print_record(record, args.out)
    return 0


def _distill(args: argparse.Namespace) -> int:
    from jsma.defenses import run_distillation

    data = dataset(args)
    loaded, recipe = _undefended(args, data)
    record = run_distillation(
        args.baseline, loaded.model, data, args.out, recipe=recipe,
        temperatures=args.temperatures, outputs=args.outputs, epochs=args.epochs,
        seed=args.seed, progress=True,
    )  # fmt: skip
    _print_record(record, args.out)
    return 0
