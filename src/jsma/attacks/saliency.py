"""Adversarial saliency maps and the choice of the next feature or pair.

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

__all__ = [
    "FeatureChoice",
    "PairChoice",
    "pareto_front",
    "saliency_map",
    "select_feature",
    "select_pair",
]


def _oriented(
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
    gain, push = _oriented(alpha, beta, increasing)
    return torch.where((gain >= 0) & (push >= 0), gain * push, torch.zeros_like(gain))


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


def pareto_front(gain: torch.Tensor, push: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mask of the valid points (gain_i, push_i) that no valid point dominates.

    j dominates i when gain_j >= gain_i and push_j >= push_i, one of them
    strictly. Points are sorted by gain then push, both descending; a point is
    on the front when its push exceeds every push of a strictly larger gain and
    is the largest push of its own gain. All shapes (batch, features).
    """
    low = torch.finfo(gain.dtype).min
    gain = torch.where(valid, gain, low)
    push = torch.where(valid, push, low)
    by_push = torch.argsort(push, dim=1, descending=True, stable=True)
    order = by_push.gather(
        1, torch.argsort(gain.gather(1, by_push), dim=1, descending=True, stable=True)
    )
    sorted_gain, sorted_push = gain.gather(1, order), push.gather(1, order)
    positions = torch.arange(gain.shape[1], device=gain.device).expand_as(order)
    starts_group = torch.ones_like(valid)
    starts_group[:, 1:] = sorted_gain[:, 1:] != sorted_gain[:, :-1]
    group_start = torch.where(starts_group, positions, 0).cummax(dim=1).values
    running_max = sorted_push.cummax(dim=1).values
    before_group = torch.where(
        group_start > 0, running_max.gather(1, (group_start - 1).clamp(min=0)), float("-inf")
    )
    on_front = (sorted_push > before_group) & (sorted_push == sorted_push.gather(1, group_start))
    return torch.zeros_like(valid).scatter(1, order, on_front) & valid


class PairChoice(NamedTuple):
    """first < second: (batch,) the chosen pair; found: (batch,) whether one is admissible."""

    first: torch.Tensor
    second: torch.Tensor
    found: torch.Tensor


def _pair_scores(
    gain_p: torch.Tensor,
    push_p: torch.Tensor,
    gain_q: torch.Tensor,
    push_q: torch.Tensor,
    allowed: torch.Tensor,
) -> torch.Tensor:
    """G * P for the pairs that `allowed` admits and that satisfy G > 0 and P > 0, else -1."""
    pair_gain, pair_push = gain_p + gain_q, push_p + push_q
    admissible = allowed & (pair_gain > 0) & (pair_push > 0)
    return torch.where(admissible, pair_gain * pair_push, -1.0)


def select_pair(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    domain: torch.Tensor,
    *,
    increasing: bool = True,
    max_block_elements: int = 1 << 22,
) -> PairChoice:
    """Algorithm 3's choice: the admissible pair of the domain with the highest score.

    Exact (the same pair as `jsma.attacks.reference.select_pair_brute_force`,
    ties and rounding included) without the (features x features) matrix.

    Why few candidates suffice. Say r dominates q (gain_r >= gain_q and
    push_r >= push_q, one strictly). For any partner p other than r, the pair
    (p, r) is admissible whenever (p, q) is, and its score is at least as high:
    the sums grow and rounding is monotone. So from any pair (p, q), replacing
    q by a point that dominates it, other than p, while one exists, never
    lowers the score and ends at a point dominated by nothing but p. Such a
    point is on the Pareto front, or is dominated only by p; then p is on the
    front (whatever dominated p would dominate q too) and the point lies on
    the front of the rest: the second layer. So every feature's best partner
    is among the first two Pareto layers of the domain (tens of points for
    MNIST), and the search scores each feature against those candidates only,
    in blocks of at most `max_block_elements` scores: O(M * K), not O(M^2).

    The tie-break of the brute force (smallest p, then smallest q) follows:
    p is the smallest feature whose best score is the maximum, q the smallest
    larger feature that reaches it with p.

    alpha, beta, domain: (batch, features). Samples with found = False have
    no admissible pair; their first/second are meaningless.
    """
    gain, push = _oriented(alpha, beta, increasing)
    batch, features = gain.shape
    device = gain.device
    front = pareto_front(gain, push, domain)
    candidates = front | pareto_front(gain, push, domain & ~front)
    counts = candidates.sum(dim=1)
    width = max(int(counts.max()), 1)
    # Candidates first, each sample's in increasing feature order.
    index = torch.sort(candidates.to(torch.int8), dim=1, descending=True, stable=True).indices
    index = index[:, :width]
    present = torch.arange(width, device=device) < counts[:, None]
    cand_gain, cand_push = gain.gather(1, index)[:, None, :], push.gather(1, index)[:, None, :]

    # Each feature's best score against the candidates (never itself).
    best = torch.empty(batch, features, dtype=torch.float64, device=device)
    block = max(1, max_block_elements // max(batch * width, 1))
    for start in range(0, features, block):
        rows = torch.arange(start, min(start + block, features), device=device)
        allowed = (
            domain[:, rows, None] & present[:, None, :] & (rows[None, :, None] != index[:, None, :])
        )
        scores = _pair_scores(
            gain[:, rows, None], push[:, rows, None], cand_gain, cand_push, allowed
        )
        best[:, rows] = scores.max(dim=2).values
    top, first = best.max(dim=1)  # the first maximum: the smallest p

    # The smallest partner q > p that reaches the top score with p.
    columns = torch.arange(features, device=device)
    allowed = domain & (columns[None, :] > first[:, None])
    row = _pair_scores(
        gain.gather(1, first[:, None]), push.gather(1, first[:, None]), gain, push, allowed
    )
    second = (row == top[:, None]).to(torch.int8).argmax(dim=1)
    return PairChoice(first, second, top > 0)
