"""Where an attacked model came from, typed: what a campaign's manifest stores and the
report reads, resolved once where the model is obtained."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from jsma.models._external import ModelSource, SourcedModel
from jsma.paper import CLOSEST

__all__ = ["ModelProvenance", "model_fingerprint"]

Origin = Literal["recipe", "checkpoint", "source", "module"]


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers by name; a model loaded from a source is named
    as its network is (with its normalisation, if any), so that the same weights have
    one fingerprint whether given as a module, a builder, a program or TorchScript."""
    if not isinstance(model, SourcedModel):
        return dict(model.state_dict())
    state = dict(model.network.state_dict())
    if model.normalization is not None:
        state |= {f"normalization.{k}": v for k, v in model.normalization.state_dict().items()}
    return state


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers: names, dtypes, shapes, values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(_weights(model).items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        # reshape: a 0-dim tensor (batch norm's step count) has no byte view of its own.
        digest.update(
            value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b""
        )
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelProvenance:
    """How a model was obtained and what is known of it.

    `fingerprint` (of its weights) is what resuming a campaign checks; the rest
    describes: the jsma `recipe` of the model cache it came from, or the
    `checkpoint` file; its `architecture`; the recipe it was `trained` with; its
    `accuracies` per split; how a defended model was made (`defense`); and `notes`,
    anything else its maker said (free form). A model from outside jsma (an exported
    program, TorchScript, a builder and weights) has its `source`, which loads it again.
    """

    fingerprint: str
    architecture: str = "model"
    recipe: str | None = None
    checkpoint: str | None = None
    training: str | None = None
    accuracies: dict[str, float] = field(default_factory=dict)
    defense: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    source: ModelSource | None = None

    @classmethod
    def of(cls, model: nn.Module, **facts: Any) -> ModelProvenance:
        """The provenance of `model` (its fingerprint computed here) with `facts`; the
        architecture defaults to the module's class name."""
        if isinstance(model, SourcedModel):
            facts.setdefault("source", model.source)
            facts.setdefault("architecture", model.source.architecture)
        facts.setdefault("architecture", type(model).__name__.lower())
        return cls(fingerprint=model_fingerprint(model), **facts)

    @property
    def origin(self) -> Origin:
        if self.recipe is not None:
            return "recipe"
        if self.checkpoint is not None:
            return "checkpoint"
        return "source" if self.source is not None else "module"

    @property
    def is_paper_setting(self) -> bool:
        """The LeNet of the recipe closest to the paper's figures (`jsma.paper.CLOSEST`),
        as `jsma replicate` trains (or ships) it by default."""
        return self.recipe == CLOSEST.recipe and self.architecture == "lenet"

    def describe(self) -> str:
        """In words, for the report: which model this is."""
        if self.origin == "recipe":
            return f"the {self.architecture} of recipe '{self.recipe}'"
        if self.origin == "checkpoint":
            return f"the {self.architecture} of checkpoint {self.checkpoint}"
        if self.source is not None:
            return self.source.describe()
        return f"a {self.architecture} given as a module (fingerprint {self.fingerprint[:12]})"

    @classmethod
    def from_description(cls, fingerprint: str, about: Mapping[str, Any]) -> ModelProvenance:
        """The provenance a free-form description (manifests of format 2 and 3, that is
        jsma 0.1.0 and 0.2.0) gives: known keys become fields, the others notes."""
        about = dict(about)

        def text(key: str) -> str | None:
            value = about.pop(key, None)
            return None if value is None else str(value)

        accuracies = about.pop("accuracies", None) or {}
        defense = about.pop("defense", None) or {}
        return cls(
            fingerprint=fingerprint,
            architecture=text("architecture") or "model",
            recipe=text("recipe"),
            checkpoint=text("checkpoint"),
            training=text("training"),
            accuracies={str(k): float(v) for k, v in dict(accuracies).items()},
            defense=dict(defense),
            notes=about,
        )
