"""What the parsed options name, as library objects: the data, the model, the attack's
settings, the engine (the options themselves: `jsma.cli._options`).

The library is imported inside these functions, which run a command, so that
`jsma --help` never loads torch.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from jsma.errors import ConfigurationError, JSMAError, MissingDependencyError

if TYPE_CHECKING:
    from torch import nn

    from jsma.attacks import AttackSettings
    from jsma.campaign import Engine, FeatureMask
    from jsma.campaign._campaign import CampaignLike
    from jsma.data import DataRef, Dataset
    from jsma.models import Evaluation, LoadedModel, ModelProvenance, ModelRef


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
    if not reference.is_mnist and getattr(args, "mnist_only", False):
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
