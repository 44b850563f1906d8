"""The perception study's analysis, as `jsma study analyze` stored it in STUDY/analysis."""

from __future__ import annotations

from pathlib import Path

from jsma._records import encode
from jsma.report._page import Picture, Section
from jsma.study._analysis import ANALYSIS_FIGURE, read_analysis

__all__ = ["study_section"]


def _observers(kind: str, *, machine: str = "") -> str:
    return "people" if kind == "human" else f"{machine}{kind}"


def study_section(directory: Path) -> Section:
    """Each observer kind's answers per condition (all distortions) and the figure."""
    out = directory / "analysis"
    analysis = read_analysis(out)
    lines = [
        (_observers(line.kind, machine="machine observer: "), line)
        for line in analysis.lines
        if line.bucket == "all"
    ]
    kept = ", ".join(
        f"{_observers(kind)}: {n} kept, {analysis.excluded.get(kind, 0)} excluded"
        for kind, n in analysis.participants.items()
    )
    picture = Picture("study", "What observers saw", (out / ANALYSIS_FIGURE).read_bytes())
    summary = {"directory": str(directory), **encode(analysis)}
    context = {"lines": lines, "kept": kept, "judged": analysis.judged, "subject": analysis.subject}
    return Section("Perception study", "study.html", context, (picture,), summary)
