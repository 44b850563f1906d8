"""The report's parts: a section is a title, a template and what it shows; the page
renders them with Jinja2 (autoescaped: directory and model names are text, never
markup)."""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from matplotlib.figure import Figure

from jsma.plotting._plotting import figure_png

__all__: list[str] = []  # internal to the package

DASH = "\u2013"  # what the page shows for a number that is not defined
_DPI = 110


@dataclass(frozen=True, eq=False)
class Picture:
    """One figure of the page: drawn here (written as PNG and as vector PDF), or a
    PNG another command stored (`figure` as bytes)."""

    stem: str
    caption: str
    figure: Figure | bytes
    wide: bool = False  # the page's whole width (a figure of several panels)

    @functools.cached_property
    def png(self) -> bytes:
        return self.figure if isinstance(self.figure, bytes) else figure_png(self.figure, dpi=_DPI)

    @property
    def pdf(self) -> bytes | None:
        if isinstance(self.figure, bytes):
            return None
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="pdf", metadata={"CreationDate": None})
        return buffer.getvalue()

    @property
    def base64(self) -> str:
        return base64.b64encode(self.png).decode()


@dataclass(frozen=True)
class Section:
    """A part of the page: `template` (under templates/sections) renders `context`;
    `pictures` follow it; `summary` is what summary.json keeps of it (JSON values)."""

    title: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    pictures: tuple[Picture, ...] = ()
    summary: Any = None


def percent(value: float, digits: int = 2) -> str:
    return DASH if math.isnan(value) else f"{value:.{digits}%}"


def points(value: float) -> str:
    """A distortion, already in percent."""
    return DASH if math.isnan(value) else f"{value:.2f}%"


def number(value: float, digits: int = 2) -> str:
    return DASH if math.isnan(value) else f"{value:.{digits}f}"


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("jsma.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(percent=percent, points=points, number=number)
    return environment


def page_template() -> jinja2.Template:
    return _environment().get_template("report.html")
