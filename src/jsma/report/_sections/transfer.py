"""The transfer matrices that `jsma transfer --out DIR` stored."""

from __future__ import annotations

from pathlib import Path

from jsma._records import encode
from jsma.report._page import Picture, Section
from jsma.transfer import read_transfer, transfer_figure

__all__ = ["transfer_section"]

_MEASURES = (("as_target", "classified as the target"), ("misclassified", "misclassified"))


def transfer_section(directory: Path) -> Section:
    """The two matrices (target, misclassified), the benign accuracy, the figure."""
    result = read_transfer(directory)
    tables = [
        (title, list(zip(result.crafted_on, result.matrix(measure).tolist(), strict=True)))
        for measure, title in _MEASURES
    ]
    first = [row for row in result.rows if row.crafted_on == result.crafted_on[0]]
    context = {
        "evaluated_on": result.evaluated_on,
        "tables": tables,
        "benign": [row.benign_accuracy for row in first],
    }
    picture = Picture("transfer", "Transferability", transfer_figure(result))
    summary = {"directory": str(directory), **encode(result)}
    return Section("Transferability", "transfer.html", context, (picture,), summary)
