"""A user's own model: a `torch.export` program, a TorchScript file, or a builder and
its weights, never an unpickled object.

`ModelSource` says how to load the model again, in any process: campaigns store
it in their manifest (so `resume` finds the model), and a `SourcedModel` is
pickled as its source and the bytes of its files, so that worker processes and
Ray tasks rebuild it from the program or the builder and weights, never from a
pickled module (which an exported or scripted module cannot be anyway).
"""

from __future__ import annotations

import ast
import importlib
import io
import math
import shlex
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from jsma.errors import ModelError
from jsma.models._exported import load_exported

__all__ = [
    "ModelForm",
    "ModelSource",
    "Normalization",
    "SourcedModel",
    "is_builder",
    "load_model",
    "model_source",
    "parse_model_arguments",
    "resolve_device",
]

ModelForm = Literal["exported", "torchscript", "builder"]
DeviceChoice = Literal["cpu", "cuda", "auto"]

_NO_UNPICKLING = (
    "{path}: a pickled {what}, which jsma never unpickles (loading it could run any "
    "code); save the model with torch.export.save (a .pt2 file) or torch.jit.save, or give "
    "the code that builds it and this file as weights: --model package.module:builder "
    "--weights {path}{hint}"
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


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """How to load a model: its `form`, the file (`location`, absolute) or the builder
    (`package.module:callable`) with its keyword `arguments` and `weights` file, and the
    normalisation (`mean`, `std`, one value per channel or feature, or one for all)
    that is put in front of it, so the attack works in the data's own bounds."""

    form: ModelForm
    location: str
    weights: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ModelError(
                f"--normalize gives {len(self.mean)} means and --std {len(self.std)} values; "
                "give as many of each"
            )
        if any(not 0 < s < math.inf for s in self.std) or not all(map(math.isfinite, self.mean)):
            raise ModelError(
                f"--normalize and --std take finite values, --std positive ones; got mean "
                f"{list(self.mean)}, std {list(self.std)}"
            )
        if self.form == "builder" and ":" not in self.location:
            raise ModelError(f"a builder is package.module:callable, got {self.location!r}")

    def describe(self) -> str:
        """In words: which model this is."""
        if self.form == "builder":
            arguments = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
            weights = f" with weights {self.weights}" if self.weights else " (its own weights)"
            text = f"{self.location}({arguments}){weights}"
        else:
            kind = "the exported program" if self.form == "exported" else "the TorchScript file"
            text = f"{kind} {self.location}"
        if self.mean:
            text += f", inputs normalised by mean {list(self.mean)} and std {list(self.std)}"
        return text

    def options(self) -> str:
        """The command-line options that name this model again (`--model ...`)."""
        words = ["--model", self.location]
        if self.weights:
            words += ["--weights", self.weights]
        for key, value in self.arguments.items():
            words += ["--model-arg", f"{key}={value!r}"]
        if self.mean:
            words += ["--normalize", *map(str, self.mean), "--std", *map(str, self.std)]
        return shlex.join(words)

    @property
    def architecture(self) -> str:
        """A short name: the builder's, else the file's."""
        if self.form == "builder":
            return self.location.rpartition(":")[2]
        return Path(self.location).name

    def files(self) -> list[str]:
        """The files this source reads."""
        if self.form == "builder":
            return [self.weights] if self.weights else []
        return [self.location]


def parse_model_arguments(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` options as keyword arguments: VALUE read as a Python literal (10,
    0.5, True, None, (3, 32, 32), 'text'), else kept as the text it is."""
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.isidentifier():
            raise ModelError(f"--model-arg takes KEY=VALUE with KEY a Python name, got {pair!r}")
        try:
            arguments[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            arguments[key] = text
    return arguments


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _file_form(path: Path) -> ModelForm | Literal["checkpoint"]:
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


def is_builder(text: str) -> bool:
    """Whether `text` reads `package.module:callable`, the callable that builds a model."""
    module, colon, name = text.partition(":")
    return bool(colon) and name.isidentifier() and all(p.isidentifier() for p in module.split("."))


def model_source(
    text: str,
    *,
    weights: str | Path | None = None,
    arguments: Mapping[str, Any] | None = None,
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
) -> ModelSource | Path:
    """The source `--model TEXT` names: a builder `package.module:callable`, or a
    file (`.pt2`, TorchScript), told by its content; a jsma checkpoint comes back as
    its `Path` (`load_checkpoint` reads it)."""
    means, stds = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    path = Path(text)
    if ":" in text and not path.exists():
        if not is_builder(text):
            raise ModelError(f"--model {text!r}: a builder is package.module:callable")
        if weights is not None:
            weights = Path(weights)
            if not weights.is_file():
                raise ModelError(f"{weights}: weights file not found")
            weights = str(weights.resolve())
        return ModelSource(
            form="builder", location=text, weights=weights, arguments=dict(arguments or {}),
            mean=means, std=stds,
        )  # fmt: skip
    form = _file_form(path)
    if form != "builder" and (weights is not None or arguments):
        raise ModelError("--weights and --model-arg go with a builder (package.module:callable)")
    if form == "checkpoint":
        if means:
            raise ModelError(
                "--normalize goes with an outside model; a jsma checkpoint takes its data as is"
            )
        return path
    return ModelSource(form=form, location=str(path.resolve()), mean=means, std=stds)


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
    """A model loaded from a `ModelSource`, with its normalisation in front.

    Pickled as its source and the bytes of the files it read (so a worker process
    or a Ray task rebuilds it without the files or a pickled module). An exported
    program has no train mode: `train()` sets only this module's flag then.
    """

    def __init__(self, network: nn.Module, source: ModelSource, blobs: Mapping[str, bytes]) -> None:
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


def _rebuilt(source: ModelSource, blobs: Mapping[str, bytes], device: str) -> SourcedModel:
    return _load(source, blobs, torch.device(device))


def load_model(source: ModelSource, *, device: str | torch.device = "cpu") -> SourcedModel:
    """The model `source` describes, on `device`, in eval mode.

    Example:
        >>> source = model_source("resnet.pt2", mean=(0.5,) * 3, std=(0.25,) * 3)  # doctest: +SKIP
        >>> model = load_model(source, device="cuda")  # doctest: +SKIP
    """
    blobs = {}
    for name in source.files():
        try:
            blobs[name] = Path(name).read_bytes()
        except OSError as error:
            raise ModelError(f"{name}: cannot be read ({error})") from None
    return _load(source, blobs, resolve_device(device))


def _load(source: ModelSource, blobs: Mapping[str, bytes], device: torch.device) -> SourcedModel:
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


def _built(source: ModelSource, blobs: Mapping[str, bytes]) -> nn.Module:
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
