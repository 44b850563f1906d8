"""Write the report: one self-contained HTML page, its figures (PNG and PDF) and a
JSON summary, composed of the sections in `jsma.report._sections`.

It reads stored results (and the data set, to draw the samples) and runs no attack.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from jsma._io import atomic_write, ensure_writable
from jsma._records import write_record
from jsma._version import __version__
from jsma.campaign._campaign import CampaignLike
from jsma.data._dataset import Dataset
from jsma.report._page import Section, page_template
from jsma.report._sections.blackbox import blackbox_section
from jsma.report._sections.campaigns import (
    across_section,
    campaign_sections,
    configuration_section,
    results_section,
)
from jsma.report._sections.defenses import defenses_section
from jsma.report._sections.gan import gan_section
from jsma.report._sections.robustness import robustness_section
from jsma.report._sections.study import study_section
from jsma.report._sections.toy import toy_section
from jsma.report._sections.transfer import transfer_section
from jsma.report._summary import CampaignSummary, ReportSummary, summarise
from jsma.settings import L0Count

__all__ = ["ReportFiles", "write_report"]

TITLE = "JSMA: the paper's evaluation"


@dataclass(frozen=True)
class ReportFiles:
    """The files a report wrote: the page, the JSON summary and each figure."""

    html: Path
    summary: Path
    figures: tuple[Path, ...]  # the PNG the page shows (PDF beside those drawn here)


@dataclass(frozen=True)
class StoredResults:
    """What other commands stored, each adding its section: `toy` (`jsma toy --out
    DIR`), `defenses` (directories of `jsma defend`), `study` (a study whose `jsma
    study analyze` is in STUDY/analysis), `gan` (`jsma gan train --out DIR`),
    `transfer` (`jsma transfer --out DIR`), `blackbox` (directories of `jsma blackbox`)."""

    toy: Path | None = None
    defenses: Sequence[Path] = ()
    study: Path | None = None
    gan: Path | None = None
    transfer: Path | None = None
    blackbox: Sequence[Path] = ()

    def sections(self) -> dict[str, Section | None]:
        """Each one's section (None: not given), by its summary.json key."""
        return {
            "toy": None if self.toy is None else toy_section(self.toy),
            "defenses": defenses_section(self.defenses) if self.defenses else None,
            "gan": None if self.gan is None else gan_section(self.gan),
            "transfer": None if self.transfer is None else transfer_section(self.transfer),
            "blackbox": blackbox_section(self.blackbox) if self.blackbox else None,
            "study": None if self.study is None else study_section(self.study),
        }


def write_report(
    campaigns: Sequence[CampaignLike],
    out: Path,
    dataset: Dataset | None = None,
    *,
    toy: Path | None = None,
    defenses: Sequence[Path] = (),
    study: Path | None = None,
    gan: Path | None = None,
    transfer: Path | None = None,
    blackbox: Sequence[Path] = (),
    l0: L0Count = "features",
) -> ReportFiles:
    """Summarise `campaigns` and write `out`/report.html, summary.json and figures/.

    The report only reads: `dataset` (the campaigns' data) is needed only to draw
    the grid of adversarial samples, which is left out without it. The keywords add
    the sections of what other commands stored (see `StoredResults`); `l0="pixels"`
    counts distortion in pixels, a pixel once across its channels.
    """
    ensure_writable(out, out / "figures")
    summaries = [summarise(directory, l0=l0) for directory in campaigns]
    stored = StoredResults(toy, defenses, study, gan, transfer, blackbox)
    return render_report(summaries, out, dataset, stored)


def render_report(
    summaries: Sequence[CampaignSummary],
    out: Path,
    dataset: Dataset | None = None,
    stored: StoredResults = StoredResults(),
) -> ReportFiles:
    """Write the report of campaigns already summarised (see `write_report`)."""
    # Directory names reach titles and legends: a `$` in one must stay a `$`, not
    # start a formula that matplotlib then fails to parse.
    with matplotlib.rc_context({"text.parse_math": False}):
        sections = [
            results_section(summaries),
            robustness_section(summaries),
            *campaign_sections(summaries, dataset),
            across_section(summaries),
        ] if summaries else []  # fmt: skip
        extra = stored.sections()
        sections += [section for section in extra.values() if section is not None]
        if summaries:
            sections.append(configuration_section(summaries))
        figures = _write_figures(sections, out / "figures")
    page = page_template().render(
        title=TITLE,
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        sections=sections,
    )
    html_path = out / "report.html"
    with atomic_write(html_path) as handle:
        handle.write(page.encode())
    summary = ReportSummary(
        campaigns=[s.to_json() for s in summaries],
        **{key: None if s is None else s.summary for key, s in extra.items()},
    )
    return ReportFiles(html_path, write_record(out / "summary.json", summary), figures)


def _write_figures(sections: Sequence[Section], folder: Path) -> tuple[Path, ...]:
    written = []
    for picture in (picture for section in sections for picture in section.pictures):
        path = folder / f"{picture.stem}.png"
        with atomic_write(path) as handle:
            handle.write(picture.png)
        if (pdf := picture.pdf) is not None:
            with atomic_write(path.with_suffix(".pdf")) as handle:
                handle.write(pdf)
        written.append(path)
    return tuple(written)
