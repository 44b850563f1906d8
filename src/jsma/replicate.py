"""`jsma replicate`: the paper's evaluation end to end, in one call.

Data, model (trained or cached), the increasing (theta = +1) and decreasing
(theta = -1) campaigns at Upsilon = 14.5%, their metrics next to the paper's
numbers, and the report. Campaigns are resumable: running it again continues.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from jsma.campaign import AttackSettings, CampaignSpec, Engine, run_campaign
from jsma.data._dataset import Dataset
from jsma.models._provenance import ModelProvenance
from jsma.paper import CLOSEST, PAPER_SAMPLES_PER_SET, PAPER_SETS
from jsma.report import CampaignSummary, ReportFiles, render_report, summarise
from jsma.settings import PAPER_MAX_DISTORTION, Output

__all__ = ["Replication", "replicate", "replication_directory"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replication:
    """The summaries of the increasing and decreasing campaigns, and the report."""

    campaigns: list[CampaignSummary]
    report: ReportFiles


def replication_directory(
    cache_dir: Path,
    recipe: str,
    *,
    samples: int | None,
    splits: tuple[str, ...],
    output: Output,
) -> Path:
    """Where `jsma replicate` keeps a run by default: one directory per setting, so that
    running the same setting again resumes it and another setting never mixes in."""
    full = (tuple(splits), samples) == (PAPER_SETS, PAPER_SAMPLES_PER_SET)
    scale = "full" if full else f"{'-'.join(splits)}-{'all' if samples is None else samples}"
    suffix = "" if output == "logits" else f"-{output}"
    return cache_dir / "runs" / f"replicate-{recipe}-{scale}{suffix}"


def replicate(
    dataset: Dataset,
    model: nn.Module,
    directory: Path,
    *,
    samples: int | None = 1000,
    splits: tuple[str, ...] = ("test",),
    output: Output = CLOSEST.output,
    provenance: ModelProvenance | None = None,
    progress: bool = False,
    engine: Engine | None = None,
) -> Replication:
    """Run (or resume) the increasing and decreasing campaigns, summarise and report them.

    `samples` takes the first N samples of each split (None: all of them); the
    paper's full scale is the first 10,000 of each of the three sets
    (`jsma.paper.PAPER_SETS`, `PAPER_SAMPLES_PER_SET`). Campaigns go to
    `directory`/increasing and `directory`/decreasing, the report to
    `directory`/report. `output` is what the attack differentiates: the
    softmax probabilities (the default: the setting closest to the paper's
    figures, see `jsma.paper.CLOSEST`) or the logits (the paper's text).
    `engine` runs the units (default: this process; see `jsma.campaign.local_engine`);
    `provenance` says where `model` came from (see `jsma.models.describe_model`).
    """
    campaigns = []
    for name, theta in (("increasing", 1.0), ("decreasing", -1.0)):
        spec = CampaignSpec(
            splits=splits,
            samples=samples,
            attack=AttackSettings(theta=theta, max_distortion=PAPER_MAX_DISTORTION, output=output),
        )
        logger.info("%s campaign: %s", name, directory / name)
        run_campaign(
            directory / name, spec, model, dataset,
            provenance=provenance, progress=progress, engine=engine,
        )  # fmt: skip
        campaigns.append(summarise(directory / name))
    report = render_report(campaigns, directory / "report", dataset)
    return Replication(campaigns, report)
