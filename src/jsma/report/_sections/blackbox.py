"""The black-box runs that `jsma blackbox` stored: substitutes, what they transfer, and
Sparse-RS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jsma._records import encode
from jsma.blackbox._runs import blackbox_figure, read_blackbox_run
from jsma.report._page import Picture, Section

__all__ = ["blackbox_section"]


def blackbox_section(directories: Sequence[Path]) -> Section:
    """Per directory: the substitute's rounds, the attacks measured on the oracle, the
    Sparse-RS runs; one figure of all."""
    runs = [read_blackbox_run(directory) for directory in directories]
    picture = Picture("blackbox", "Black-box attacks", blackbox_figure(runs), wide=True)
    summary = [
        {
            "directory": str(run.directory),
            "substitute": None if run.substitute is None else encode(run.substitute),
            "attacks": [encode(attack) for attack in run.attacks],
            "sparse_rs": [encode(outcome) for outcome in run.sparse_rs],
        }
        for run in runs
    ]
    return Section("Black-box attacks", "blackbox.html", {"runs": runs}, (picture,), summary)
