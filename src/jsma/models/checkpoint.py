"""Checkpoints that cannot run code: safetensors weights plus JSON metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from jsma._io import atomic_write
from jsma.errors import CheckpointError
from jsma.models.registry import ModelSpec

__all__ = ["CheckpointInfo", "LoadedModel", "load_checkpoint", "load_weights", "save_checkpoint"]

_METADATA_KEY = "jsma"


def _package_version() -> str:
    try:
        return metadata.version("jsma")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its model: how to rebuild it, how it was made."""

    spec: ModelSpec
    recipe: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    accuracies: Mapping[str, float] = field(default_factory=dict)
    defense: Mapping[str, Any] = field(default_factory=dict)  # how a defended model was made
    jsma_version: str = field(default_factory=_package_version)
    torch_version: str = torch.__version__

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "recipe": dict(self.recipe),
            "seed": self.seed,
            "data": dict(self.data),
            "accuracies": dict(self.accuracies),
            "defense": dict(self.defense),
            "jsma_version": self.jsma_version,
            "torch_version": self.torch_version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointInfo:
        return cls(
            spec=ModelSpec.from_json(data["spec"]),
            recipe=data.get("recipe", {}),
            seed=data.get("seed"),
            data=data.get("data", {}),
            accuracies=data.get("accuracies", {}),
            defense=data.get("defense", {}),
            jsma_version=data.get("jsma_version", "unknown"),
            torch_version=data.get("torch_version", "unknown"),
        )


@dataclass(frozen=True)
class LoadedModel:
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


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (OSError, ValueError, RuntimeError, safetensors.SafetensorError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({error})") from error
    return tensors, header


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load the weights stored at `path` into `model`, which must match exactly."""
    tensors, _ = _read(path)
    _load_into(model, tensors, path)
    return model


def _load_into(model: nn.Module, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = [
        f"{name}: checkpoint {tuple(tensors[name].shape)}, model {tuple(value.shape)}"
        for name, value in expected.items()
        if name in tensors and tensors[name].shape != value.shape
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
    model.load_state_dict(dict(tensors))


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model a checkpoint describes and load its weights.

    The model is returned in eval mode on `map_location`.
    """
    tensors, header = _read(path)
    if _METADATA_KEY not in header:
        raise CheckpointError(f"{path}: no jsma metadata; use load_weights with your own model")
    try:
        info = CheckpointInfo.from_json(json.loads(header[_METADATA_KEY]))
        model = info.spec.build()
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid jsma metadata ({error})") from error
    _load_into(model, tensors, path)
    return LoadedModel(model=model.to(map_location).eval(), info=info)
