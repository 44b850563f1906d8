"""`jsma study analyze`: what the participants saw, beside what the network saw.

Per observer kind (people, and each machine observer, never pooled), condition
(benign, increasing, decreasing) and distortion bucket: the share of answers
judging the image a digit, recognising the source class, and naming the target
class, each with a Wilson 95% interval; the network's rate beside them (it
outputs the target on every adversarial stimulus, by construction); median
response times; agreement between participants on each stimulus (Fleiss'
kappa over 11 categories: the ten digits and "not a digit"). Participants who
fail an attention check are excluded, and counted.

The Wilson interval treats every answer as independent. They are not: each
participant rates many stimuli and each stimulus is rated by many
participants, so answers share both. Beside it stands a crossed cluster
bootstrap (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat.):
participants and stimuli are resampled independently, with replacement, and
an answer counts as often as the product of its participant's and its
stimulus's draws. It is the interval for the share over new participants
*and* new stimuli, the question the study asks; it needs no model (a
mixed-effects logistic model would assume logit-normal effects, and its
intercept is a subject-specific quantity, not the share), and it is mildly
conservative in the crossed random-effects model. Tested on simulated studies
whose true share is known (coverage near 95%, where Wilson's falls far short).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import stats

from jsma._records import read_record
from jsma.metrics._core import distortion_bucket
from jsma.study._database import read_distortion_edges
from jsma.study._store import AnswerRow, StudyStore

__all__ = ["StudyAnalysis", "analyze", "read_analysis"]

MACHINE_PREFIX = "machine:"  # external ids of machine observers: machine:KIND:N
_CONDITIONS = ("benign", "increasing", "decreasing")


def observer_kind(external_id: str) -> str:
    """`human`, or the machine observer's kind (`machine:oracle:3` -> `oracle`)."""
    if external_id.startswith(MACHINE_PREFIX):
        return external_id[len(MACHINE_PREFIX) :].split(":", 1)[0] or "machine"
    return "human"


BOOTSTRAP_REPLICATES = 1000


@dataclass(frozen=True)
class Rate:
    """k of n, with its Wilson 95% interval (answers as independent) and the crossed
    cluster bootstrap's 95% interval (participants and stimuli as the clusters they
    are; see the module); NaN where not defined (n is 0, or not computed)."""

    k: int
    n: int
    share: float
    low: float
    high: float
    cluster_low: float = math.nan
    cluster_high: float = math.nan

    @classmethod
    def of(cls, k: int, n: int) -> Rate:
        if n == 0:
            return cls(0, 0, math.nan, math.nan, math.nan)
        interval = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        return cls(k, n, k / n, float(interval.low), float(interval.high))

    @classmethod
    def clustered(
        cls, outcomes: np.ndarray, participants: np.ndarray, stimuli: np.ndarray, *, seed: int = 0
    ) -> Rate:
        """The share of true `outcomes`, with both intervals; row i is the answer of
        participant `participants[i]` on stimulus `stimuli[i]`."""
        outcomes = np.asarray(outcomes, dtype=bool)
        rate = cls.of(int(outcomes.sum()), len(outcomes))
        if not len(outcomes):
            return rate
        low, high = crossed_bootstrap_interval(outcomes, participants, stimuli, seed=seed)
        return replace(rate, cluster_low=low, cluster_high=high)


