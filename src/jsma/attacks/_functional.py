"""The function form of the attack, and the paper's 9 attacks per sample."""

from __future__ import annotations

import torch
from torch import nn

from jsma.attacks._checks import Bound
from jsma.attacks._crafting import JSMA, PairSearch
from jsma.attacks._derivatives import Output
from jsma.attacks._pair_search import select_pair
from jsma.attacks._results import AttackResult
from jsma.settings import DEFAULT_THETA, PAPER_MAX_DISTORTION, Saliency, SearchDomain, Variant

__all__ = ["all_other_targets", "attack"]


def all_other_targets(
    x: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each sample once per class other than its label: the paper's 9 attacks per sample.

    x: (batch, *input_shape); labels: (batch,). Returns images (batch * (C - 1),
    *input_shape), sources and targets (batch * (C - 1),), sample by sample,
    targets in increasing order.
    """
    classes = torch.arange(num_classes, device=labels.device)
    others = classes[None, :] != labels[:, None]  # (batch, C), C - 1 true per row
    targets = classes.expand(len(labels), num_classes)[others]
    repeat = num_classes - 1
    return x.repeat_interleave(repeat, dim=0), labels.repeat_interleave(repeat), targets


def attack(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    sources: torch.Tensor | None = None,
    theta: float = DEFAULT_THETA,
    max_distortion: float = PAPER_MAX_DISTORTION,
    variant: Variant = "pairs",
    output: Output = "logits",
    saliency: Saliency = "jsma",
    search_domain: SearchDomain = "unsaturated",
    binary: bool = False,
    mask: torch.Tensor | None = None,
    clip_min: Bound = 0.0,
    clip_max: Bound = 1.0,
    progress: bool = False,
    pair_search: PairSearch = select_pair,
) -> AttackResult:
    """Run JSMA on a batch: the function form of `JSMA(...)(model, x, targets)`.

    Example:
        >>> result = attack(model, images, targets, max_distortion=0.145)  # doctest: +SKIP
        >>> result.adversarial.shape == images.shape  # doctest: +SKIP
        True
    """
    config = JSMA(
        theta=theta,
        max_distortion=max_distortion,
        variant=variant,
        output=output,
        saliency=saliency,
        search_domain=search_domain,
        binary=binary,
        clip_min=clip_min,
        clip_max=clip_max,
    )
    return config(
        model, x, targets, sources=sources, mask=mask, progress=progress, pair_search=pair_search
    )
