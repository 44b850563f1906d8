"""Detection by the neighbour statistic, as `jsma defend detect` stored it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsma._records import encode
from jsma.defenses._detection import StoredDetection
from jsma.defenses._figures import detection_figure
from jsma.report._page import Picture, Section

__all__ = ["detection_part"]

_KEPT = ("campaign", "direction", "auc", "attacks", "adversarial_samples", "points")


def detection_part(
    number: int, directory: Path, detection: StoredDetection
) -> tuple[Section, dict[str, Any]]:
    """The table and the figure of stored detection results (part `number` of the
    defenses), and what summary.json keeps of them."""
    picture = Picture(
        f"defense-{number}-detection", "Detection", detection_figure(list(detection.results))
    )
    summary = {
        "defense": "detection",
        "directory": str(directory),
        "results": [{k: encode(getattr(r, k)) for k in _KEPT} for r in detection.results],
        "joint": encode(detection.joint),
    }
    return Section("Detection", "detection.html", {"detection": detection}, (picture,)), summary
