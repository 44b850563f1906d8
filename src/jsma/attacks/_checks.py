"""What the attack checks of its inputs before any work: each problem named."""

from __future__ import annotations

import math

import torch
from torch import nn

from jsma.errors import ConfigurationError, InputTypeError
from jsma.settings import OUTPUTS, SALIENCIES, SEARCH_DOMAINS, VARIANTS

__all__: list[str] = []  # the steps of `JSMA.__call__`

Bound = float | torch.Tensor


def bound(value: Bound, name: str, like: torch.Tensor) -> torch.Tensor:
    """A bound as a flat (features,) tensor on x's device."""
    shape = like.shape[1:]
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    try:
        return torch.broadcast_to(tensor, shape).flatten()
    except RuntimeError:
        raise ConfigurationError(
            f"{name} of shape {tuple(tensor.shape)} does not broadcast to the input shape "
            f"{tuple(shape)}"
        ) from None


def check_mask(mask: object, x: torch.Tensor) -> torch.Tensor:
    """A mask of changeable features as (batch, features) bools on x's device."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InputTypeError(
            f"mask must be a bool tensor, True where a feature may change; got {kind}"
        )
    try:
        return torch.broadcast_to(mask.to(x.device), x.shape).flatten(1)
    except RuntimeError:
        raise ConfigurationError(
            f"mask of shape {tuple(mask.shape)} is neither one input's shape "
            f"{tuple(x.shape[1:])} nor the batch's {tuple(x.shape)}"
        ) from None


def check_labels(labels: torch.Tensor, name: str, batch: int, classes: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise InputTypeError(
            f"{name} must be a tensor of class indices, got {type(labels).__name__}"
        )
    if labels.shape != (batch,) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ConfigurationError(
            f"{name} must be integer class indices of shape ({batch},), "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    bad = (labels < 0) | (labels >= classes)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ConfigurationError(
            f"{name}[{first}] = {int(labels[first])} is not a class of this model "
            f"(0 to {classes - 1})"
        )
    return labels.long()


def check_binary(
    flat: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, theta: float
) -> None:
    """Binary features sit at a bound, and a change flips one to the other."""
    between = (flat != lower) & (flat != upper)
    if bool(between.any()):
        sample, feature = (int(v) for v in between.nonzero()[0])
        raise ConfigurationError(
            f"binary features must be at one of their bounds; x[{sample}] has feature "
            f"{feature} = {float(flat[sample, feature])} strictly between "
            f"{float(lower[feature])} and {float(upper[feature])}"
        )
    span = float((upper - lower).max())
    if abs(theta) < span:
        raise ConfigurationError(
            f"binary features flip from one bound to the other: |theta| must be at least "
            f"{span:g}, got {theta:g} (theta > 0 adds features, theta < 0 removes them)"
        )


def check_input(model: nn.Module, x: torch.Tensor, features_per_step: int) -> None:
    """The model and the batch are what the attack takes, on one device and dtype."""
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        hint = " (torch.from_numpy(x) makes one)" if hasattr(x, "__array__") else ""
        raise InputTypeError(f"x must be a torch.Tensor, got a {type(x).__name__}{hint}")
    if not x.dtype.is_floating_point:
        raise InputTypeError(f"x must be a floating point tensor, got {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0 or x[0].numel() < features_per_step:
        raise ConfigurationError(
            f"x must be a non-empty batch (batch, *input_shape) with at least "
            f"{features_per_step} features, got shape {tuple(x.shape)}"
        )
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise ConfigurationError(
            f"x is on {x.device} but the model is on {parameter.device}; move one of them"
        )
    if parameter is not None and parameter.dtype != x.dtype:
        raise InputTypeError(
            f"x is {x.dtype} but the model's parameters are {parameter.dtype}; convert one "
            "(any floating point type works, float32 and float64 best)"
        )
    if not bool(torch.isfinite(x).all()):
        raise ConfigurationError("x contains NaN or infinite values")


def checked_bounds(
    x: torch.Tensor, clip_min: Bound, clip_max: Bound
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bounds as flat (features,) tensors, numbers with low < high, and x inside them."""
    lower, upper = bound(clip_min, "clip_min", x), bound(clip_max, "clip_max", x)
    if bool(lower.isnan().any() or upper.isnan().any()):
        raise ConfigurationError("clip_min and clip_max must be numbers, not NaN")
    if bool((lower >= upper).any()):
        raise ConfigurationError("clip_min must be below clip_max for every feature")
    flat = x.detach().flatten(1)
    outside = (flat < lower) | (flat > upper)
    if bool(outside.any()):
        sample, feature = (int(v) for v in outside.nonzero()[0])
        raise ConfigurationError(
            f"x[{sample}] has feature {feature} = {float(flat[sample, feature])} outside "
            f"the bounds [{float(lower[feature])}, {float(upper[feature])}]"
        )
    return lower, upper


def checked_targets(targets: torch.Tensor, sources: torch.Tensor, classes: int) -> torch.Tensor:
    """Targets as class indices, none equal to its sample's source."""
    targets = check_labels(targets, "targets", len(sources), classes)
    same = targets == sources
    if bool(same.any()):
        first = int(same.nonzero()[0, 0])
        raise ConfigurationError(
            f"targets[{first}] = {int(targets[first])} equals the source class "
            f"of that sample; choose a different target"
        )
    return targets


def check_settings(
    theta: float,
    max_distortion: float,
    variant: str,
    output: str,
    saliency: str,
    search_domain: str,
) -> None:
    """The attack's settings are ones it has: each wrong one named, with what it takes."""
    if not math.isfinite(theta) or theta == 0:
        raise ConfigurationError(f"theta must be a non-zero finite number, got {theta}")
    if not 0 < max_distortion <= 1:
        raise ConfigurationError(
            f"max_distortion is a fraction of the features in (0, 1], got "
            f"{max_distortion} (the paper's 14.5% is 0.145)"
        )
    if variant not in VARIANTS:
        raise ConfigurationError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant == "maximal" and theta < 0:
        raise ConfigurationError(
            f"the maximal variant chooses the direction of each change: theta is its size "
            f"and must be positive, got {theta:g}"
        )
    if output not in OUTPUTS:
        raise ConfigurationError(f"output must be 'logits' or 'probabilities', got {output!r}")
    if saliency not in SALIENCIES:
        raise ConfigurationError(
            f"saliency must be one of {', '.join(SALIENCIES)}, got {saliency!r}"
        )
    if search_domain not in SEARCH_DOMAINS:
        raise ConfigurationError(
            f"search_domain must be one of {', '.join(SEARCH_DOMAINS)}, got {search_domain!r}"
        )
