"""The defenses: detection, adversarial training and distillation, each model attacked
with the baseline's campaign (`jsma defend ...` stored them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsma.defenses._detection import read_detection
from jsma.defenses._evaluation import DefenseRecord, read_defense
from jsma.defenses._figures import comparison_figure
from jsma.defenses._runs import GAN_FIGURE
from jsma.metrics import results_by_split, success_matrix
from jsma.report._page import Picture, Section
from jsma.report._sections.detection import detection_part

__all__ = ["defenses_section"]


def defenses_section(directories: Sequence[Path]) -> Section:
    """One part per directory, in order: detection results, or a defense's models
    attacked with the baseline's campaign."""
    parts: list[Section] = []
    summaries: list[dict[str, Any]] = []
    for number, directory in enumerate(directories):
        detection = read_detection(directory)
        if detection is not None:
            part, summary = detection_part(number, directory, detection)
        else:
            part, summary = _defense_part(number, directory, read_defense(directory))
        parts.append(part)
        summaries.append(summary)
    pictures = tuple(picture for part in parts for picture in part.pictures)
    return Section("Defenses", "defenses.html", {"parts": parts}, pictures, summaries)


def _defense_part(
    number: int, directory: Path, record: DefenseRecord
) -> tuple[Section, dict[str, Any]]:
    rows, matrices = [], []
    for entry in record.entries:
        # Only the results line and the success matrix: no need for the whole summary.
        campaign = entry.campaign.open()
        arrays = campaign.arrays()
        rows.append((entry, results_by_split(arrays)[-1]))
        classes = campaign.manifest.data.num_classes
        matrices.append((f"{entry.model}, {entry.output}", success_matrix(arrays, classes)))
    title = record.defense.replace("-", " ").capitalize()
    pictures = [
        Picture(
            f"defense-{number}-{record.defense}",
            f"{title}: success rate per (source, target)",
            comparison_figure(matrices),
        )
    ]
    if (directory / GAN_FIGURE).is_file():
        pictures.append(
            Picture(
                f"defense-{number}-gan",
                "Adversarial samples generated using DCGAN",
                (directory / GAN_FIGURE).read_bytes(),
            )
        )
    context = {"title": title, "details": record.details, "rows": rows}
    summary = {"defense": record.defense, "directory": str(directory), "details": record.details}
    return Section(title, "defense.html", context, tuple(pictures)), summary
