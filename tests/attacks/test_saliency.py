from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jsma.attacks import _pair_search as pair_search
from jsma.attacks import saliency_map, select_pair
from jsma.attacks._pair_search import _layer_superset, _pareto_candidates
from jsma.attacks._saliency import pair_saliency, pareto_front, pareto_layers, select_feature
from jsma.attacks.reference import select_pair_brute_force


def test_saliency_maps_follow_the_paper() -> None:
    alpha = torch.tensor([[2.0, -1.0, 3.0, 0.5, -2.0, 0.0]])
    beta = torch.tensor([[-1.0, -4.0, 2.0, -3.0, 5.0, -1.0]])
    increasing = saliency_map(alpha, beta, increasing=True)
    decreasing = saliency_map(alpha, beta, increasing=False)
    # S+ = alpha |beta| where alpha >= 0 and beta <= 0 (Equation 10).
    np.testing.assert_allclose(increasing.numpy(), [[2.0, 0, 0, 1.5, 0, 0]])
    # S- = |alpha| beta where alpha <= 0 and beta >= 0 (Equation 11).
    np.testing.assert_allclose(decreasing.numpy(), [[0, 0, 0, 0, 10.0, 0]])


@pytest.mark.parametrize("increasing", [True, False])
def test_pair_saliency_follows_algorithm_3(increasing: bool) -> None:
    generator = torch.Generator().manual_seed(4)
    alpha, beta = torch.randn(3, 7, generator=generator), torch.randn(3, 7, generator=generator)
    first = torch.randint(0, 7, (3, 5), generator=generator)
    second = torch.randint(0, 7, (3, 5), generator=generator)
    scores = pair_saliency(alpha, beta, first, second, increasing=increasing)
    for b in range(3):
        for k in range(5):
            p, q = int(first[b, k]), int(second[b, k])
            a = float(alpha[b, p]) + float(alpha[b, q])
            c = float(beta[b, p]) + float(beta[b, q])
            ok = (a > 0 and c < 0) if increasing else (a < 0 and c > 0)
            assert float(scores[b, k]) == pytest.approx(-a * c if ok else 0.0, rel=1e-6)


def _feature_reference(alpha: np.ndarray, beta: np.ndarray, domain: np.ndarray, increasing: bool):  # type: ignore[no-untyped-def]
    chosen, found = [], []
    for a_row, b_row, d_row in zip(alpha, beta, domain, strict=True):
        best, best_index = 0.0, 0
        for i, (a, b, d) in enumerate(zip(a_row, b_row, d_row, strict=True)):
            ok = (a >= 0 and b <= 0) if increasing else (a <= 0 and b >= 0)
            score = abs(a) * abs(b) if ok and d else 0.0
            if score > best:
                best, best_index = score, i
        chosen.append(best_index)
        found.append(best > 0)
    return np.array(chosen), np.array(found)


