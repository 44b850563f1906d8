"""One step of the attack: the features it changes, by the pair search, the single
feature search, or M-JSMA's weighing of every class and both directions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from jsma.attacks._derivatives import (
    TargetDerivatives,
    check_finite,
    check_logits,
    forward_derivative,
)
from jsma.attacks._saliency import pair_saliency, select_feature
from jsma.errors import ModelError

if TYPE_CHECKING:
    from jsma.attacks._crafting import AttackSettings, PairSearch

__all__: list[str] = []  # the steps of `JSMA.__call__`

# The attack's derivatives at (x, goals) within the bounds, `untargeted` or not.
Derive = Callable[..., TargetDerivatives]


def maximal_step(
    settings: AttackSettings,
    model: nn.Module,
    x: torch.Tensor,
    sources: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    unchanged: torch.Tensor,
    search: PairSearch,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """M-JSMA's choice over every class and both directions (see the class docstring)."""
    with torch.no_grad():
        outputs = check_logits(model(x.detach().clone()), len(x), x.dtype)
    if settings.output == "probabilities":
        outputs = outputs.softmax(dim=1)
    check_finite("outputs", outputs)
    jacobian = forward_derivative(model, x, output=settings.output).flatten(2)  # (n, C, M)
    check_finite("forward derivatives", jacobian)
    batch, classes, features = jacobian.shape
    if settings.output == "probabilities" and settings.saliency == "jsma":
        beta = -jacobian  # the probabilities sum to 1 (see target_derivatives)
    else:
        probabilities = outputs if settings.output == "probabilities" else outputs.softmax(1)
        weights = (
            torch.ones_like(probabilities) if settings.saliency == "jsma" else probabilities
        )[:, :, None]
        weighted = weights * jacobian
        beta = weighted.sum(dim=1, keepdim=True) - weighted
    alpha = jacobian
    # The source must go down: for its row the roles swap, as untargeted JSMA's.
    is_source = torch.nn.functional.one_hot(sources, classes).bool()[:, :, None]
    alpha, beta = torch.where(is_source, beta, alpha), torch.where(is_source, alpha, beta)

    flat = x.detach().flatten(1)
    scores, pairs = [], []
    for increasing in (True, False):
        gain, push = alpha, beta
        if settings.saliency == "tjsma":
            room = (upper - flat if increasing else flat - lower)[:, None, :]
            gain, push = gain * room, push * room
        movable = unchanged
        if settings.search_domain == "unsaturated":
            movable = unchanged & (flat < upper if increasing else flat > lower)
        rows_alpha, rows_beta = gain.reshape(-1, features), push.reshape(-1, features)
        rows_domain = movable.repeat_interleave(classes, dim=0)
        first, second, found = search(rows_alpha, rows_beta, rows_domain, increasing=increasing)
        score = pair_saliency(
            rows_alpha, rows_beta, first[:, None], second[:, None], increasing=increasing
        ).squeeze(1)
        scores.append(torch.where(found, score, -1.0).view(batch, classes))
        pairs.append(torch.stack((first, second), dim=1).view(batch, classes, 2))
    # (n, classes, 2 directions), class-major: max takes the first of equal scores.
    best, index = torch.stack(scores, dim=2).flatten(1).max(dim=1)
    rows = torch.arange(batch, device=x.device)
    chosen = torch.stack(pairs, dim=2)[rows, index // 2, index % 2]
    sign = 1.0 - 2.0 * (index % 2).to(x.dtype)  # increasing first, then decreasing
    return chosen, best > 0, (sign * abs(settings.theta))[:, None], outputs


def choose(
    settings: AttackSettings,
    derive: Derive,
    model: nn.Module,
    x: torch.Tensor,
    goals: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    domain: torch.Tensor,
    *,
    untargeted: bool,
    search: PairSearch,
    known: TargetDerivatives | None,
    stale: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, TargetDerivatives | None]:
    """One step's choice: the features to change (n, k), whether any was admissible
    (n,), the signed change of each (n, 1), the model's outputs at x, and the
    derivatives to pass as `known` to the next step (None for M-JSMA). `derive` gives
    the attack's derivatives at x (`JSMA._derivatives`).

    `known`: the derivatives of the rows' last step, or None; `stale`: (n,) the rows
    whose x changed since, the only ones differentiated again (with the paper's
    search domain about half of the picks move nothing).
    """
    if settings.variant == "maximal":
        return *maximal_step(settings, model, x, goals, lower, upper, domain, search), None
    if known is None or bool(stale.all()):
        derivatives = derive(model, x, goals, lower, upper, untargeted=untargeted)
    elif not bool(stale.any()):
        derivatives = known
    else:
        rows = stale.nonzero().flatten()
        try:
            fresh = derive(model, x[rows], goals[rows], lower, upper, untargeted=untargeted)
        except ModelError as error:
            raise error.at(tuple(rows.tolist())) from None
        derivatives = TargetDerivatives(
            *(old.index_copy(0, rows, new) for old, new in zip(known, fresh, strict=True))
        )
    alpha, beta, outputs = derivatives
    if settings.variant == "pairs":
        first, second, found = search(alpha, beta, domain, increasing=settings.increasing)
        chosen = torch.stack((first, second), dim=1)
    else:
        feature, found = select_feature(alpha, beta, domain, increasing=settings.increasing)
        chosen = feature[:, None]
    change = torch.full((len(x), 1), settings.theta, dtype=x.dtype, device=x.device)
    return chosen, found, change, outputs, derivatives
