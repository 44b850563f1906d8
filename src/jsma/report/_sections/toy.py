"""The toy AND network (the paper's Figure 4), as `jsma toy --out DIR` stored it."""

from __future__ import annotations

from pathlib import Path

from jsma._records import encode
from jsma.report._page import Picture, Section
from jsma.toy import read_toy
from jsma.toy._toy import TOY_FIGURE

__all__ = ["toy_section"]

_CORNERS = ("(0,0)", "(0,1)", "(1,0)", "(1,1)")


def toy_section(directory: Path) -> Section:
    """The AND network's fit, its crafted path, and the stored figure."""
    record = read_toy(directory)
    context = {"record": record, "corners": list(zip(_CORNERS, record.corner_outputs, strict=True))}
    picture = Picture("toy-and", "The AND network", (directory / TOY_FIGURE).read_bytes())
    summary = {"directory": str(directory), **encode(record)}
    return Section("Toy example", "toy.html", context, (picture,), summary)
