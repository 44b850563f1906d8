"""Adversarial saliency maps and the choice of the next feature (the pair search is
`jsma.attacks._pair_search`).

Notation (paper Section III-B and Algorithm 3): for target t,
alpha_i = dF_t/dx_i and beta_i = sum over j != t of dF_j/dx_i. All functions
here are pure and batch-first: alpha, beta and the search domain have shape
(batch, features).

Both directions reduce to one problem. Write gain_i = s * alpha_i and
push_i = -s * beta_i with s = +1 when increasing features and s = -1 when
decreasing them. Then
- the maps S+ and S- are gain_i * push_i where gain_i >= 0 and push_i >= 0,
  else 0;
- a pair (p, q) is admissible when G = gain_p + gain_q > 0 and
  P = push_p + push_q > 0, and its score -alpha * beta equals G * P.

Scores are computed in float64 so that strict dominance between candidates
stays strict after rounding: the fast pair search and the brute-force
reference then pick the same pair. Ties are broken deterministically: the
highest score, then the smallest feature index (smallest (p, q) with p < q
for pairs).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["adversarial_distance", "saliency_map"]


def oriented(
    alpha: torch.Tensor, beta: torch.Tensor, increasing: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    sign = 1.0 if increasing else -1.0
    return sign * alpha.double(), -sign * beta.double()


def saliency_map(
    alpha: torch.Tensor, beta: torch.Tensor, *, increasing: bool = True
) -> torch.Tensor:
    """The adversarial saliency map S+ (increasing) or S- (decreasing), any shape.

    S+[i] = alpha_i * |beta_i| if alpha_i >= 0 and beta_i <= 0, else 0 (paper
    Equation 10); S-[i] = |alpha_i| * beta_i if alpha_i <= 0 and beta_i >= 0,
    else 0 (Equation 11). Returned in float64.
    """
    gain, push = oriented(alpha, beta, increasing)
    return torch.where((gain >= 0) & (push >= 0), gain * push, torch.zeros_like(gain))


def pair_saliency(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    *,
    increasing: bool = True,
) -> torch.Tensor:
    """The pair form of the maps (Algorithm 3): the score of the pairs (first, second).

    alpha, beta: (batch, features); first, second: (batch, pairs) feature
    indices. With a = alpha_p + alpha_q and b = beta_p + beta_q, a pair is
    admissible when a > 0 and b < 0 (increasing) or a < 0 and b > 0
    (decreasing); its score is -a * b, and 0 when it is not admissible.
    Returns (batch, pairs) float64.
    """
    gain, push = oriented(alpha, beta, increasing)
    pair_gain = gain.gather(1, first) + gain.gather(1, second)
    pair_push = push.gather(1, first) + push.gather(1, second)
    admissible = (pair_gain > 0) & (pair_push > 0)
    return torch.where(admissible, pair_gain * pair_push, torch.zeros_like(pair_gain))


def adversarial_distance(
    alpha: torch.Tensor, beta: torch.Tensor, *, increasing: bool = True
) -> torch.Tensor:
    """A(X, t) = 1 - (1/M) #{i : S(X, t)[i] > 0}, per sample (paper Section V-C).

    alpha, beta: (batch, *input_shape) at the original input. The share of
    features whose saliency is zero: close to 1 means few features help
    towards t, so t is hard to reach. Returns (batch,) float64.
    """
    salient = saliency_map(alpha, beta, increasing=increasing).flatten(1) > 0
    return 1.0 - salient.double().mean(dim=1)


class FeatureChoice(NamedTuple):
    """feature: (batch,) the chosen feature; found: (batch,) whether any scored > 0."""

    feature: torch.Tensor
    found: torch.Tensor


def select_feature(
    alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor, *, increasing: bool = True
) -> FeatureChoice:
    """Algorithm 1's choice: the feature of the domain with the highest saliency.

    alpha, beta, domain: (batch, features). A sample whose domain holds no
    feature with a positive score gets found = False (its index is then
    meaningless and must not be used).
    """
    scores = torch.where(domain, saliency_map(alpha, beta, increasing=increasing), -1.0)
    best, index = scores.max(dim=1)  # max returns the first (smallest) index on ties
    return FeatureChoice(index, best > 0)


def pareto_layers(
    gain: torch.Tensor, push: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the first two Pareto layers of the valid points (gain_i, push_i).

    j dominates i when gain_j >= gain_i and push_j >= push_i, one of them
    strictly. The first layer holds the valid points that no valid point
    dominates; the second, those that only first-layer points dominate. One
    sort by gain: a point is on a layer when its push exceeds every push of
    a strictly larger gain (a running maximum) and is the largest push of its
    own gain (a group maximum). All shapes (batch, features).
    """
    low = torch.finfo(gain.dtype).min
    order = torch.argsort(torch.where(valid, gain, low), dim=1, descending=True, stable=True)
    sorted_gain = torch.where(valid, gain, low).gather(1, order)
    sorted_valid = valid.gather(1, order)
    positions = torch.arange(gain.shape[1], device=gain.device).expand_as(order)
    starts = torch.ones_like(sorted_valid)
    starts[:, 1:] = sorted_gain[:, 1:] != sorted_gain[:, :-1]
    group = starts.cumsum(dim=1) - 1
    group_start = torch.where(starts, positions, 0).cummax(dim=1).values
    earlier = (group_start - 1).clamp(min=0)

    def layer(included: torch.Tensor) -> torch.Tensor:
        sorted_push = torch.where(included, push.gather(1, order), low)
        running = sorted_push.cummax(dim=1).values
        before = torch.where(group_start > 0, running.gather(1, earlier), float("-inf"))
        group_max = torch.full_like(sorted_push, low).scatter_reduce(
            1, group, sorted_push, reduce="amax"
        )
        return included & (sorted_push > before) & (sorted_push == group_max.gather(1, group))

    first = layer(sorted_valid)
    second = layer(sorted_valid & ~first)
    unsorted = torch.zeros_like(valid)
    return unsorted.scatter(1, order, first), unsorted.scatter(1, order, second)


def pareto_front(gain: torch.Tensor, push: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mask of the valid points that no valid point dominates (the first Pareto layer)."""
    return pareto_layers(gain, push, valid)[0]
