"""Checkpoints that cannot run code: safetensors weights plus JSON metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import safetensors
import safetensors.torch
import torch
from torch import nn

from jsma._io import atomic_write
from jsma._records import dump, load, loads_json
from jsma._version import __version__
from jsma.errors import CheckpointError
from jsma.models._registry import ModelSpec

__all__ = ["CheckpointInfo", "LoadedModel", "load_checkpoint", "save_checkpoint"]

_METADATA_KEY = "jsma"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its model: how to rebuild it, how it was made."""

    KIND: ClassVar[str] = "checkpoint"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (no header)

    spec: ModelSpec
    recipe: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    accuracies: Mapping[str, float] = field(default_factory=dict)
    defense: Mapping[str, Any] = field(default_factory=dict)  # how a defended model was made
    jsma_version: str = __version__
    torch_version: str = torch.__version__

    @classmethod
    def upgraded(cls, data: dict[str, Any], format: int) -> dict[str, Any]:
        # Written before the header (the shipped checkpoints among them): the versions
        # a checkpoint does not name are not this jsma's.
        return {"jsma_version": "unknown", "torch_version": "unknown", **data}

    def to_json(self) -> dict[str, Any]:
        return dump(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointInfo:
        """Read checked metadata: a field of the wrong type raises `RecordError`
        (a `ValueError`) naming it."""
        return load(cls, data)


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint (in eval mode) and what the checkpoint says about it."""

    model: nn.Module
    info: CheckpointInfo


def save_checkpoint(path: Path, model: nn.Module, info: CheckpointInfo) -> None:
    """Write the model's weights and `info` to `path` atomically."""
    tensors = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    payload = safetensors.torch.save(tensors, metadata={_METADATA_KEY: json.dumps(info.to_json())})
    with atomic_write(path) as handle:
        handle.write(payload)


_READ_ERRORS = (OSError, ValueError, RuntimeError, safetensors.SafetensorError)


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """The stored tensors' shapes and the metadata, without reading any tensor."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            shapes = {
                name: tuple(handle.get_slice(name).get_shape())
                for name in handle.keys()  # noqa: SIM118 - a safe_open handle, not a dict
            }
    except _READ_ERRORS as error:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({error})") from error
    return shapes, header


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except _READ_ERRORS as error:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({error})") from error


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load the weights stored at `path` into `model`, which must match exactly."""
    shapes, _ = _read_header(path)
    _check_fits(model, shapes, path)
    model.load_state_dict(_read_tensors(path))
    return model


def _check_fits(model: nn.Module, shapes: Mapping[str, tuple[int, ...]], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong_shape = [
        f"{name}: checkpoint {shapes[name]}, model {tuple(value.shape)}"
        for name, value in expected.items()
        if name in shapes and shapes[name] != tuple(value.shape)
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected)}")
        problems.extend(wrong_shape)
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this architecture ({'; '.join(problems)})"
        )


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model a checkpoint describes and load its weights.

    The model is returned in eval mode on `map_location`.
    """
    shapes, header = _read_header(path)
    if _METADATA_KEY not in header:
        if "jsma-gan" in header:  # what `jsma gan train` writes (layer above: named here)
            raise CheckpointError(f"{path}: a GAN generator checkpoint, not a classifier")
        raise CheckpointError(f"{path}: no jsma metadata; use load_weights with your own model")
    try:
        info = CheckpointInfo.from_json(loads_json(header[_METADATA_KEY]))
        # On the meta device first: parameters without memory, so a spec that would
        # allocate gigabytes is compared with the stored shapes before it costs anything.
        with torch.device("meta"):
            outline = info.spec.build()
    except (ValueError, KeyError, TypeError, OverflowError) as error:
        what = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise CheckpointError(f"{path}: invalid jsma metadata ({what})") from error
    _check_fits(outline, shapes, path)
    model = info.spec.build()
    model.load_state_dict(_read_tensors(path))
    return LoadedModel(model=model.to(map_location).eval(), info=info)