def crossed_bootstrap_interval(
    outcomes: np.ndarray,
    participants: np.ndarray,
    stimuli: np.ndarray,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile interval of the share of `outcomes` under the pigeonhole bootstrap
    (Owen 2007): participants and stimuli redrawn independently with replacement, each
    answer weighted by the product of its two draw counts.

    Shapes: `outcomes`, `participants`, `stimuli` are (n,), one entry per answer.
    """
    y = np.asarray(outcomes, dtype=np.float64)
    _, people = np.unique(np.asarray(participants), return_inverse=True)
    _, images = np.unique(np.asarray(stimuli), return_inverse=True)
    rng = np.random.default_rng(seed)

    def draws(count: int, size: int) -> np.ndarray:
        """How often each of `count` clusters is drawn, in `size` resamples: (size, count)."""
        return rng.multinomial(count, np.full(count, 1 / count), size=size)

    estimates = []
    for start in range(0, replicates, 100):  # blocks bound the (replicates, n) weights
        size = min(100, replicates - start)
        weights = draws(people.max() + 1, size)[:, people]
        weights *= draws(images.max() + 1, size)[:, images]
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimates.append(np.where(total > 0, weights @ y / total, np.nan))
    values = np.concatenate(estimates)
    values = values[np.isfinite(values)]  # a draw sharing no answer has no share
    if not len(values):
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class ConditionLine:
    """One observer kind's answers on one condition (and distortion bucket)."""

    kind: str
    condition: str
    bucket: str  # "all", or "2-4" (% of the pixels changed)
    answers: int
    judged_digit: Rate
    saw_source: Rate
    saw_target: Rate  # None-target (benign) lines: not applicable, n = 0
    network_target: Rate  # the network's prediction is the target (adversarial)
    network_source: Rate  # the network's prediction is the source (benign)
    median_milliseconds: float


@dataclass(frozen=True)
class StudyAnalysis:
    """The whole analysis: lines per kind/condition/bucket, exclusions, agreement."""

    # 0: 0.1.0 (no header, Wilson intervals only); 2: 0.2.0, with the cluster bootstrap's
    # (a format but no kind); 3: the header.
    KIND: ClassVar[str] = "study-analysis"
    FORMAT: ClassVar[int] = 3

    lines: tuple[ConditionLine, ...]
    participants: dict[str, int]  # per kind, after exclusions
    excluded: dict[str, int]  # per kind: failed an attention check
    kappa: dict[str, float]  # per "kind/condition": Fleiss' kappa over stimuli
    # What the first question asked about: "digit" (MNIST's pages, and every analysis
    # before this field), or "class" when the study's classes have names.
    subject: str = "digit"

    @property
    def judged(self) -> str:
        """The first question's answer, in the study's words."""
        return "judged a digit" if self.subject == "digit" else "judged one of the classes"


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa for (items, categories) rating counts, raters per item may vary.

    Items with fewer than two ratings carry no agreement and are left out;
    NaN when fewer than one item remains or every rating falls in one category.
    """
    counts = np.asarray(counts, dtype=np.float64)
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    if not len(counts):
        return math.nan
    agreement = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / raters.sum()
    chance = float((shares**2).sum())
    if chance >= 1:
        return math.nan
    return float((agreement.mean() - chance) / (1 - chance))


def _failed_attention(rows: Sequence[AnswerRow], store: StudyStore) -> set[int]:
    failed = set()
    for row in rows:
        stimulus = store.stimuli[row.stimulus]
        if stimulus.condition != "attention":
            continue
        expected_digit = stimulus.expected_digit if stimulus.expected_is_digit else None
        if row.is_digit != stimulus.expected_is_digit or row.digit != expected_digit:
            failed.add(row.participant)
    return failed


def _bucket(distortion: float | None, edges: Sequence[float]) -> str:
    """The distortion bucket of a stimulus: "2-4" (`jsma.metrics.distortion_bucket`),
    or "over 14.5" beyond the edges."""
    (index,) = distortion_bucket(np.array([distortion or 0.0]), edges)
    if index < 0:
        return f"over {edges[-1]:g}"
    return f"{edges[index]:g}-{edges[index + 1]:g}"


def _line(kind: str, condition: str, bucket: str, rows: Sequence[AnswerRow]) -> ConditionLine:
    n = len(rows)
    adversarial = condition != "benign"
    people = np.array([r.participant for r in rows])
    images = np.array([r.stimulus for r in rows])

    def rate(outcomes: list[bool]) -> Rate:
        return Rate.clustered(np.array(outcomes, dtype=bool), people, images)

    return ConditionLine(
        kind=kind,
        condition=condition,
        bucket=bucket,
        answers=n,
        judged_digit=rate([r.is_digit for r in rows]),
        saw_source=rate([r.is_digit and r.digit == r.source for r in rows]),
        saw_target=rate([r.is_digit and r.digit == r.target for r in rows])
        if adversarial
        else Rate.of(0, 0),
        network_target=Rate.of(sum(r.prediction == r.target for r in rows), n)
        if adversarial
        else Rate.of(0, 0),
        network_source=Rate.of(
            sum(r.prediction == r.source for r in rows if r.prediction is not None),
            sum(r.prediction is not None for r in rows),
        ),
        median_milliseconds=float(np.median([r.milliseconds for r in rows])) if n else math.nan,
    )


def analyze(directory: Path) -> StudyAnalysis:
    """Analyze the answers stored in the study in `directory` (see the module)."""
    store = StudyStore.open(directory)
    edges = read_distortion_edges(directory)
    rows = store.answers()
    failed = _failed_attention(rows, store)
    by_kind: dict[str, list[AnswerRow]] = defaultdict(list)
    for row in rows:
        by_kind[observer_kind(row.external_id)].append(row)
    lines: list[ConditionLine] = []
    participants: dict[str, int] = {}
    excluded: dict[str, int] = {}
    kappa: dict[str, float] = {}
    for kind in sorted(by_kind):
        everyone = {r.participant for r in by_kind[kind]}
        kept = [r for r in by_kind[kind] if r.participant not in failed]
        participants[kind] = len(everyone - failed)
        excluded[kind] = len(everyone & failed)
        for condition in _CONDITIONS:
            chosen = [r for r in kept if r.condition == condition]
            if not chosen:
                continue
            lines.append(_line(kind, condition, "all", chosen))
            if condition != "benign":
                buckets: dict[str, list[AnswerRow]] = defaultdict(list)
                for r in chosen:
                    buckets[_bucket(r.distortion, edges)].append(r)
                lines += [_line(kind, condition, b, buckets[b]) for b in sorted(buckets, key=_low)]
            # One category per class, and one for "not a digit".
            per_stimulus: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(store.classes + 1))
            for r in chosen:
                answer = r.digit if r.is_digit and r.digit is not None else store.classes
                per_stimulus[r.stimulus][answer] += 1
            kappa[f"{kind}/{condition}"] = fleiss_kappa(np.array(list(per_stimulus.values())))
    subject = "digit" if store.class_names is None else "class"
    return StudyAnalysis(tuple(lines), participants, excluded, kappa, subject)


ANALYSIS_FILE, ANALYSIS_FIGURE = "analysis.json", "analysis.png"


def read_analysis(out: Path) -> StudyAnalysis:
    """The analysis `write_analysis` stored in `out`; a `JSMAError` naming the file if it
    is absent or damaged (what `jsma report --study` reads)."""
    return read_record(
        StudyAnalysis,
        out / ANALYSIS_FILE,
        missing="no study analysis here (run `jsma study analyze STUDY --out DIR` first)",
    )


def _low(bucket: str) -> float:
    return float(bucket.removeprefix("over ").split("-")[0])
