"""Sparse-RS: random search for sparse adversarial samples from scores alone.

Croce, Andriushchenko, Singh, Flammarion and Hein, "Sparse-RS: a versatile framework
for query-efficient sparse black-box adversarial attacks" (AAAI 2022; the authors'
code: github.com/fra31/sparse-rs, `rs_attacks.py`). The L0 threat model: at most k
pixels change (all channels of a pixel together; for flat features, k features), each
to a vertex of the bounds (every channel at its low or its high bound). The search
keeps k perturbed pixels; each step swaps `max(1, floor(alpha_i * k))` of them for
as many unperturbed ones with fresh random vertices and keeps the swap when the loss
goes down (or the sample is fooled), `alpha_i` falling piecewise from `alpha_init` as
the queries are spent (the authors' schedule, rescaled to the query budget). The loss
is the margin on the oracle's scores: `F_y - max_{j != y} F_j` untargeted, `max_{j !=
t} F_j - F_t` targeted (the authors use cross-entropy for targeted attacks: the margin
needs no knowledge of whether the scores are logits or probabilities).

Every query goes through a `QueryLedger`, and each sample's random draws are keyed by
(seed, sample index, step) (counter-based: `jsma._hashing`), so a sample searches
alike in any batch, the search runs batched over the samples, and a resumed run
replays what was asked from the log (no query sent twice) and goes on where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from jsma._hashing import keyed_uniform, splitmix64
from jsma._io import atomic_write
from jsma._records import write_record
from jsma.blackbox._ledger import QUERY_LOG, QueryLedger
from jsma.blackbox._oracles import Oracle, OracleAnswer
from jsma.data import Dataset
from jsma.errors import ConfigurationError, OracleError

__all__ = ["SparseRsOutcome", "SparseRsResult", "SparseRsSettings", "run_sparse_rs", "sparse_rs"]

# The authors' piecewise schedule of alpha for L0: up to this step (of 10,000: the
# budget is rescaled to it), alpha_init divided by this.
_SCHEDULE = ((0, 1), (50, 2), (200, 4), (500, 5), (1000, 6), (2000, 8), (4000, 10),
             (6000, 12), (8000, 15), (math.inf, 20))  # fmt: skip


@dataclass(frozen=True)
class SparseRsSettings:
    """`pixels`: k, the most pixels changed, all channels of a pixel together (with
    `features`: the most features, each channel on its own; flat inputs: features
    either way); `queries_per_sample`: the search's budget for each sample (its first
    query included); `alpha_init`: the share of k swapped at first (the authors' 0.3
    untargeted, 0.1 targeted); `seed` of each sample's random draws."""

    pixels: int
    queries_per_sample: int = 10_000
    alpha_init: float = 0.3
    seed: int = 0
    features: bool = False

    def __post_init__(self) -> None:
        if self.pixels < 1 or self.queries_per_sample < 1:
            raise ConfigurationError("pixels and queries per sample are at least 1")
        if not 0 < self.alpha_init <= 1:
            raise ConfigurationError(f"alpha_init is in (0, 1], got {self.alpha_init}")

    def swapped(self, iteration: int) -> int:
        """How many pixels step `iteration` swaps: alpha_i * k, at least one."""
        scaled = int(iteration / self.queries_per_sample * 10_000)
        divisor = next(d for bound, d in _SCHEDULE if scaled <= bound)
        return max(int(self.alpha_init / divisor * self.pixels), 1)


@dataclass(frozen=True)
class SparseRsResult:
    """Per sample: the adversarial sample (the best found, fooling or not), whether it
    fools the oracle, the queries its search spent (0: none run, the oracle already
    wrong on the original), and the pixels changed (at most k)."""

    adversarial: np.ndarray
    success: np.ndarray
    queries: np.ndarray
    pixels_changed: np.ndarray
    already_wrong: np.ndarray


def _margin(answer: OracleAnswer, classes: np.ndarray, targeted: bool) -> np.ndarray:
    """The loss to minimise (below zero: fooled), from scores; NaN where unanswered."""
    if not len(answer):
        return np.zeros(0)
    if answer.scores is None:
        raise OracleError("Sparse-RS needs the oracle's scores, and it gives labels only")
    scores = answer.scores.astype(np.float64)
    rows = np.arange(len(scores))
    own = scores[rows, classes]
    others = scores.copy()
    others[rows, classes] = -np.inf
    best_other = others.max(axis=1)
    margin = best_other - own if targeted else own - best_other
    margin[~answer.answered] = np.nan
    return margin


# What each keyed draw is for (a counter of `keyed_uniform`).
_START, _OUT, _INTO, _COLOUR, _OTHER = range(5)


def _vertices(
    keys: np.ndarray, step: int, channels: int, count: int, bounds: tuple[float, float]
) -> np.ndarray:
    """Random vertices of the colour cube, (len(keys), channels, count)."""
    bits = keyed_uniform(keys, step, _COLOUR, size=channels * count) < 0.5
    low, high = bounds
    return np.where(bits, low, high).astype(np.float32).reshape(len(keys), channels, count)


