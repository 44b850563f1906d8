"""A user's own model: a `torch.export` program, a TorchScript file, or a builder and
its weights, never an unpickled object.

A `SourcedModel` is pickled as its reference (`jsma.models.ModelRef`) and the bytes
of its files, so that worker processes and Ray tasks rebuild it from the program or
the builder and weights, never from a pickled module (which an exported or scripted
module cannot be anyway).
"""

from __future__ import annotations

import importlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from jsma.errors import ModelError
from jsma.models._exported import load_exported

if TYPE_CHECKING:
    from jsma.models._reference import ModelRef

__all__: list[str] = []

_NO_UNPICKLING = (
    "{path}: a pickled {what}, which jsma never unpickles (loading it could run any "
    "code); save the model with torch.export.save (a .pt2 file) or torch.jit.save, or give "
    "the code that builds it and this file as weights: --model package.module:builder@{path}"
    "{hint}"
)


def resolve_device(choice: str | torch.device) -> torch.device:
    """`cpu`, `cuda` (an error naming why when there is none) or `auto` (CUDA if any)."""
    if isinstance(choice, torch.device):
        return choice
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {choice}: this torch sees no CUDA device (use cpu or auto)")
    try:
        device = torch.device(choice)
    except RuntimeError:
        device = None
    # `meta` and the like hold no values: an attack there computes nothing.
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ModelError(f"unknown device {choice!r}; choose cpu, cuda (cuda:N) or auto")
    return device


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def file_form(path: Path) -> Literal["checkpoint", "exported", "torchscript"]:
    """What kind of model file `path` is, read from its content, not its name."""
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    with path.open("rb") as handle:
        head = handle.read(16)
    names = _zip_names(path)
    if names is None:
        if len(head) >= 9 and head[8:9] == b"{":  # safetensors: a length, then a JSON header
            return "checkpoint"
        what = "object" if head[:1] == b"\x80" else "file of unknown form"
        if what == "object":
            raise ModelError(_NO_UNPICKLING.format(path=path, what="object", hint=""))
        raise ModelError(
            f"{path}: not a model file jsma reads (a jsma checkpoint, a torch.export .pt2, "
            "or a TorchScript file)"
        )
    if any(name.endswith("models/model.json") for name in names) or any(
        "/serialized_exported_program" in name for name in names
    ):
        return "exported"
    if any("/code/" in name for name in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(name.endswith("data.pkl") for name in names):
        raise ModelError(
            _NO_UNPICKLING.format(
                path=path, what="module or state dict (torch.save)",
                hint=" (if it is a state dict)",
            )
        )  # fmt: skip
    raise ModelError(f"{path}: a zip archive, but neither a .pt2 program nor TorchScript")


class Normalization(nn.Module):
    """`(x - mean) / std`, one value per channel (images) or feature, or one for all."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (values,) -> (1, values, 1, 1) for images, (1, values) for feature vectors.
        shape = (1, -1, *([1] * (x.ndim - 2)))
        mean, std = self.mean, self.std
        return (x - mean.view(shape)) / std.view(shape)  # type: ignore[operator]


class SourcedModel(nn.Module):
    """A model from outside jsma, loaded from its `ModelRef`, with its normalisation in front.

    Pickled as its source and the bytes of the files it read (so a worker process
    or a Ray task rebuilds it without the files or a pickled module). An exported
    program has no train mode: `train()` sets only this module's flag then.
    """

    def __init__(self, network: nn.Module, source: ModelRef, blobs: Mapping[str, bytes]) -> None:
        super().__init__()
        self.network = network
        self.normalization = Normalization(source.mean, source.std) if source.mean else None
        self.source = source
        self._blobs = dict(blobs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization is not None:
            x = self.normalization(x)
        outputs: torch.Tensor = self.network(x)
        return outputs

    def train(self, mode: bool = True) -> SourcedModel:
        self.training = mode
        if self.normalization is not None:
            self.normalization.train(mode)
        if self.source.form != "exported":  # an exported program refuses eval()/train()
            self.network.train(mode)
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        device = next(self.parameters(), torch.empty(0)).device
        return (_rebuilt, (self.source, self._blobs, str(device)))


def _rebuilt(source: ModelRef, blobs: Mapping[str, bytes], device: str) -> SourcedModel:
    return _load(source, blobs, torch.device(device))


def load_outside(source: ModelRef, device: torch.device) -> SourcedModel:
    """The model from outside jsma that `source` names, on `device`, in eval mode."""
    blobs = {}
    for name in source.files():
        try:
            blobs[name] = Path(name).read_bytes()
        except OSError as error:
            raise ModelError(f"{name}: cannot be read ({error})") from None
    return _load(source, blobs, device)


def _load(source: ModelRef, blobs: Mapping[str, bytes], device: torch.device) -> SourcedModel:
    network: nn.Module
    if source.form == "exported":
        network = load_exported(blobs[source.location], source.location)
    elif source.form == "torchscript":
        try:
            network = torch.jit.load(io.BytesIO(blobs[source.location]), map_location="cpu")
        except Exception as error:  # torch raises many kinds here
            what = f"not a loadable TorchScript file ({error})"
            raise ModelError(f"{source.location}: {what}") from None
    else:
        network = _built(source, blobs)
    model = SourcedModel(network, source, blobs).to(device)
    return model.eval()


def _built(source: ModelRef, blobs: Mapping[str, bytes]) -> nn.Module:
    module_name, _, name = source.location.partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), name)
    except ImportError as error:
        what = f"cannot import {module_name} ({error})"
        raise ModelError(f"--model {source.location}: {what}") from None
    except AttributeError:
        raise ModelError(f"--model {source.location}: {module_name} has no {name}") from None
    try:
        network = builder(**source.arguments)
    except TypeError as error:
        raise ModelError(f"--model {source.location}: {error}") from None
    if not isinstance(network, nn.Module):
        raise ModelError(
            f"--model {source.location}: the builder gave a {type(network).__name__}, not a "
            "torch.nn.Module"
        )
    if source.weights is not None:
        state = _state_dict(source.weights, blobs[source.weights])
        try:
            network.load_state_dict(state)
        except RuntimeError as error:
            detail = " ".join(str(error).split())
            raise ModelError(
                f"{source.weights}: the weights do not fit {source.location} ({detail[:400]})"
            ) from None
    return network


def _state_dict(name: str, blob: bytes) -> Mapping[str, torch.Tensor]:
    """The tensors of a weights file: safetensors, or a state dict that
    `torch.load(weights_only=True)` reads (plain tensors and containers only)."""
    if blob[8:9] == b"{":
        import safetensors.torch

        try:
            return safetensors.torch.load(blob)
        except Exception as error:  # safetensors raises its own kinds
            raise ModelError(f"{name}: not a readable safetensors file ({error})") from None
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as error:  # an UnpicklingError for anything but weights
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"{name}: not a state dict that loads without unpickling objects ({first})"
        ) from None
    # Training scripts often save {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelError(f"{name}: not a state dict (a mapping of names to tensors)")
    return state