@pytest.mark.parametrize("increasing", [True, False])
def test_select_feature_matches_a_loop(increasing: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        alpha = torch.randint(-2, 3, (6, 9), generator=generator).float()
        beta = torch.randint(-2, 3, (6, 9), generator=generator).float()
        domain = torch.rand(6, 9, generator=generator) < 0.6
        index, found = select_feature(alpha, beta, domain, increasing=increasing)
        ref_index, ref_found = _feature_reference(
            alpha.numpy(), beta.numpy(), domain.numpy(), increasing
        )
        np.testing.assert_array_equal(found.numpy(), ref_found)
        np.testing.assert_array_equal(index.numpy()[ref_found], ref_index[ref_found])


def test_pareto_front_matches_the_definition() -> None:
    generator = torch.Generator().manual_seed(2)
    for _ in range(100):
        gain = torch.randint(-3, 4, (3, 12), generator=generator).double()
        push = torch.randint(-3, 4, (3, 12), generator=generator).double()
        valid = torch.rand(3, 12, generator=generator) < 0.8
        front = pareto_front(gain, push, valid)
        for b in range(3):
            for i in range(12):
                dominated = any(
                    valid[b, j]
                    and gain[b, j] >= gain[b, i]
                    and push[b, j] >= push[b, i]
                    and (gain[b, j] > gain[b, i] or push[b, j] > push[b, i])
                    for j in range(12)
                )
                assert bool(front[b, i]) == (bool(valid[b, i]) and not dominated)


def _assert_same_pair(alpha, beta, domain, increasing, block=1 << 22, top=32) -> None:  # type: ignore[no-untyped-def]
    fast = select_pair(
        alpha, beta, domain, increasing=increasing, max_block_elements=block, prefilter_top=top
    )
    slow = select_pair_brute_force(alpha, beta, domain, increasing=increasing)
    torch.testing.assert_close(fast.found, slow.found)
    found = slow.found
    torch.testing.assert_close(fast.first[found], slow.first[found])
    torch.testing.assert_close(fast.second[found], slow.second[found])
    assert bool((fast.first[found] < fast.second[found]).all())
    rows = torch.arange(len(found))[found]
    assert bool(domain[rows, fast.first[found]].all() and domain[rows, fast.second[found]].all())


@st.composite
def _pair_problems(draw):  # type: ignore[no-untyped-def]
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 24)))
    # A coarse grid makes exact ties common; floats cover the general case,
    # with exponents far enough apart that sums round.
    if draw(st.booleans()):
        values = st.integers(-4, 4).map(lambda v: v / 4)
    else:
        values = st.floats(-10, 10, allow_nan=False, width=32)
    alpha = draw(arrays(np.float32, shape, elements=values))
    beta = draw(arrays(np.float32, shape, elements=values))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    domain = draw(arrays(np.float64, shape, elements=st.floats(0, 1))) < density
    return (
        torch.from_numpy(alpha),
        torch.from_numpy(beta),
        torch.from_numpy(domain),
        draw(st.booleans()),
        draw(st.sampled_from([1, 5, 64, 1 << 22])),
        draw(st.sampled_from([1, 2, 3, 32])),  # prefilter size: small ones exercise it
    )


@pytest.mark.slow  # 1,500 drawn problems against the brute force
@settings(max_examples=1500, deadline=None)
@given(_pair_problems())
def test_fast_pair_search_equals_brute_force(problem) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, domain, increasing, block, top = problem
    _assert_same_pair(alpha, beta, domain, increasing, block, top)


@pytest.mark.parametrize("increasing", [True, False])
def test_fast_pair_search_on_mnist_sized_random_inputs(increasing: bool) -> None:
    generator = torch.Generator().manual_seed(3)
    for _ in range(10):
        alpha = torch.randn(8, 784, generator=generator) * torch.rand(8, 1, generator=generator)
        beta = torch.randn(8, 784, generator=generator)
        domain = torch.rand(8, 784, generator=generator) < 0.9
        for top in (4, 32):
            _assert_same_pair(alpha, beta, domain, increasing, top=top)


def test_no_admissible_pair_is_reported() -> None:
    alpha = torch.tensor([[-1.0, -2.0, -0.5]])
    beta = torch.tensor([[1.0, 1.0, 1.0]])
    assert not bool(select_pair(alpha, beta, torch.ones(1, 3, dtype=torch.bool)).found[0])
    # The same features are all admissible when decreasing.
    assert bool(
        select_pair(alpha, beta, torch.ones(1, 3, dtype=torch.bool), increasing=False).found[0]
    )


def test_empty_domain() -> None:
    alpha, beta = torch.ones(2, 5), -torch.ones(2, 5)
    choice = select_pair(alpha, beta, torch.zeros(2, 5, dtype=torch.bool))
    assert not bool(choice.found.any())


