"""`jsma replicate`: the paper's evaluation end to end, in one call.

Data, model (trained or cached), the increasing (theta = +1) and decreasing
(theta = -1) campaigns at Upsilon = 14.5%, their metrics next to the paper's
numbers, and the report. Campaigns are resumable: running it again continues.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from jsma.attacks import Output
from jsma.campaign import AttackSettings, CampaignSpec, run_campaign
from jsma.data.dataset import Dataset
from jsma.report import CampaignSummary, ReportFiles, render_report, summarise

__all__ = ["Replication", "replicate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replication:
    """The summaries of the increasing and decreasing campaigns, and the report."""

    variants: list[CampaignSummary]
    report: ReportFiles


def replicate(
    dataset: Dataset,
    model: nn.Module,
    directory: Path,
    *,
    samples: int | None = 1000,
    splits: tuple[str, ...] = ("test",),
    output: Output = "logits",
    model_description: dict[str, Any] | None = None,
    progress: bool = False,
) -> Replication:
    """Run (or resume) the increasing and decreasing campaigns, summarise and report them.

    `samples` takes the first N samples of each split (None: all of them; with
    the three splits, the paper's full scale). Campaigns go to
    `directory`/increasing and `directory`/decreasing, the report to
    `directory`/report. `output` is what the attack differentiates: the
    logits (the paper's text) or the softmax probabilities.
    """
    variants = []
    for name, theta in (("increasing", 1.0), ("decreasing", -1.0)):
        spec = CampaignSpec(
            splits=splits,
            samples=samples,
            attack=AttackSettings(theta=theta, max_distortion=0.145, output=output),
        )
        logger.info("%s campaign: %s", name, directory / name)
        run_campaign(
            directory / name, spec, model, dataset,
            model_description=model_description, progress=progress,
        )  # fmt: skip
        variants.append(summarise(directory / name))
    report = render_report(variants, directory / "report", dataset)
    return Replication(variants, report)
