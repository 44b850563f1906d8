"""The parser of every command group, and `main`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from jsma import __version__
from jsma.cli import (
    attack,
    campaign,
    data,
    defend,
    gan,
    replicate,
    report,
    study,
    toy,
    transfer,
)
from jsma.errors import JSMAError

__all__ = ["build_parser", "main"]

# In the order `jsma --help` lists them.
_GROUPS = (data, attack, campaign, report, toy, defend, gan, transfer, replicate, study)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `jsma` and every command group."""
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
    for group in _GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `jsma` with `argv`; return the exit code (2 for an error the user can fix)."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then ours to handle
    except BrokenPipeError:
        # The reader went away (`jsma ... | head`): stop quietly, as Unix tools do.
        # Python flushes stdout once more at exit; point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s: %(message)s",
    )
    # httpx logs every request at INFO: thousands of lines for one `study simulate`.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise JSMAError(f"--threads must be at least 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        code: int = args.handler(args)
    except JSMAError as error:  # the user's to fix; anything else is a bug and shows its traceback
        print(f"jsma: error: {error}", file=sys.stderr)
        return 2
    return code
