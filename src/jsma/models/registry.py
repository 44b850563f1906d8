"""Architectures by name, so checkpoints can say how to rebuild their model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

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
        arguments = {
            # JSON turns tuples into lists; the builders take tuples.
            key: tuple(value) if isinstance(value, list) else value
            for key, value in data.get("arguments", {}).items()
        }
        return cls(str(data["architecture"]), arguments)


def build_model(architecture: str, **arguments: Any) -> nn.Module:
    """Build the architecture registered as `architecture` with `arguments`."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None
    return builder(**arguments)
