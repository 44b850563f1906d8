"""`jsma replicate`: the paper's evaluation end to end, beside the paper's numbers."""

from __future__ import annotations

import argparse
import math
import time

from jsma.cli._common import cache_dir, dataset, engine, jsma_model, print_evaluation
from jsma.cli._options import (
    Commands,
    data_options,
    engine_options,
    model_options,
    output_directory,
    positive_int,
)
from jsma.paper import CLOSEST, PAPER, PAPER_SAMPLES_PER_SET, PAPER_SETS
from jsma.settings import OUTPUTS

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the `replicate` command to the parser."""
    parser = commands.add_parser("replicate", help="run the paper's evaluation end to end")
    data_options(parser, outside=False)
    model_options(parser, default=CLOSEST.recipe, outside=False)
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--samples",
        type=positive_int,
        default=1000,
        help="first N test samples, each attacked towards its 9 other classes (default 1000)",
    )
    scale.add_argument(
        "--full",
        action="store_true",
        help="the paper's full campaign: 3 splits x 10,000 samples x 9 targets (270,000 attacks)",
    )
    parser.add_argument(
        "--output", choices=OUTPUTS, default=CLOSEST.output,
        help=f"what the attack differentiates (default: {CLOSEST.output}, the setting closest "
        "to the paper's figures; logits is what the paper's text describes)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=output_directory, help="campaign directory (default: in the cache directory)"
    )
    parser.add_argument(
        "--no-paper-domain", dest="paper_domain", action="store_false",
        help="skip the third campaign: the decreasing attack with the paper's search domain "
        "as written (every feature; compare it with the paper's 64.7%%)",
    )  # fmt: skip
    engine_options(parser)
    parser.set_defaults(handler=_replicate)


def _replicate(args: argparse.Namespace) -> int:
    from jsma.campaign import InProcess
    from jsma.models import evaluate
    from jsma.replicate import replicate
    from jsma.replicate._replicate import PAPER_DOMAIN_CAMPAIGN, replication_directory

    if args.model is None and args.output == CLOSEST.output:
        print(f"setting: {CLOSEST.why}.")
        print("  others: --model default (ReLU, Adam), --output logits (the paper's text)")
    data = dataset(args)
    print(f"data: {data.source}, {', '.join(f'{s.name} {len(s)}' for s in data.splits())}")
    loaded, description = jsma_model(args, data)
    print(
        f"model: {loaded.info.spec.architecture}, recipe {loaded.info.recipe.get('name')!r}, "
        f"attacked on its {args.output}"
    )
    for split in (data.validation, data.test):
        print_evaluation(evaluate(loaded.model, split, data.num_classes))
    # The paper's campaign: 10,000 samples of each set (the training set has 50,000).
    splits = PAPER_SETS if args.full else ("test",)
    samples = PAPER_SAMPLES_PER_SET if args.full else args.samples
    directory = args.out or replication_directory(
        cache_dir(args),
        description.recipe or f"model-{description.fingerprint[:12]}",
        samples=samples,
        splits=splits,
        output=args.output,
    )
    runner = engine(args)
    started = time.perf_counter()
    replication = replicate(
        data, loaded.model, directory, samples=samples, splits=splits, output=args.output,
        provenance=description, progress=True, engine=runner, paper_domain=args.paper_domain,
    )  # fmt: skip
    wall = time.perf_counter() - started
    in_one = "" if isinstance(runner, InProcess) else " in one worker"
    for campaign in replication.campaigns:
        paper = PAPER[campaign.direction]
        print(
            f"\n{campaign.label}, Upsilon = 14.5%, {campaign.status.attacks_done} attacks, "
            f"{1e3 / campaign.status.throughput:.1f} ms per attack{in_one}"
        )
        if campaign.directory.name == PAPER_DOMAIN_CAMPAIGN:
            print(
                "the paper's search domain as written: every pixel, so pixels already at 0 "
                "are picked, stay at 0 and still cost their iteration"
            )
        print(f"{'set':>12} {'attacks':>8} {'success':>9} {'dist. succ.':>12} {'dist. all':>10}")
        for line in campaign.results:
            print(
                f"{line.name:>12} {line.attacks:>8} {line.success_rate:>9.2%} "
                f"{line.mean_distortion_success:>11.2f}% {line.mean_distortion_all:>9.2f}%"
            )
        # The paper gives no distortion for the decreasing direction: shown as "-".
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
            f"robustness rho(F) = {campaign.robustness:.4f} (mean of per-sample minima "
            f"{campaign.mean_sample_robustness:.4f}); rank correlation of hardness and "
            f"adversarial distance: {campaign.hardness_distance_correlation:.2f}"
        )
    print(f"\ntime: {wall:.0f} s in {runner.label} "
          "(attacks run now; finished units are not redone)")  # fmt: skip
    print(f"report: {replication.report.html}")
    print(f"\nresults: {directory}")
    return 0
