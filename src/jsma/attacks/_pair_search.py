"""The exact pair search of Algorithm 3 without the M x M matrix of pairs: the best
admissible pair from the Pareto layers of (gain, push), in float64 so that the pair
matches the brute force's under rounding (see `jsma.attacks._saliency` for the
notation and the tie-break).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from jsma.attacks._saliency import oriented, pareto_layers

__all__ = ["select_pair"]


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


def _compact(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices of each row's True entries, in increasing order, padded to a common width.

    Returns (index, present), both (batch, width); padding has present = False
    and index 0. Linear in the mask's size (no sort).
    """
    counts = mask.sum(dim=1)
    width = max(int(counts.max()), 1) if mask.shape[0] else 1
    rows, columns = mask.nonzero(as_tuple=True)  # row-major: columns increase within a row
    slots = mask.cumsum(dim=1)[rows, columns] - 1
    index = torch.zeros((mask.shape[0], width), dtype=torch.long, device=mask.device)
    index[rows, slots] = columns
    present = torch.arange(width, device=mask.device) < counts[:, None]
    return index, present


def _layer_superset(
    gain: torch.Tensor, push: torch.Tensor, valid: torch.Tensor, top: int
) -> torch.Tensor:
    """A subset of the valid points that holds all of their first two Pareto layers.

    Let T be the `top`-th largest gain. A point r with gain_r < T and push_r at
    most the push of some point q2 of the `top` largest gains that another of
    them (q1) dominates, lies under the chain q1 > q2 > r: on the third layer
    or beyond. Dropping such points changes neither of the first two layers
    (whatever a dropped point dominates, its dominators' chain dominates too),
    and what is left, for MNIST about `top` points, is cheap to sort.
    All shapes (batch, features); `top` < features.
    """
    low = torch.finfo(gain.dtype).min
    masked_gain = torch.where(valid, gain, low)
    top_gain, top_index = masked_gain.topk(top, dim=1)
    top_valid = valid.gather(1, top_index)
    top_push = torch.where(top_valid, push.gather(1, top_index), low)
    # dominates[b, i, j]: point i of the top set dominates point j of it.
    gain_i, gain_j = top_gain[:, :, None], top_gain[:, None, :]
    push_i, push_j = top_push[:, :, None], top_push[:, None, :]
    dominates = (
        (gain_i >= gain_j) & (push_i >= push_j) & ((gain_i > gain_j) | (push_i > push_j))
        & top_valid[:, :, None] & top_valid[:, None, :]
    )  # fmt: skip
    covered = torch.where(dominates.any(dim=1), top_push, low).amax(dim=1, keepdim=True)
    return valid & ((masked_gain >= top_gain[:, -1:]) | (push > covered))


