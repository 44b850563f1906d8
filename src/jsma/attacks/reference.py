"""Brute-force references, kept for tests and benchmarks: slow, simple, obviously right.

`select_pair_brute_force` scores every pair in a (batch, features, features)
matrix, as every public JSMA implementation does; `jsma.attacks.select_pair`
must choose exactly the same pair without that matrix.
"""

from __future__ import annotations

import torch

from jsma.attacks._pair_search import PairChoice

__all__ = ["select_pair_brute_force"]


def select_pair_brute_force(
    alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor, *, increasing: bool = True
) -> PairChoice:
    """Algorithm 3's pair choice over all M(M-1)/2 pairs, written straight from the paper.

    Increasing: admissible when alpha_p + alpha_q > 0 and beta_p + beta_q < 0;
    decreasing: alpha sum < 0 and beta sum > 0; score -alpha_sum * beta_sum,
    in float64. Ties: the smallest (p, q) with p < q.
    """
    a, b = alpha.double(), beta.double()
    features = a.shape[1]
    pair_alpha = a[:, :, None] + a[:, None, :]
    pair_beta = b[:, :, None] + b[:, None, :]
    signs_ok = (
        (pair_alpha > 0) & (pair_beta < 0) if increasing else (pair_alpha < 0) & (pair_beta > 0)
    )
    upper = torch.ones(features, features, dtype=torch.bool, device=a.device).triu(diagonal=1)
    allowed = signs_ok & upper & domain[:, :, None] & domain[:, None, :]
    scores = torch.where(allowed, -pair_alpha * pair_beta, -1.0).flatten(1)
    best, flat = scores.max(dim=1)
    return PairChoice(flat // features, flat % features, best > 0)
