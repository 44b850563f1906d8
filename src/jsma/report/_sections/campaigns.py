"""The campaigns: the results table beside the paper's, each campaign's matrices and
samples, the figures across campaigns, and what differs in their configuration."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jsma._records import flatten
from jsma.campaign._stored import data_fingerprint
from jsma.data._dataset import Dataset
from jsma.metrics import class_rates
from jsma.metrics._core import pair_counts
from jsma.paper import CLOSEST, PAPER
from jsma.report._figures import (
    budget_figure,
    distortion_histogram,
    heatmap,
    sample_grid,
    untargeted_grid,
)
from jsma.report._page import Picture, Section
from jsma.report._summary import CampaignSummary
from jsma.settings import MATRIX_CLASSES

__all__ = [
    "ClassTables",
    "across_section",
    "campaign_section",
    "campaign_sections",
    "class_tables",
    "configuration_section",
    "results_section",
]

logger = logging.getLogger(__name__)


def _masked(summary: CampaignSummary) -> str:
    mask = summary.manifest.spec.mask
    if mask is None:
        return ""
    total = math.prod(summary.manifest.data.input_shape)
    free = mask.changeable * total // math.prod(mask.shape)  # a broadcast mask repeats
    return f", {free:,} of its {total:,} features free to change (a mask)"


def _paper_setting(summary: CampaignSummary) -> bool:
    """Whether the paper's figures belong beside this campaign: MNIST, a paper direction
    (not M-JSMA's both), each other class as target, the paper's pairs and saliency."""
    spec, data = summary.manifest.spec, summary.manifest.data
    return (
        data.location in (None, "mnist")
        and summary.direction in PAPER
        and spec.targets == "all-others"
        and spec.attack.variant == "pairs"
        and spec.attack.saliency == "jsma"
        and spec.mask is None
        and not spec.attack.binary
    )


def results_section(summaries: Sequence[CampaignSummary]) -> Section:
    """What was attacked, in words, and each campaign's results line beside the paper's."""
    described = [
        f"{s.manifest.model.describe()}, attacked on its {s.manifest.spec.attack.output}"
        + _masked(s)
        for s in summaries
    ]
    # One sentence when the campaigns share their setting; else each campaign's own.
    settings = (
        described[:1]
        if len(set(described)) == 1
        else [f"{s.label}: {text}" for s, text in zip(summaries, described, strict=True)]
    )
    closest = any(
        s.manifest.model.is_paper_setting and s.manifest.spec.attack.output == CLOSEST.output
        for s in summaries
    )
    nan = math.nan
    rows = [
        {
            "summary": s,
            "paper": {
                key: PAPER[s.direction].get(key, nan)
                for key in ("success_rate", "mean_distortion_success", "mean_distortion_all")
            }
            if _paper_setting(s)
            else None,
        }
        for s in summaries
    ]
    paper_rows = any(row["paper"] is not None for row in rows)
    counted = list(dict.fromkeys(s.l0_statement() for s in summaries))
    context = {
        "settings": list(settings), "closest": closest, "paper": CLOSEST, "rows": rows,
        "counted": counted, "paper_rows": paper_rows,
    }  # fmt: skip
    return Section("Results", "results.html", context)


def _limits(matrices: Sequence[np.ndarray]) -> tuple[float, float]:
    """A zero-anchored scale shared by the panels compared across campaigns."""
    finite = [m[np.isfinite(m)] for m in matrices]
    top = max((float(v.max()) for v in finite if v.size), default=1.0)
    return 0.0, top if top > 0 else 1.0


def campaign_sections(
    summaries: Sequence[CampaignSummary], dataset: Dataset | None
) -> list[Section]:
    """One section per campaign: its four class-pair matrices (each on the scale every
    campaign's shares) and, with the data, its grid of samples."""
    limits = {
        "distortion": _limits([s.distortion for s in summaries]),
        "hardness": _limits([s.hardness for s in summaries]),
        "distance": _limits([s.distance for s in summaries]),
    }
    return [
        campaign_section(index, summary, dataset, limits) for index, summary in enumerate(summaries)
    ]


def campaign_section(
    index: int,
    s: CampaignSummary,
    dataset: Dataset | None,
    limits: dict[str, tuple[float, float]],
) -> Section:
    """Campaign number `index`: its matrices on the shared `limits` and its samples, or,
    beyond `MATRIX_CLASSES` classes, per-class and extreme-pair tables."""
    stem = f"{index}-{s.stem}"
    names = s.manifest.data.class_names
    if s.manifest.spec.targets == "untargeted":
        drawable = dataset is not None and dataset.is_images and _attacked(s, dataset)
        grid = untargeted_grid(s, dataset) if dataset is not None and drawable else None
        shown = () if grid is None else (
            Picture(f"{stem}-samples", f"{s.label}: adversarial samples", grid),
        )  # fmt: skip
        return Section(s.label, "campaign-untargeted.html", {}, shown)
    if s.manifest.data.num_classes > MATRIX_CLASSES:
        return Section(s.label, "campaign-classes.html", {"tables": class_tables(s)}, ())
    figures = [
        ("success", "success rate per (source, target)",
         heatmap(s.success * 100, "success rate (%)", fmt="{:.0f}", limits=(0, 100),
                 labels=names)),
        ("distortion", "mean distortion of successes (%)",
         heatmap(s.distortion, "mean distortion of successes (%)", fmt="{:.1f}", cmap="magma",
                 limits=limits["distortion"], labels=names)),
        ("hardness", "hardness H(s, t)",
         heatmap(s.hardness, "hardness H(s, t) (n/a: success within fewer than 2 budgets)",
                 fmt="{:.1f}", cmap="magma", limits=limits["hardness"], labels=names,
                 undefined=s.hardness_undefined)),
        ("distance", "mean adversarial distance A(X, t)",
         heatmap(s.distance, "adversarial distance A(X, t)", fmt="{:.2f}", cmap="cividis",
                 limits=limits["distance"], labels=names)),
    ]  # fmt: skip
    drawable = dataset is not None and dataset.is_images and _attacked(s, dataset)
    grid = sample_grid(s, dataset) if dataset is not None and drawable else None
    if grid is not None:
        figures.append(("samples", "adversarial samples", grid))
    pictures = tuple(
        Picture(f"{stem}-{name}", f"{s.label}: {caption}", figure)
        for name, caption, figure in figures
    )
    return Section(s.label, "campaign.html", {}, pictures)


@dataclass(frozen=True)
class ClassLine:
    """One class's targeted attacks: from its samples, and into it."""

    name: str
    attacks_from: int
    success_from: float
    distortion_from: float
    attacks_into: int
    success_into: float
    distortion_into: float


@dataclass(frozen=True)
class PairLine:
    """One (source, target) pair's attacks."""

    source: str
    target: str
    attacks: int
    success_rate: float
    mean_distortion: float


@dataclass(frozen=True)
class ClassTables:
    """What the report shows of a campaign over many classes."""

    classes: int
    per_class: list[ClassLine]
    hardest: list[PairLine]
    easiest: list[PairLine]


def class_tables(s: CampaignSummary, *, pairs: int = 10) -> ClassTables:
    """For many classes: each class as source and as target, and the `pairs` hardest
    (lowest success, then highest distortion) and easiest pairs attacked."""
    classes = s.manifest.data.num_classes
    names = s.manifest.data.class_names or tuple(map(str, range(classes)))

    out, into = (class_rates(s.arrays, classes, by=by) for by in ("source", "target"))
    per_class = [
        ClassLine(
            names[c], int(out.attacks[c]), float(out.success_rate[c]),
            float(out.mean_distortion[c]), int(into.attacks[c]), float(into.success_rate[c]),
            float(into.mean_distortion[c]),
        )
        for c in range(classes)
        if out.attacks[c] or into.attacks[c]
    ]  # fmt: skip

    counts = pair_counts(s.arrays, classes)
    source, target = np.nonzero(counts)
    success, distortion = s.success[source, target], s.distortion[source, target]
    # Hardest first: least success, then most distortion (a pair never broken: +inf).
    order = np.lexsort((-np.nan_to_num(distortion, nan=np.inf), success))

    def pair(k: int) -> PairLine:
        return PairLine(
            names[source[k]], names[target[k]], int(counts[source[k], target[k]]),
            float(success[k]), float(distortion[k]),
        )  # fmt: skip

    return ClassTables(
        classes=classes,
        per_class=per_class,
        hardest=[pair(k) for k in order[:pairs]],
        easiest=[pair(k) for k in order[::-1][:pairs]],
    )


def _attacked(summary: CampaignSummary, dataset: Dataset) -> bool:
    """Whether `dataset` is what the campaign attacked (else its samples cannot be
    rebuilt from it: the grid is left out, and the log says why)."""
    stored = summary.manifest.data
    if stored.input_shape == tuple(dataset.input_shape) and stored.fingerprint == (
        data_fingerprint(dataset, summary.manifest.spec.splits)
    ):
        return True
    logger.warning(
        "%s attacked other data (%s) than the report was given (%s): its samples are left out",
        summary.label, stored.source, dataset.source,
    )  # fmt: skip
    return False


def across_section(summaries: Sequence[CampaignSummary]) -> Section:
    """The budget curves and the distortion histogram, every campaign in each."""
    pictures = (
        Picture(
            "budget",
            "Success and distortion against the budget",
            budget_figure(summaries),
            wide=True,
        ),
        Picture(
            "distortion-histogram", "Distribution of distortion", distortion_histogram(summaries)
        ),
    )
    return Section("Across campaigns", "across.html", {}, pictures)


def configuration_section(summaries: Sequence[CampaignSummary]) -> Section:
    """Each campaign's progress and speed, and its configuration as one table: the
    settings that differ between campaigns first, then those they share."""
    flat = [flatten(s.configuration()) for s in summaries]
    keys = list(dict.fromkeys(key for f in flat for key in f))
    differing = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    shared = [(k, flat[0][k]) for k in keys if k not in differing]
    context = {
        "summaries": summaries,
        "differing": [(k, [f.get(k) for f in flat]) for k in differing],
        "shared": shared,
    }
    return Section("Configuration", "configuration.html", context)
