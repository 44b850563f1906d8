"""Architectures by name, so checkpoints can say how to rebuild their model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from jsma.errors import ConfigurationError
from jsma.models.networks import MLP, AndNet, LeNet

__all__ = ["ARCHITECTURES", "ModelSpec", "build_model"]

ARCHITECTURES: Mapping[str, Callable[..., nn.Module]] = {
    "lenet": LeNet,
    "mlp": MLP,
    "and": AndNet,
}


@dataclass(frozen=True)
class ModelSpec:
    """An architecture name and the keyword arguments of its builder (JSON-able)."""

    architecture: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        return build_model(self.architecture, **self.arguments)

    def to_json(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "arguments": dict(self.arguments)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSpec:
        architecture, stored = data["architecture"], data.get("arguments", {})
        if not isinstance(architecture, str):
            raise TypeError(f"architecture must be a str, got {type(architecture).__name__}")
        if not isinstance(stored, dict):
            raise TypeError(f"arguments must be a dict, got {type(stored).__name__}")
        arguments = {
            # JSON turns tuples into lists; the builders take tuples.
            key: tuple(value) if isinstance(value, list) else value
            for key, value in stored.items()
        }
        return cls(architecture, arguments)


def build_model(architecture: str, **arguments: Any) -> nn.Module:
    """Build the architecture registered as `architecture` with `arguments`."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise ConfigurationError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None
    return builder(**arguments)
