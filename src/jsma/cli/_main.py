"""The parser of every command group, and `main`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from jsma import __version__
from jsma.cli import (
    attack,
    blackbox,
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
from jsma.cli._options import positive_int
from jsma.errors import JSMAError

__all__ = ["build_parser", "main"]

# In the order `jsma --help` lists them.
_GROUPS = (data, attack, campaign, report, toy, defend, gan, transfer, blackbox, replicate, study)


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already gives it or there is
    none to give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "default" not in text
            # `is`, not `in`: 0 == False, and a default of 0 is worth showing.
            and not any(default is hidden for hidden in (None, False, argparse.SUPPRESS))
            and not isinstance(action, argparse._VersionAction)
        ):
            shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
            text += f" (default: {shown})"
        return text


_THREADS_HELP = (
    "CPU threads for torch (default: torch's choice, one per core); give 1 to each of "
    "several jsma processes sharing the cores, or they slow each other down badly"
)


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below `parser` (command groups and their commands)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [sub, *_commands(sub)]
    return found


def build_parser() -> argparse.ArgumentParser:
    """The parser of `jsma` and every command group."""
    parser = argparse.ArgumentParser(
        prog="jsma",
        description="The Jacobian-based Saliency Map Attack and the evaluation of "
        "Papernot et al. (EuroS&P 2016).",
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jsma {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--threads", type=positive_int, help=_THREADS_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(commands)
    for sub in _commands(parser):
        # No abbreviations: `--data` must not silently mean `--data-dir`.
        sub.allow_abbrev = False
        sub.formatter_class = _HelpFormatter
        if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            # Accepted after the command too, where its help refers to it; SUPPRESS keeps
            # a value given before the command.
            sub.add_argument(
                "--threads", type=positive_int, default=argparse.SUPPRESS, help=_THREADS_HELP
            )
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


_terminated = threading.Event()


@contextmanager
def _sigterm_stops_the_work() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt where the work is, so that it stops as for
    Ctrl-C (finished units kept, workers stopped), and is noted for the exit code."""
    _terminated.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number: int, frame: object) -> None:
        _terminated.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _stops_in_native_code() -> Iterator[None]:
    """A second Ctrl-C (or SIGTERM) ends the process at once, even while a model's own
    code runs without returning to Python (a TorchScript loop, a `__setstate__` that
    spins), where Python's handlers never run: a thread reads the signals the C handler
    writes to a wakeup pipe. Finished units are on disk already (written atomically)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    done = threading.Event()

    def watch() -> None:
        seen: list[int] = []
        while not done.is_set():
            if not select.select([read], [], [], 0.2)[0]:
                continue
            seen += [n for n in os.read(read, 64) if n in (signal.SIGINT, signal.SIGTERM)]
            if len(seen) == 1 and not done.wait(2.0):  # still running 2 s after the first
                os.write(2, b"\njsma: still in the model's code; Ctrl-C again stops at once\n")
            if len(seen) >= 2:
                os.write(2, b"\njsma: stopped at once; finished units are kept\n")
                os._exit(128 + seen[-1])

    watcher = threading.Thread(target=watch, name="jsma-signal-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous)
        watcher.join()
        os.close(read)
        os.close(write)


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
            import torch

            torch.set_num_threads(args.threads)
        # `study serve` leaves signals to its server (asyncio has the wakeup fd).
        serving = getattr(args, "study_command", None) == "serve"
        with (
            _sigterm_stops_the_work(),
            contextlib.nullcontext() if serving else (_stops_in_native_code()),
        ):
            code: int = args.handler(args)
    except JSMAError as error:  # the user's to fix; anything else is a bug and shows its traceback
        print(f"jsma: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stopped:  # Ctrl-C: one line, the shell's code for SIGINT
        # SIGTERM the same way, with its own word and code (128 + 15).
        terminated = _terminated.is_set()
        what = "terminated" if terminated else "interrupted"
        print(f"\njsma: {what}{f': {stopped}' if str(stopped) else ''}", file=sys.stderr)
        return 143 if terminated else 130
    return code
