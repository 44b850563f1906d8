"""`jsma blackbox`: attack a model you can only query (substitute), and `export` a model
to ONNX to serve it as one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.cli._common import (
    attack_settings,
    attacked_model,
    dataset,
    feature_mask,
    needs_extra,
)
from jsma.cli._options import (
    Commands,
    attack_options,
    data_options,
    model_options,
    non_negative_int,
    output_directory,
    positive_int,
)
from jsma.errors import JSMAError
from jsma.settings import TARGET_RULES

if TYPE_CHECKING:
    from jsma.blackbox import OracleRef

__all__ = ["register"]

_ORACLE_HELP = (
    "what answers the queries: what --model takes elsewhere (paper, a checkpoint, a .pt2, "
    "a builder, ...), an .onnx file (ONNX Runtime), http(s)://HOST:PORT/v2/models/NAME (an "
    "inference server speaking the Open Inference Protocol) or fn:package.module:name (your "
    "function: a batch in, labels or scores out). Given again to go on with a run whose "
    "oracle is a server, a function or code"
)


def register(commands: Commands) -> None:
    """Add the `blackbox` commands to the parser."""
    group = commands.add_parser(
        "blackbox", help="attack a model you can only query (Papernot et al. 2017)"
    )
    sub = group.add_subparsers(dest="blackbox_command", required=True, metavar="COMMAND")
    substitute = sub.add_parser(
        "substitute",
        help="train a substitute of the oracle by Jacobian-based dataset augmentation",
        description="Train a local substitute on inputs labelled by the oracle (Papernot et "
        "al. 2017, Algorithm 1), into OUT: the substitute (a jsma checkpoint), the query log "
        "(every answer, durable: nothing is asked twice, resumes included) and the record of "
        "each round. Started again on OUT, it goes on after the last finished round.",
    )
    substitute.add_argument("out", type=output_directory, metavar="OUT", help="output directory")
    substitute.add_argument("--oracle", metavar="ORACLE", help=_ORACLE_HELP)
    algorithm = substitute.add_argument_group("the substitute (defaults: the paper's MNIST run)")
    algorithm.add_argument(
        "--initial", type=positive_int, default=150,
        help="|S0|: the first test samples, labelled by the oracle, held out from evaluation",
    )  # fmt: skip
    algorithm.add_argument(
        "--epochs", type=positive_int, default=6, help="substitute epochs (rounds of labelling)"
    )
    algorithm.add_argument(
        "--lambda", dest="step", type=float, default=0.1, help="the augmentation's step"
    )
    algorithm.add_argument(
        "--flip-every", type=non_negative_int, default=3, metavar="TAU",
        help="flip the step's sign every TAU rounds (0: never)",
    )  # fmt: skip
    algorithm.add_argument(
        "--reservoir", type=positive_int, metavar="KAPPA",
        help="after --full-epochs rounds, augment KAPPA points a round (reservoir sampling)",
    )  # fmt: skip
    algorithm.add_argument(
        "--full-epochs", type=positive_int, default=3, metavar="SIGMA",
        help="rounds that augment every point before the reservoir takes over",
    )  # fmt: skip
    algorithm.add_argument(
        "--substitute", default="lenet", metavar="ARCHITECTURE",
        help="the substitute's architecture: lenet (the paper's), mlp, or a builder "
        "package.module:callable(key=value, ...) (your code: give it again to go on)",
    )  # fmt: skip
    algorithm.add_argument("--seed", type=int, default=0, help="seed of the substitute")
    _query_options(substitute)
    data_options(substitute)
    substitute.set_defaults(handler=_substitute)

    attack = sub.add_parser(
        "attack",
        help="craft on OUT's substitute, measure on the oracle (the transfer rate)",
        description="Craft adversarial samples on the substitute trained in OUT, from test "
        "samples it never saw (after S0), and give them and their originals to the oracle "
        "through OUT's query log (nothing is asked twice). FGSM, or JSMA and its family "
        "as a resumable campaign on the substitute. Prints and stores "
        "OUT/attacks/NAME.json: the share the oracle misclassifies, and more.",
    )
    attack.add_argument("out", type=Path, metavar="OUT", help="a `blackbox substitute` output")
    attack.add_argument("--oracle", metavar="ORACLE", help=_ORACLE_HELP)
    attack.add_argument(
        "--attack", choices=("fgsm", "jsma"), default="fgsm", help="what crafts the samples"
    )
    attack.add_argument(
        "--epsilon", type=float, default=0.3, help="FGSM's step (in the data's units)"
    )
    attack.add_argument(
        "--samples", type=positive_int, default=1000, help="held-out test samples to attack"
    )
    attack.add_argument(
        "--substitute", metavar="BUILDER",
        help="the builder the substitute was trained with, if it was one (never read from "
        "the run's record: it is code)",
    )  # fmt: skip
    attack.add_argument(
        "--targets", choices=TARGET_RULES, default="random",
        help="JSMA's targets (random: one other class per sample)",
    )  # fmt: skip
    attack_options(attack)
    _query_options(attack)
    data_options(attack)
    attack.set_defaults(handler=_attack)

    sparse = sub.add_parser(
        "sparse-rs",
        help="Sparse-RS: k pixels found by random search on the oracle's scores",
        description="Sparse-RS (Croce et al., AAAI 2022) against the oracle: at most K "
        "pixels changed (all channels of a pixel together; K features for flat inputs), "
        "found by random search on the oracle's scores, N queries per sample at most. "
        "Every query goes through OUT's log: a rerun or a resume asks nothing twice. "
        "Stores OUT/sparse-rs-kK.json (the outcome) and .npz (the samples).",
    )
    sparse.add_argument("out", type=output_directory, metavar="OUT", help="output directory")
    sparse.add_argument("--oracle", metavar="ORACLE", help=_ORACLE_HELP)
    sparse.add_argument(
        "--pixels", type=positive_int, required=True, metavar="K", help="the most pixels changed"
    )
    sparse.add_argument(
        "--queries-per-sample", type=positive_int, default=10_000, metavar="N",
        help="the search's budget for each sample",
    )  # fmt: skip
    sparse.add_argument("--samples", type=positive_int, default=1000, help="test samples to attack")
    sparse.add_argument(
        "--start", type=non_negative_int, default=0,
        help="the first test sample (150: after a substitute run's S0, for a fair comparison)",
    )  # fmt: skip
    sparse.add_argument(
        "--targeted", action="store_true", help="one random other class per sample, seeded"
    )
    sparse.add_argument(
        "--features", action="store_true",
        help="K counts features (each channel of a pixel on its own), not pixels",
    )  # fmt: skip
    sparse.add_argument(
        "--alpha-init", type=float, metavar="ALPHA",
        help="share of K swapped at first (default: the authors' 0.3, or 0.1 targeted)",
    )  # fmt: skip
    sparse.add_argument("--seed", type=int, default=0, help="seed of the searches")
    _query_options(sparse)
    data_options(sparse)
    sparse.set_defaults(handler=_sparse_rs)

    export = sub.add_parser(
        "export",
        help="write a model as ONNX (to serve it: ONNX Runtime, Triton, MLServer)",
        description="Write the model that --model names as an ONNX file that takes the "
        "data's inputs (any batch size) and gives its scores; checked against the model.",
    )
    export.add_argument("file", type=Path, metavar="FILE.onnx", help="the ONNX file to write")
    model_options(export)
    data_options(export)
    export.set_defaults(handler=_export)


def _query_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queries")
    group.add_argument(
        "--query-budget", type=non_negative_int, metavar="N",
        help="the most inputs ever sent to the oracle, resumes included (default: no limit)",
    )  # fmt: skip
    group.add_argument(
        "--max-batch", type=positive_int, metavar="N",
        help="inputs per request (default: 64 for a server, 256 otherwise)",
    )  # fmt: skip
    group.add_argument(
        "--rate", type=float, metavar="PER_SECOND", help="the most requests a second (servers)"
    )
    group.add_argument(
        "--token-env", default="JSMA_ORACLE_TOKEN", metavar="VARIABLE",
        help="the environment variable holding a bearer token for the server (never an option)",
    )  # fmt: skip
    group.add_argument(
        "--device", default="cpu", metavar="cpu|cuda|auto",
        help="where a local oracle and the substitute run",
    )  # fmt: skip
    group.add_argument(
        "--normalize", nargs="+", type=float, metavar="MEAN",
        help="the input normalisation of an oracle model from outside jsma (one mean per "
        "channel, or one for all), with --std",
    )  # fmt: skip
    group.add_argument("--std", nargs="+", type=float, metavar="STD", help="with --normalize")


def _oracle_reference(args: argparse.Namespace, out: Path) -> str:
    """--oracle, else the one the run in OUT names, when opening it neither runs code nor
    sends queries off this machine (a received directory must not do either)."""
    from jsma._records import read_record
    from jsma.blackbox import OracleRef, SparseRsOutcome
    from jsma.blackbox._substitute import RECORD, SubstituteRecord

    if args.oracle is not None:
        return str(args.oracle)
    stored: str | None = None
    if (out / RECORD).exists():
        stored = read_record(SubstituteRecord, out / RECORD, missing="no run").oracle
    elif runs := sorted(out.glob("sparse-rs-k*.json")):
        stored = read_record(SparseRsOutcome, runs[0], missing="no run").oracle
    if stored is None:
        raise JSMAError("--oracle is required: which model answers the queries?")
    if OracleRef.parse(stored).needs_naming:
        raise JSMAError(
            f"{out}: its oracle is {stored}, which runs code or sends queries off this "
            "machine; give it again with --oracle to go on"
        )
    return stored


def _parsed_oracle(args: argparse.Namespace) -> OracleRef:
    from jsma.blackbox import OracleRef

    if (args.normalize is None) != (args.std is None):
        raise JSMAError("--normalize and --std go together")
    return OracleRef.parse(
        _oracle_reference(args, args.out), mean=args.normalize or (), std=args.std or ()
    )


def _substitute(args: argparse.Namespace) -> int:
    from jsma.blackbox._substitute import SubstituteSettings, train_substitute

    with needs_extra("blackbox", "jsma blackbox substitute"):
        reference = _parsed_oracle(args)
        data = dataset(args)
        settings = SubstituteSettings(
            initial=args.initial, epochs=args.epochs, step=args.step,
            flip_every=args.flip_every or None, reservoir=args.reservoir,
            full_epochs=args.full_epochs, architecture=args.substitute,
            query_budget=args.query_budget, seed=args.seed,
        )  # fmt: skip
        oracle = reference.open(
            args.device, data=data, max_batch=args.max_batch, token_env=args.token_env,
            rate=args.rate,
        )  # fmt: skip
    print(f"oracle: {oracle.describe()}")
    print(" round   points  queries   held-out accuracy")

    def report(epoch: object) -> None:
        from jsma.blackbox._substitute import SubstituteEpoch

        assert isinstance(epoch, SubstituteEpoch)
        print(
            f"{epoch.epoch + 1:>6} {epoch.points:>8,} {epoch.queries:>8,}   {epoch.accuracy:>8.2%}"
            + (f"   ({epoch.lost} answers lost to a kill)" if epoch.lost else ""),
            flush=True,
        )

    with oracle:
        record = train_substitute(
            oracle, data, args.out, settings, oracle_reference=str(reference), on_epoch=report
        )
    last = record.epochs[-1]
    print(f"substitute: {args.out / 'substitute.safetensors'} (a jsma checkpoint)")
    print(f"queries:    {last.queries:,} sent to the oracle in all (log: {args.out}/queries.jqlog)")
    return 0


def _attack(args: argparse.Namespace) -> int:
    from jsma.blackbox._transfer import TransferAttack, attack_through_substitute

    with needs_extra("blackbox", "jsma blackbox attack"):
        reference = _parsed_oracle(args)
        data = dataset(args)
        chosen = TransferAttack(
            attack=args.attack, samples=args.samples, epsilon=args.epsilon,
            targets=args.targets, settings=attack_settings(args),
            mask=feature_mask(args, data.input_shape),
        )  # fmt: skip
        oracle = reference.open(
            args.device, data=data, max_batch=args.max_batch, token_env=args.token_env,
            rate=args.rate,
        )  # fmt: skip
    with oracle:
        outcome = attack_through_substitute(
            oracle, data, args.out, chosen, query_budget=args.query_budget,
            substitute=args.substitute, progress=True,
        )  # fmt: skip
    start, stop = outcome.held_out
    print(f"oracle:      {oracle.describe()}")
    print(
        f"substitute:  {outcome.substitute_rounds} rounds, {outcome.substitute_queries:,} queries"
    )
    print(f"attack:      {chosen.name} on test samples {start} to {stop - 1}")
    print(f"substitute fooled:            {outcome.substitute_success:.2%}")
    print(f"oracle accuracy (originals):  {outcome.oracle_accuracy:.2%}")
    print(f"oracle misclassifies:         {outcome.misclassified:.2%} (the transfer rate)")
    print(f"  of originals it had right:  {outcome.misclassified_of_correct:.2%}")
    if outcome.in_target is not None:
        print(f"oracle gives the target:      {outcome.in_target:.2%}")
    print(f"distortion (median):          {outcome.distortion:.2f}% of the features")
    print(
        f"queries:                      {outcome.queries:,} new ({outcome.unanswered} unanswered)"
    )
    print(f"stored: {args.out / 'attacks' / (chosen.name + '.json')}")
    return 0


def _sparse_rs(args: argparse.Namespace) -> int:
    from jsma.blackbox import SparseRsSettings, run_sparse_rs

    with needs_extra("blackbox", "jsma blackbox sparse-rs"):
        reference = _parsed_oracle(args)
        data = dataset(args)
        alpha = args.alpha_init if args.alpha_init is not None else (
            0.1 if args.targeted else 0.3
        )  # fmt: skip
        settings = SparseRsSettings(
            pixels=args.pixels, queries_per_sample=args.queries_per_sample, alpha_init=alpha,
            seed=args.seed, features=args.features,
        )  # fmt: skip
        oracle = reference.open(
            args.device, data=data, max_batch=args.max_batch, token_env=args.token_env,
            rate=args.rate,
        )  # fmt: skip
    with oracle:
        outcome = run_sparse_rs(
            oracle, data, args.out, settings, samples=args.samples, start=args.start,
            targeted=args.targeted, query_budget=args.query_budget,
            oracle_reference=str(reference), progress=True,
        )  # fmt: skip
    start, stop = outcome.held_out
    kind = "targeted" if outcome.targeted else "untargeted"
    print(f"oracle:   {oracle.describe()}")
    budget = settings.queries_per_sample
    unit = "features" if settings.features else "pixels"
    print(f"attack:   Sparse-RS, {kind}, at most {settings.pixels} {unit}, "
          f"{budget:,} queries a sample, test samples {start} to {stop - 1}")  # fmt: skip
    print(f"success:  {outcome.success:.2%} of the {outcome.attacked} the oracle had right")
    print(f"queries:  median {outcome.median_queries:g}, mean {outcome.mean_queries:.1f} a "
          f"fooled sample; {outcome.queries:,} asked in all, originals included")  # fmt: skip
    print(f"{unit}:{' ' * (9 - len(unit))}at most {outcome.most_pixels_changed} changed")
    print(f"stored:   {args.out / outcome.samples}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from jsma.models import export_onnx

    with needs_extra("blackbox", "jsma blackbox export"):
        data = dataset(args)
        model, _ = attacked_model(args, data)
        path = export_onnx(model, args.file, data.input_shape)
    print(f"wrote {path} ({path.stat().st_size:,} bytes): inputs {list(data.input_shape)}")
    return 0
