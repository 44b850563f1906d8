"""Architectures by name, so checkpoints can say how to rebuild their model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from jsma._records import decode, encode
from jsma.errors import ConfigurationError
from jsma.models._networks import MLP, AndNet, LeNet

__all__ = ["ModelSpec"]

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

    def __post_init__(self) -> None:
        # JSON turns tuples into lists; the builders take tuples.
        arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in self.arguments.items()}
        object.__setattr__(self, "arguments", arguments)

    def build(self) -> nn.Module:
        return build_model(self.architecture, **self.arguments)

    def to_json(self) -> dict[str, Any]:
        return dict(encode(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The spec `to_json` wrote, checked (`RecordError` names a wrong field)."""
        return decode(cls, data)


def build_model(architecture: str, **arguments: Any) -> nn.Module:
    """Build the architecture registered as `architecture` with `arguments`."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise ConfigurationError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None
    return builder(**arguments)
