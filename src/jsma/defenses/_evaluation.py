"""Evaluating defended models the way the undefended one was: the same campaign.

A defense run writes `defense.json` in its directory: what kind of defense,
and one entry per (model, attack output) with the model's test accuracy and
the campaign run against it. The report reads that file and the campaigns;
nothing is recomputed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from jsma._records import read_record, write_record
from jsma.campaign import Campaign, CampaignRef
from jsma.campaign._campaign import CampaignLike
from jsma.campaign._manifest import Manifest
from jsma.data._dataset import Dataset
from jsma.errors import JSMAError
from jsma.metrics import SetResults, results_by_split
from jsma.models._reference import ModelProvenance, model_fingerprint
from jsma.settings import Output

__all__ = ["DefendedCampaign", "DefenseRecord", "read_defense"]

DEFENSE_FILE = "defense.json"


def _baseline_manifest(baseline: Path) -> Manifest:
    return Campaign.open(baseline).manifest


def baseline_output(baseline: Path) -> str:
    """The output (logits or probabilities) the baseline campaign attacked."""
    return _baseline_manifest(baseline).spec.attack.output


def check_baseline_model(baseline: Path, model: nn.Module) -> None:
    """Refuse a model other than the one the baseline campaign attacked."""
    stored = _baseline_manifest(baseline).model.fingerprint
    if model_fingerprint(model) != stored:
        raise JSMAError(
            f"{baseline}: this campaign attacked another model (fingerprint {stored}); pass "
            "the undefended model it attacked (--model or --recipe)"
        )


def same_campaign(
    baseline: Path,
    model: nn.Module,
    dataset: Dataset,
    directory: Path,
    *,
    output: Output | None = None,
    provenance: ModelProvenance | None = None,
    progress: bool = False,
) -> Path:
    """Run (or resume) in `directory` the campaign of `baseline` (same samples, targets
    and attack) against `model`, optionally with the attack on another `output`.
    `provenance`: where `model` came from (default: the baseline's model's, which
    must then be `model`)."""
    stored = _baseline_manifest(baseline)
    spec = stored.spec
    if provenance is None:
        provenance = stored.model
    if output is not None:
        spec = dataclasses.replace(spec, attack=dataclasses.replace(spec.attack, output=output))
    Campaign.run(directory, spec, model, dataset, provenance=provenance, progress=progress)
    return directory


@dataclass(frozen=True)
class DefendedCampaign:
    """One line of a defense comparison: a model, the attack's output, its campaign."""

    model: str
    output: str
    test_accuracy: float
    campaign: CampaignRef


@dataclass(frozen=True)
class DefenseRecord:
    """A defense's evaluation: each model attacked with the baseline's campaign, and how
    the defense was made."""

    KIND: ClassVar[str] = "defense"
    # 0: 0.1.0 and 0.2.0 (no header; `defense` was `kind`); 1: campaigns named by a path
    # as given (relative to where the command ran); 2: by a `CampaignRef`.
    FORMAT: ClassVar[int] = 2

    defense: str  # "adversarial-training" or "distillation"
    entries: tuple[DefendedCampaign, ...]
    details: dict[str, Any]

    @classmethod
    def upgraded(cls, data: dict[str, Any], format: int) -> dict[str, Any]:
        data = dict(data)
        if "kind" in data:
            data["defense"] = data.pop("kind")
        data.setdefault("details", {})
        if format < 2:
            data["entries"] = [
                {**entry, "campaign": {"location": str(entry["campaign"]), "digest": ""}}
                if isinstance(entry, dict) and isinstance(entry.get("campaign"), str)
                else entry
                for entry in data.get("entries", [])
            ]
        return data


def write_defense(directory: Path, record: DefenseRecord) -> Path:
    """Store `record` as `directory`/defense.json (what `jsma report --defenses` reads)."""
    return write_record(directory / DEFENSE_FILE, record)


def read_defense(directory: Path) -> DefenseRecord:
    """The record `write_defense` stored; a `JSMAError` naming the file if absent or damaged."""
    path = directory / DEFENSE_FILE if directory.is_dir() else directory
    return read_record(
        DefenseRecord, path, missing="no defense results here (run `jsma defend` first)"
    )


def campaign_results(campaign: CampaignLike) -> SetResults:
    """The campaign's results line over all its sets (the average with several)."""
    return results_by_split(Campaign.open(campaign).arrays())[-1]


def comparison_lines(entries: Sequence[DefendedCampaign]) -> list[str]:
    """A plain-text table of the entries, for the terminal."""
    width = max([28, *(len(entry.model) for entry in entries)])
    lines = [
        f"{'model':<{width}} {'output':<14} {'test acc':>8} {'attacks':>8} {'success':>8} "
        f"{'dist. succ.':>11} {'dist. all':>9}"
    ]
    for entry in entries:
        result = campaign_results(entry.campaign.open())
        lines.append(
            f"{entry.model:<{width}} {entry.output:<14} {entry.test_accuracy:>8.2%} "
            f"{result.attacks:>8} {result.success_rate:>8.2%} "
            f"{result.mean_distortion_success:>10.2f}% {result.mean_distortion_all:>8.2f}%"
        )
    return lines
