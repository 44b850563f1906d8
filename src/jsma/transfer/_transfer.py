"""Transferability: do adversarial samples crafted on one model fool another?

The premise of the black-box attack (Papernot et al., "Practical Black-Box
Attacks against Machine Learning", 2017) is that they do: an attacker crafts
on a substitute and the samples carry over to the unseen victim. Here a
campaign's successful samples, rebuilt from their stored trajectories, are
given to other models, and for each (crafted on, evaluated on) pair we count
the share each model puts in the attack's target class and the share it
misclassifies at all, overall and by distortion bucket, beside its accuracy
on the same samples before the attack.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure

from jsma._records import read_record, write_record
from jsma.campaign import Campaign
from jsma.campaign._campaign import CampaignLike
from jsma.data._dataset import Dataset
from jsma.errors import ConfigurationError
from jsma.metrics._core import distortion_bucket
from jsma.models import ModelLike, model_fingerprint
from jsma.models._evaluation import check_model_fits, predict
from jsma.models._reference import as_model
from jsma.settings import DISTORTION_BUCKETS

__all__ = ["TransferResult", "read_transfer", "transfer", "transfer_figure", "write_transfer"]

DEFAULT_BUCKETS = DISTORTION_BUCKETS  # distortion edges, percent of the features
TRANSFER_FILE = "transfer.json"


def _share(hits: np.ndarray, mask: np.ndarray) -> float:
    return float(hits[mask].mean()) if mask.any() else float("nan")


def transfer_rates(
    predictions: np.ndarray,
    sources: np.ndarray,
    targets: np.ndarray,
    distortion: np.ndarray,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shares of samples put in their target and misclassified, per distortion bucket.

    predictions, sources, targets (-1: untargeted), distortion (percent): (N,).
    Returns (as_target, misclassified, counts), each (B + 1,): bucket b as
    `jsma.metrics.distortion_bucket` assigns them; the last entry is every sample
    (those beyond the edges included). A share over no sample (or, for as_target, no
    targeted one) is NaN.
    """
    edges = np.asarray(buckets, dtype=np.float64)
    bucket = distortion_bucket(distortion, edges)
    masks = [bucket == b for b in range(len(edges) - 1)] + [np.ones(len(sources), dtype=bool)]
    targeted = targets >= 0
    on_target = predictions == targets
    wrong = predictions != sources
    as_target = np.array([_share(on_target, m & targeted) for m in masks])
    misclassified = np.array([_share(wrong, m) for m in masks])
    return as_target, misclassified, np.array([int(m.sum()) for m in masks])


@dataclass(frozen=True)
class TransferRow:
    """One (crafted on, evaluated on) pair: shares by bucket, the last over all samples."""

    crafted_on: str
    evaluated_on: str
    as_target: tuple[float, ...]
    misclassified: tuple[float, ...]
    benign_accuracy: float  # on the same samples' originals
    crafting_model: bool = False  # the very model the campaign attacked (same weights)


@dataclass(frozen=True)
class TransferResult:
    """Every pair's row, the bucket edges, and the sample counts per campaign and bucket."""

    KIND: ClassVar[str] = "transfer"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (the same fields, no header)

    buckets: tuple[float, ...]
    rows: tuple[TransferRow, ...]
    counts: Mapping[str, tuple[int, ...]]  # crafted_on -> samples per bucket, then all

    @property
    def crafted_on(self) -> list[str]:
        return list(dict.fromkeys(row.crafted_on for row in self.rows))

    @property
    def evaluated_on(self) -> list[str]:
        return list(dict.fromkeys(row.evaluated_on for row in self.rows))

    def matrix(self, measure: str = "as_target") -> np.ndarray:
        """(crafted on, evaluated on) over all samples: `as_target` or `misclassified`."""
        index = {(r.crafted_on, r.evaluated_on): r for r in self.rows}
        return np.array(
            [
                [getattr(index[c, e], measure)[-1] for e in self.evaluated_on]
                for c in self.crafted_on
            ]
        )