def _smallest(scores: np.ndarray, count: int) -> np.ndarray:
    """Per row, the positions of the `count` smallest scores, in increasing position."""
    if count == scores.shape[1]:
        return np.broadcast_to(np.arange(count), scores.shape).copy()
    return np.sort(np.argpartition(scores, count - 1, axis=1)[:, :count], axis=1)


def sparse_rs(
    ledger: QueryLedger,
    inputs: np.ndarray,
    labels: np.ndarray,
    settings: SparseRsSettings,
    *,
    bounds: tuple[float, float],
    targets: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SparseRsResult:
    """Sparse-RS on a batch (n, C, H, W) or (n, features) against the ledger's oracle.

    `labels`: the true classes; `targets` (one per sample) for a targeted attack;
    `indices` key each sample's random draws (default 0..n-1: give the samples' data
    indices so that any subset searches alike). The oracle is asked the originals first
    (a sample it already gets wrong is not attacked), then, step by step, one candidate
    per sample still unfooled, all in one request. Every draw is keyed by (seed, index,
    step): the search of a sample does not depend on the batch it is in.
    """
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    n = len(x)
    channels = x.shape[1] if x.ndim == 4 and not settings.features else 1
    flat = x.reshape(n, channels, -1)  # (n, C, P): P pixels, or features with C = 1
    pixels = flat.shape[2]
    k = settings.pixels
    if k >= pixels:
        raise ConfigurationError(f"{k} pixels of {pixels}: Sparse-RS changes fewer than all")
    targeted = targets is not None
    goal = np.asarray(targets if targeted else labels, dtype=np.int64)
    keys = splitmix64(np.asarray(np.arange(n) if indices is None else indices, np.uint64))
    keys = splitmix64(keys ^ splitmix64(np.uint64(settings.seed)))

    clean = ledger.answer(x)
    already_wrong = clean.answered & (clean.labels != labels)
    if targeted:
        already_wrong |= clean.answered & (clean.labels == goal)
    # Each sample's perturbed pixels (sorted) and its best sample; start: k random pixels.
    chosen = _smallest(keyed_uniform(keys, 0, _START, size=pixels), k)
    best = flat.copy()
    np.put_along_axis(best, chosen[:, None, :], _vertices(keys, 0, channels, k, bounds), axis=2)
    queries = np.zeros(n, dtype=np.int64)
    loss = np.full(n, np.inf)
    fooled = np.zeros(n, dtype=bool)
    active = np.flatnonzero(~already_wrong & clean.answered)
    first = ledger.answer(best[active].reshape(len(active), *x.shape[1:]))
    loss[active] = _margin(first, goal[active], targeted)
    fooled[active] = _fooled(first, goal[active], targeted)
    queries[active] = 1
    for step in range(1, settings.queries_per_sample):
        active = np.flatnonzero(~already_wrong & clean.answered & ~fooled)
        if not len(active):
            break
        swap = settings.swapped(step)
        held = keys[active]
        # Which perturbed pixels go back to the original, which unperturbed ones come in.
        out = _smallest(keyed_uniform(held, step, _OUT, size=k), swap)
        into_scores = keyed_uniform(held, step, _INTO, size=pixels)
        np.put_along_axis(into_scores, chosen[active], np.inf, axis=1)
        into = _smallest(into_scores, swap)
        leaving = np.take_along_axis(chosen[active], out, axis=1)
        candidates = best[active].copy()
        originals = flat[active]
        restored = np.take_along_axis(originals, leaving[:, None, :], axis=2)
        np.put_along_axis(candidates, leaving[:, None, :], restored, axis=2)
        colours = _vertices(held, step, channels, swap, bounds)
        if swap == 1:  # one pixel: its new colour must differ from its original (authors')
            old = np.take_along_axis(originals, into[:, None, :], axis=2)
            same = (colours == old).all(axis=(1, 2))
            if same.any():
                other = keyed_uniform(held[same], step, _OTHER, size=1)[:, 0]
                flips = 1 + (other * (2**channels - 1)).astype(np.int64)  # in [1, 2^C)
                bits = (flips[:, None] >> np.arange(channels)[None, :]) & 1
                low, high = bounds
                flipped = np.where(
                    bits.astype(bool),
                    np.where(colours[same, :, 0] == low, high, low),
                    colours[same, :, 0],
                )
                colours[same, :, 0] = flipped.astype(np.float32)
        np.put_along_axis(candidates, into[:, None, :], colours, axis=2)
        replaced = chosen[active].copy()
        np.put_along_axis(replaced, out, into, axis=1)
        answer = ledger.answer(candidates.reshape(len(active), *x.shape[1:]))
        queries[active] += 1
        margin = _margin(answer, goal[active], targeted)
        wins = _fooled(answer, goal[active], targeted)
        better = answer.answered & ((margin < loss[active]) | wins)
        kept = active[better]
        best[kept] = candidates[better]
        chosen[kept] = np.sort(replaced[better], axis=1)
        loss[kept] = margin[better]
        fooled[kept] = wins[better]
        if on_step is not None:
            on_step(step, int(fooled.sum()))
    changed = (best != flat).any(axis=1).sum(axis=1)  # pixels (or features) changed
    return SparseRsResult(
        adversarial=best.reshape(x.shape), success=fooled, queries=queries,
        pixels_changed=changed, already_wrong=already_wrong,
    )  # fmt: skip


def _fooled(answer: OracleAnswer, goal: np.ndarray, targeted: bool) -> np.ndarray:
    hit = answer.labels == goal if targeted else answer.labels != goal
    return answer.answered & hit


@dataclass(frozen=True)
class SparseRsOutcome:
    """A Sparse-RS run on test samples [start, stop): over the samples the oracle had
    right (`attacked`), the share fooled, the queries a fooled sample took (median and
    mean), the most pixels any sample changed (never above k), the queries the search
    asked (`queries`: the originals' and every candidate's, whether sent now or answered
    from the log), the inputs the run's log has sent to the oracle in all (`log_spent`,
    other runs in the same directory included), and where the samples are (`samples`:
    a `.npz`)."""

    KIND: ClassVar[str] = "blackbox-sparse-rs"
    FORMAT: ClassVar[int] = 1

    oracle: str
    oracle_identity: str
    data: str
    settings: SparseRsSettings
    targeted: bool
    held_out: tuple[int, int]
    attacked: int
    success: float
    median_queries: float
    mean_queries: float
    most_pixels_changed: int
    queries: int
    log_spent: int
    seconds: float
    samples: str


def run_sparse_rs(
    oracle: Oracle,
    data: Dataset,
    out: str | Path,
    settings: SparseRsSettings,
    *,
    samples: int = 1000,
    start: int = 0,
    targeted: bool = False,
    query_budget: int | None = None,
    oracle_reference: str | None = None,
    progress: bool = False,
) -> SparseRsOutcome:
    """Sparse-RS on `samples` test samples from `start`, against `oracle`, through the
    query log in `out` (a rerun or a resume asks nothing twice); targeted: one random
    other class per sample, seeded. The samples go to `out/NAME.npz` and the outcome to
    `out/NAME.json` (NAME: `sparse-rs-k<K>`, `-targeted` for a targeted run).

    Example:
        >>> settings = SparseRsSettings(pixels=10, queries_per_sample=1000)
        >>> outcome = run_sparse_rs(oracle, load_mnist(), "runs/srs", settings)  # doctest: +SKIP
    """
    out = Path(out)
    stop = min(start + samples, len(data.test))
    if start >= stop:
        raise ConfigurationError(f"no test samples from {start} ({len(data.test)} in all)")
    indices = np.arange(start, stop)
    inputs, labels = (t.numpy() for t in data.test.tensors(indices))
    targets = None
    if targeted:
        shift = np.array([np.random.default_rng([settings.seed, int(i), 1]).integers(
            1, data.num_classes) for i in indices])  # fmt: skip
        targets = (labels + shift) % data.num_classes
    name = (f"sparse-rs-k{settings.pixels}" + ("-features" if settings.features else "")
            + ("-targeted" if targeted else ""))  # fmt: skip
    started = time.perf_counter()
    bar = tqdm(total=len(indices), desc=name, unit="fooled", disable=not progress)

    def show(iteration: int, fooled: int) -> None:
        bar.update(fooled - bar.n)

    with QueryLedger(oracle, out / QUERY_LOG, budget=query_budget, record_inputs=False) as ledger:
        result = sparse_rs(
            ledger, inputs, labels, settings, bounds=data.bounds, targets=targets,
            indices=indices, on_step=show,
        )  # fmt: skip
        spent = ledger.spent
    bar.close()
    with atomic_write(out / f"{name}.npz") as handle:
        np.savez(
            handle, index=indices, label=labels,
            target=targets if targets is not None else np.full(len(indices), -1),
            adversarial=result.adversarial, success=result.success, queries=result.queries,
            pixels_changed=result.pixels_changed, already_wrong=result.already_wrong,
        )  # fmt: skip
    attacked = ~result.already_wrong
    took = result.queries[result.success]
    outcome = SparseRsOutcome(
        oracle=oracle_reference or oracle.identity, oracle_identity=oracle.identity,
        data=data.location or data.source, settings=settings, targeted=targeted,
        held_out=(start, stop), attacked=int(attacked.sum()),
        success=float(result.success[attacked].mean()) if attacked.any() else float("nan"),
        median_queries=float(np.median(took)) if len(took) else float("nan"),
        mean_queries=float(took.mean()) if len(took) else float("nan"),
        most_pixels_changed=int(result.pixels_changed.max()),
        queries=int(result.queries.sum()) + len(indices), log_spent=spent,
        seconds=time.perf_counter() - started, samples=f"{name}.npz",
    )  # fmt: skip
    write_record(out / f"{name}.json", outcome)
    return outcome