@pytest.mark.parametrize("top", [1, 2, 5])
def test_prefiltered_layers_equal_the_full_ones(top: int) -> None:
    """The superset filter drops only third-layer points: both layers come out the same."""
    generator = torch.Generator().manual_seed(5)
    for _ in range(20):
        # A coarse grid: ties in gain and in push are common.
        gain = torch.randint(-3, 4, (6, 40), generator=generator).double()
        push = torch.randint(-3, 4, (6, 40), generator=generator).double()
        valid = torch.rand(6, 40, generator=generator) < 0.8
        expected = pareto_layers(gain, push, valid)
        actual = _pareto_candidates(gain, push, valid, top)
        for want, got in zip(expected, actual, strict=True):
            torch.testing.assert_close(got, want)


def test_rows_whose_superset_is_wide_are_sorted_apart() -> None:
    """A row whose points all lie on one front keeps them all in the superset (WJSMA
    meets such rows); it is sorted on its own, and the layers and pairs stay exact."""
    generator = torch.Generator().manual_seed(6)
    features = 300
    gain = torch.randn(5, features, generator=generator, dtype=torch.float64)
    push = torch.randn(5, features, generator=generator, dtype=torch.float64)
    ranks = torch.randperm(features, generator=generator).double()
    gain[2], push[2] = ranks, features - ranks  # one front of 300 points
    valid = torch.rand(5, features, generator=generator) < 0.9
    assert int(_layer_superset(gain, push, valid, 8).sum(dim=1).max()) > 4 * 8
    expected = pareto_layers(gain, push, valid)
    actual = _pareto_candidates(gain, push, valid, 8)
    for want, got in zip(expected, actual, strict=True):
        torch.testing.assert_close(got, want)
    # As alpha and beta of the increasing map: gain = alpha, push = -beta.
    _assert_same_pair(gain, -push, valid, True, top=8)


@pytest.mark.parametrize("increasing", [True, False])
def test_flat_points_take_the_tighter_bound_and_stay_exact(
    increasing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WJSMA's and TJSMA's points are flat (near one front): the domain's one
    corner lets hundreds of features contend for the tie-break, the corners of groups
    of candidates (`_candidate_corners`) drop most of them; on a coarse grid, where
    sums tie exactly, the pair is still the brute force's."""
    calls = []
    corners = pair_search._candidate_corners

    def counted(
        gain: torch.Tensor, push: torch.Tensor, candidates: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(gain.shape[0])
        return corners(gain, push, candidates, present)

    monkeypatch.setattr(pair_search, "_candidate_corners", counted)
    generator = torch.Generator().manual_seed(7)
    sign = 1.0 if increasing else -1.0
    for grid in (8, 1 << 20):
        # Near one falling front (push about 1 - gain): the domain's corner (1, 1)
        # bounds every feature above the best score.
        gain = torch.randint(0, grid, (6, 400), generator=generator).double() / grid
        noise = torch.randint(0, 4, (6, 400), generator=generator).double() / 64
        push = (1 - gain - noise).clamp(min=1 / 64)
        domain = torch.rand(6, 400, generator=generator) < 0.9
        _assert_same_pair(sign * gain, -sign * push, domain, increasing)
    assert calls


def test_a_rounding_tie_outside_the_layers_is_found_through_the_tighter_bound() -> None:
    """At 2**53 adding 0.25 or 0.75 rounds away: features 0 to 9, dominated by feature
    10 (gain 0.75) and 11 (2**53), still reach the best score with 11. The brute force
    picks (0, 11), so the tie-break must keep them as contenders, under both bounds."""
    gain = torch.tensor([[0.25] * 10 + [0.75, 2.0**53]], dtype=torch.float64)
    push = torch.ones_like(gain)
    domain = torch.ones_like(gain, dtype=torch.bool)
    choice = select_pair(gain, -push, domain)
    assert (int(choice.first[0]), int(choice.second[0])) == (0, 11)
    _assert_same_pair(gain, -push, domain, True)