def _pareto_candidates(
    gain: torch.Tensor, push: torch.Tensor, valid: torch.Tensor, top: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the first two Pareto layers, computed on `_layer_superset` when it pays."""
    if gain.shape[1] <= 2 * top:
        return pareto_layers(gain, push, valid)
    superset = _layer_superset(gain, push, valid, top)
    # The superset is padded to its largest row: the few rows where it keeps hundreds
    # of points (their top gains form one front) are sorted apart, not with every row.
    wide = superset.sum(dim=1) > 4 * top
    if not bool(wide.any()):
        return _layers_within(gain, push, superset)
    first, second = torch.zeros_like(valid), torch.zeros_like(valid)
    for rows in (~wide).nonzero().squeeze(1), wide.nonzero().squeeze(1):
        if len(rows):
            first[rows], second[rows] = _layers_within(gain[rows], push[rows], superset[rows])
    return first, second


def _layers_within(
    gain: torch.Tensor, push: torch.Tensor, superset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first two Pareto layers of the points of `superset`, sorted compacted."""
    index, present = _compact(superset)
    first, second = pareto_layers(gain.gather(1, index), push.gather(1, index), present)
    rows, slots = present.nonzero(as_tuple=True)
    columns = index[rows, slots]
    layers = []
    for sub in (first, second):
        layer = torch.zeros_like(superset)
        layer[rows, columns] = sub[rows, slots]
        layers.append(layer)
    return layers[0], layers[1]


def _best_partner_scores(
    gain: torch.Tensor,
    push: torch.Tensor,
    rows: torch.Tensor,
    row_present: torch.Tensor,
    partners: torch.Tensor,
    partner_present: torch.Tensor,
    max_block_elements: int,
) -> torch.Tensor:
    """For each row feature, its best score with any partner feature other than itself.

    rows: (batch, R) and partners: (batch, K) feature indices. Returns (batch, R),
    -1 where nothing is admissible. Works in blocks of rows to bound memory.
    """
    batch, width = rows.shape
    partner_gain = gain.gather(1, partners)[:, None, :]
    partner_push = push.gather(1, partners)[:, None, :]
    best = torch.full((batch, width), -1.0, dtype=gain.dtype, device=gain.device)
    block = max(1, max_block_elements // max(batch * partners.shape[1], 1))
    for start in range(0, width, block):
        chunk = rows[:, start : start + block]
        allowed = (
            row_present[:, start : start + block, None]
            & partner_present[:, None, :]
            & (chunk[:, :, None] != partners[:, None, :])
        )
        scores = _pair_scores(
            gain.gather(1, chunk)[:, :, None],
            push.gather(1, chunk)[:, :, None],
            partner_gain,
            partner_push,
            allowed,
        )
        best[:, start : start + block] = scores.amax(dim=2)
    return best


def _candidate_best_scores(
    gain: torch.Tensor,
    push: torch.Tensor,
    candidates: torch.Tensor,
    candidate_present: torch.Tensor,
    max_block_elements: int,
) -> torch.Tensor:
    """Each candidate's best score with another candidate of its row, (batch, K), -1 for
    padding and where nothing is admissible.

    The candidates are padded to the widest row, and the pairs cost the width squared:
    rows are scored in groups of similar counts (widths of powers of two), so that the
    many rows with a dozen candidates do not pay for the few with fifty (WJSMA's).
    """
    width = candidates.shape[1]
    counts = candidate_present.sum(dim=1)
    bucket = torch.ceil(torch.log2(counts.clamp(min=1).double())).long()
    if width <= 8 or int(bucket.min()) == int(bucket.max()):
        return _best_partner_scores(
            gain, push, candidates, candidate_present, candidates, candidate_present,
            max_block_elements,
        )  # fmt: skip
    # Scored on the candidates' own values, by their slots (distinct within a row).
    candidate_gain, candidate_push = gain.gather(1, candidates), push.gather(1, candidates)
    slots = torch.arange(width, device=gain.device).expand_as(candidates)
    best = torch.full(candidates.shape, -1.0, dtype=gain.dtype, device=gain.device)
    for level in bucket.unique().tolist():
        rows = (bucket == level).nonzero().squeeze(1)
        narrow = min(width, 1 << level)
        chosen, present = slots[rows, :narrow], candidate_present[rows, :narrow]
        best[rows, :narrow] = _best_partner_scores(
            candidate_gain[rows, :narrow], candidate_push[rows, :narrow],
            chosen, present, chosen, present, max_block_elements,
        )  # fmt: skip
    return best


def _candidate_corners(
    gain: torch.Tensor,
    push: torch.Tensor,
    candidates: torch.Tensor,
    candidate_present: torch.Tensor,
    groups: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, P), (batch, groups): the largest gain and the largest push of each group of
    candidates, ranked by gain and cut into `groups` groups of consecutive ranks
    (the lowest float where a group is empty).

    (gain_p + G) * (push_p + P) bounds p's scores with the group's candidates, the
    rounded ones too (sums and products of positive numbers round monotonically). On
    a Pareto front push falls as gain rises, so each corner lies close to its group
    and the bound is far tighter than the domain's one corner where the points are
    flat (WJSMA's and TJSMA's).
    """
    low = torch.finfo(gain.dtype).min
    candidate_gain = torch.where(candidate_present, gain.gather(1, candidates), low)
    candidate_push = torch.where(candidate_present, push.gather(1, candidates), low)
    count = candidate_present.sum(dim=1, keepdim=True).clamp(min=1)
    rank = candidate_gain.argsort(dim=1, descending=True).argsort(dim=1)
    group = torch.where(candidate_present, rank * groups // count, groups)  # absent: apart
    empty = torch.full((gain.shape[0], groups + 1), low, dtype=gain.dtype, device=gain.device)
    corner_gain = empty.scatter_reduce(1, group, candidate_gain, reduce="amax")
    corner_push = empty.scatter_reduce(1, group, candidate_push, reduce="amax")
    return corner_gain[:, :groups], corner_push[:, :groups]


def select_pair(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    domain: torch.Tensor,
    *,
    increasing: bool = True,
    max_block_elements: int = 1 << 22,
    prefilter_top: int = 32,
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
    lies in the first two Pareto layers C of the domain (about 13 points for
    MNIST), and doing the same to p shows that the best score s* is reached
    within C x C.

    The brute force's tie-break (smallest p, then smallest q) needs the
    smallest feature p that reaches s* with some partner, which rounding may
    put outside C. Only a feature before the first candidate that reaches s*,
    whose upper bound (gain_p + max gain) * (push_p + max push) reaches s*,
    can; of those, only the ones whose tighter bound on the corners of groups
    of C (`_candidate_corners`) still reaches s* are scored against C. q is
    then the smallest feature after p that reaches s* with it. Cost
    O(M + K^2 + S K) for K candidates and S such features, in blocks of at
    most `max_block_elements` scores; rows are scored in groups of similar K.
    The layers themselves are found among the `prefilter_top` largest gains
    and the few points that no dominated one of those covers (`_layer_superset`),
    which spares sorting every feature.

    alpha, beta, domain: (batch, features). Samples with found = False have
    no admissible pair; their first/second are meaningless.
    """
    gain, push = oriented(alpha, beta, increasing)
    features = gain.shape[1]
    first_layer, second_layer = _pareto_candidates(gain, push, domain, prefilter_top)
    candidates, candidate_present = _compact(first_layer | second_layer)
    # s*, reached within the candidates; p_C, the first candidate that reaches it.
    candidate_best = _candidate_best_scores(
        gain, push, candidates, candidate_present, max_block_elements
    )
    top = candidate_best.amax(dim=1)
    first_candidate = candidates.gather(
        1, (candidate_best == top[:, None]).to(torch.int8).argmax(dim=1, keepdim=True)
    ).squeeze(1)

    # Other features before p_C whose upper bound (gain + max gain) * (push + max push)
    # reaches s*: only rounding lets them tie. Those whose tighter bound, on the corners
    # of groups of candidates, reaches it too are scored against the candidates, flat.
    low = torch.finfo(gain.dtype).min
    max_gain = torch.where(domain, gain, low).amax(dim=1, keepdim=True)
    max_push = torch.where(domain, push, low).amax(dim=1, keepdim=True)
    bound = _pair_scores(gain, push, max_gain, max_push, domain)
    positions = torch.arange(features, device=gain.device)
    contenders = (
        (bound >= top[:, None])
        & (top[:, None] > 0)
        & ~(first_layer | second_layer)
        & (positions[None, :] < first_candidate[:, None])
    )
    first = first_candidate.clone()
    sample, feature = contenders.nonzero(as_tuple=True)  # ordered by sample, then feature
    if len(sample) > 2 * len(top):  # flat points: worth the tighter bound
        corner_gain, corner_push = _candidate_corners(gain, push, candidates, candidate_present)
        tighter = _pair_scores(
            gain[sample, feature, None], push[sample, feature, None],
            corner_gain[sample], corner_push[sample], corner_gain[sample] > low,
        ).amax(dim=1)  # fmt: skip
        kept = tighter >= top[sample]
        sample, feature = sample[kept], feature[kept]
    block = max(1, max_block_elements // candidates.shape[1])
    for start in range(0, len(sample), block):
        b, f = sample[start : start + block], feature[start : start + block]
        partners = candidates[b]
        scores = _pair_scores(
            gain[b, f, None],
            push[b, f, None],
            gain.gather(1, candidates)[b],
            push.gather(1, candidates)[b],
            candidate_present[b] & (partners != f[:, None]),
        )
        reached = scores.amax(dim=1) == top[b]
        first = first.scatter_reduce(0, b[reached], f[reached], reduce="amin")
    first = first[:, None]

    # The smallest partner q > p that reaches s* with p.
    after = torch.arange(gain.shape[1], device=gain.device)[None, :] > first
    row = _pair_scores(gain.gather(1, first), push.gather(1, first), gain, push, domain & after)
    second = (row == top[:, None]).to(torch.int8).argmax(dim=1)
    return PairChoice(first.squeeze(1), second, top > 0)