def transfer(
    campaigns: Mapping[str, CampaignLike],
    models: Mapping[str, ModelLike],
    dataset: Dataset,
    *,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> TransferResult:
    """Give each campaign's successful samples to each model.

    `campaigns` and `models` are named (the names head the matrix's rows and
    columns); name a campaign after the model it attacked. A model is a module or
    what names one (`"paper"`, a `jsma.models.ModelRef`, a file).

    Example:
        >>> campaigns = {"paper LeNet": "runs/test"}  # doctest: +SKIP
        >>> result = transfer(campaigns, {"MLP": mlp}, load_mnist())  # doctest: +SKIP
        >>> result.matrix("as_target")  # doctest: +SKIP
    """
    edges = tuple(float(b) for b in buckets)
    if len(edges) < 2 or not all(low < high for low, high in itertools.pairwise(edges)):
        raise ConfigurationError(f"bucket edges must be at least two, increasing: {edges}")
    if not campaigns or not models:
        raise ConfigurationError("transfer needs at least one campaign and one model")
    modules = {name: as_model(model, data=dataset)[0] for name, model in models.items()}
    for name, module in modules.items():  # before any sample is rebuilt
        check_model_fits(module, dataset, name=f"model {name!r}")
    rows, counts = [], {}
    fingerprints = {name: model_fingerprint(module) for name, module in modules.items()}
    for crafted_on, campaign in campaigns.items():
        opened = Campaign.open(campaign)
        samples = opened.samples(dataset)
        attacked = opened.manifest.model.fingerprint
        sources, targets = samples.sources.numpy(), samples.targets.numpy()
        for evaluated_on, module in modules.items():
            predictions = predict(module, samples.adversarial).numpy()
            as_target, wrong, count = transfer_rates(
                predictions, sources, targets, samples.distortion, edges
            )
            benign = float((predict(module, samples.originals).numpy() == sources).mean())
            rows.append(
                TransferRow(
                    crafted_on, evaluated_on, tuple(as_target), tuple(wrong), benign,
                    crafting_model=fingerprints[evaluated_on] == attacked,
                )
            )  # fmt: skip
        counts[crafted_on] = tuple(int(c) for c in count)
    return TransferResult(edges, tuple(rows), counts)


def write_transfer(directory: Path, result: TransferResult) -> Path:
    """Store a transfer result as `directory`/transfer.json (for the report)."""
    return write_record(directory / TRANSFER_FILE, result)


def read_transfer(directory: Path) -> TransferResult:
    """The transfer result stored in `directory`, checked."""
    return read_record(
        TransferResult,
        directory / TRANSFER_FILE,
        missing="no transfer result here (run `jsma transfer --out`)",
    )


_MEASURES = (("as_target", "classified as the target"), ("misclassified", "misclassified"))


def transfer_figure(result: TransferResult) -> Figure:
    """Both measures, in percent on one 0-100 scale: the share classified as the target
    and the share misclassified, as (crafted on x evaluated on) matrices over all
    samples (top) and by the samples' distortion (bottom; the crafting model left
    out: its share is 100% by construction)."""
    crafted, evaluated = result.crafted_on, result.evaluated_on
    side = 0.75  # inches per matrix cell
    width = max(7.0, 2 * side * len(evaluated) + 3.0)
    height = side * len(crafted) + 4.6
    figure = Figure(figsize=(width, height), layout="constrained")
    grid = figure.subplots(
        2, 2, gridspec_kw={"height_ratios": [max(1.0, side * len(crafted)), 2.6]}
    )
    labels = [f"{low:g}-{high:g}" for low, high in itertools.pairwise(result.buckets)]
    for column, (measure, title) in enumerate(_MEASURES):
        values = result.matrix(measure) * 100
        axes = grid[0, column]
        image = axes.imshow(np.ma.masked_invalid(values), cmap="magma", vmin=0, vmax=100)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                color = "black" if value > 60 else "white"
                axes.text(j, i, f"{value:.0f}", ha="center", va="center", color=color)
        axes.set_xticks(range(len(evaluated)), evaluated, rotation=30, ha="right")
        axes.set_yticks(range(len(crafted)), crafted if column == 0 else [])
        axes.set_xlabel("evaluated on")
        axes.set_title(f"{title} (%)")
        lines = grid[1, column]
        for row in result.rows:
            if not row.crafting_model:  # 100% by construction: its own successes
                shares = np.array(getattr(row, measure)[:-1]) * 100
                lines.plot(
                    labels, shares, marker="o", label=f"{row.crafted_on} → {row.evaluated_on}"
                )
        lines.set_ylim(0, 100)
        lines.set_xlabel("distortion of the sample (% of features)")
        lines.set_ylabel(f"{title} (%)")
        lines.tick_params(axis="x", rotation=30)
        lines.grid(alpha=0.3)
    grid[0, 0].set_ylabel("crafted on")
    figure.colorbar(image, ax=grid[0, :], shrink=0.9, label="%")
    if grid[1, 0].lines:
        handles, names = grid[1, 0].get_legend_handles_labels()
        figure.legend(
            handles, names, loc="outside lower center", ncols=min(3, len(names)), fontsize=7
        )
    figure.suptitle("transferability of JSMA samples between models")
    return figure
