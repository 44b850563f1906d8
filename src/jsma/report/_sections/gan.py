"""The generated digits and their judged quality, as `jsma gan train` stored them."""

from __future__ import annotations

from pathlib import Path

from jsma._records import encode
from jsma.gan import read_gan_run
from jsma.report._page import Picture, Section

__all__ = ["gan_section"]


def gan_section(directory: Path) -> Section:
    """The grid of generated digits and what the judge made of them."""
    run, figure = read_gan_run(directory)
    summary = {"directory": str(directory), **encode(run)}
    picture = Picture("gan-samples", "Generated", figure)
    return Section("Generated digits (DCGAN)", "gan.html", {"run": run}, (picture,), summary)
