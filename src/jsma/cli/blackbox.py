"""`jsma blackbox`: attack a model you can only query (substitute), and `export` a model
to ONNX to serve it as one."""

from __future__ import annotations

import argparse
from pathlib import Path

from jsma.cli._common import attacked_model, dataset, needs_extra
from jsma.cli._options import (
    Commands,
    data_options,
    model_options,
    non_negative_int,
    output_directory,
    positive_int,
)
from jsma.errors import JSMAError

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
        help="the substitute's architecture (lenet: the paper's; mlp)",
    )  # fmt: skip
    algorithm.add_argument("--seed", type=int, default=0, help="seed of the substitute")
    _query_options(substitute)
    data_options(substitute)
    substitute.set_defaults(handler=_substitute)

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


def _oracle_reference(args: argparse.Namespace, out: Path) -> str:
    """--oracle, else the one the run in OUT names, when opening it neither runs code nor
    sends queries off this machine (a received directory must not do either)."""
    from jsma._records import read_record
    from jsma.blackbox import OracleRef
    from jsma.blackbox._substitute import RECORD, SubstituteRecord

    if args.oracle is not None:
        return str(args.oracle)
    if not (out / RECORD).exists():
        raise JSMAError("--oracle is required: which model answers the queries?")
    stored = read_record(SubstituteRecord, out / RECORD, missing="no substitute run")
    if OracleRef.parse(stored.oracle).needs_naming:
        raise JSMAError(
            f"{out}: its oracle is {stored.oracle}, which runs code or sends queries off this "
            "machine; give it again with --oracle to go on"
        )
    return stored.oracle


def _substitute(args: argparse.Namespace) -> int:
    from jsma.blackbox import OracleRef
    from jsma.blackbox._substitute import SubstituteSettings, train_substitute

    with needs_extra("blackbox", "jsma blackbox substitute"):
        reference = OracleRef.parse(_oracle_reference(args, args.out))
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


def _export(args: argparse.Namespace) -> int:
    from jsma.models import export_onnx

    with needs_extra("blackbox", "jsma blackbox export"):
        data = dataset(args)
        model, _ = attacked_model(args, data)
        path = export_onnx(model, args.file, data.input_shape)
    print(f"wrote {path} ({path.stat().st_size:,} bytes): inputs {list(data.input_shape)}")
    return 0
