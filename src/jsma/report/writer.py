"""Write the report: PNG figures, one self-contained HTML page, a JSON summary.

It reads stored campaign results (and the data set, to draw the samples)
and runs no attack.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template

from matplotlib.figure import Figure

from jsma._io import atomic_write
from jsma.data.dataset import Dataset
from jsma.paper import PAPER
from jsma.report.figures import budget_figure, distortion_histogram, heatmap, sample_grid
from jsma.report.summary import CampaignSummary, summarise

__all__ = ["ReportFiles", "render_report", "write_report"]

_DASH = "&ndash;"  # an HTML entity: what the page shows for a missing number


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    summary: Path
    figures: tuple[Path, ...]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _percent(value: float) -> str:
    return _DASH if math.isnan(value) else f"{value:.2%}"


def _points(value: float) -> str:
    return _DASH if math.isnan(value) else f"{value:.2f}%"


def _number(value: float) -> str:
    return _DASH if math.isnan(value) else f"{value:.2f}"


def _results_table(summaries: Sequence[CampaignSummary]) -> str:
    rows = []
    for summary in summaries:
        for line in summary.results:
            rows.append(
                f"<tr><td class='name'>{html.escape(summary.label)}</td>"
                f"<td class='name'>{html.escape(line.name)}</td><td>{line.attacks}</td>"
                f"<td>{_percent(line.success_rate)}</td>"
                f"<td>{_points(line.mean_distortion_success)}</td>"
                f"<td>{_points(line.mean_distortion_all)}</td></tr>"
            )
        paper = PAPER.get(summary.variant, {})
        rows.append(
            f"<tr class='paper'><td class='name'>paper ({summary.variant})</td>"
            f"<td class='name'>average of 3 sets</td><td>&ndash;</td>"
            f"<td>{_percent(paper.get('success_rate', math.nan))}</td>"
            f"<td>{_points(paper.get('mean_distortion_success', math.nan))}</td>"
            f"<td>{_points(paper.get('mean_distortion_all', math.nan))}</td></tr>"
        )
    header = (
        "<tr><th class='name'>campaign</th><th class='name'>set</th><th>attacks</th>"
        "<th>success rate</th><th>distortion of successes</th><th>distortion of all</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


def _robustness_table(summaries: Sequence[CampaignSummary]) -> str:
    rows = "".join(
        f"<tr><td class='name'>{html.escape(s.label)}</td><td>{s.robustness:.4f}</td>"
        f"<td>{s.mean_sample_robustness:.4f}</td>"
        f"<td>{_number(s.hardness_distance_correlation)}</td></tr>"
        for s in summaries
    )
    return (
        "<table><tr><th class='name'>campaign</th><th>robustness rho(F) (smallest A)</th>"
        "<th>mean of per-sample smallest A</th>"
        "<th>rank correlation, hardness vs adversarial distance</th></tr>"
        f"{rows}</table>"
    )


def _configuration(summaries: Sequence[CampaignSummary]) -> str:
    parts = []
    for s in summaries:
        accuracies = s.manifest["model"].get("accuracies", {})
        accuracy = ", ".join(f"{k} {v:.2%}" for k, v in accuracies.items()) or "not recorded"
        throughput = s.status.throughput
        speed = (
            _DASH
            if math.isnan(throughput)
            else f"{throughput:.1f} attacks/s ({1e3 / throughput:.1f} ms per attack)"
        )
        config = {
            "spec": s.manifest["spec"],
            "model": s.manifest["model"],
            "data": {k: v for k, v in s.manifest["data"].items() if k != "fingerprint"},
            "versions": s.manifest.get("versions", {}),
        }
        parts.append(
            f"<h3>{html.escape(s.label)}</h3><p>Model accuracy: {html.escape(accuracy)}. "
            f"Attacks: {s.status.attacks_done} of {s.status.attacks_total}; throughput "
            f"{speed}.</p><pre>{html.escape(json.dumps(config, indent=2))}</pre>"
        )
    return "".join(parts)


def write_report(
    campaigns: Sequence[Path], out: Path, dataset: Dataset | None = None
) -> ReportFiles:
    """Summarise `campaigns` and write `out`/report.html, summary.json and figures/*.png.

    `dataset` (the campaigns' data) is needed only to draw the grid of
    adversarial samples; without it the grid is left out.
    """
    return render_report([summarise(directory) for directory in campaigns], out, dataset)


def render_report(
    summaries: Sequence[CampaignSummary], out: Path, dataset: Dataset | None = None
) -> ReportFiles:
    """Write the report of campaigns already summarised (see `write_report`)."""
    figures: list[tuple[str, str, Figure]] = []  # (file stem, caption, figure)
    for index, s in enumerate(summaries):
        stem = f"{index}-{s.directory.name}"
        figures += [
            (f"{stem}-success", f"{s.label}: success rate per (source, target)",
             heatmap(s.success * 100, "success rate (%)", fmt="{:.0f}")),
            (f"{stem}-distortion", f"{s.label}: mean distortion of successes (%)",
             heatmap(s.distortion, "mean distortion of successes (%)", fmt="{:.1f}", cmap="magma")),
            (f"{stem}-hardness", f"{s.label}: hardness H(s, t)",
             heatmap(s.hardness, "hardness H(s, t)", fmt="{:.1f}", cmap="magma")),
            (f"{stem}-distance", f"{s.label}: mean adversarial distance A(X, t)",
             heatmap(s.distance, "adversarial distance A(X, t)", fmt="{:.2f}", cmap="cividis")),
        ]  # fmt: skip
        if dataset is not None and (grid := sample_grid(s, dataset)) is not None:
            figures.append((f"{stem}-samples", f"{s.label}: adversarial samples", grid))
    figures.append(
        ("budget", "Success and distortion against the budget", budget_figure(summaries))
    )
    figures.append(
        ("distortion-histogram", "Distribution of distortion", distortion_histogram(summaries))
    )

    written = []
    sections: dict[str, list[str]] = {}
    for stem, caption, figure in figures:
        data = _png(figure)
        path = out / "figures" / f"{stem}.png"
        with atomic_write(path) as handle:
            handle.write(data)
        written.append(path)
        encoded = base64.b64encode(data).decode()
        group = caption.split(":")[0] if ":" in caption else "Across campaigns"
        sections.setdefault(group, []).append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    body = "".join(
        f"<h2>{html.escape(group)}</h2><div class='grid'>{''.join(items)}</div>"
        for group, items in sections.items()
    )
    try:
        version = metadata.version("jsma")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    template = Template(resources.files("jsma.report").joinpath("template.html").read_text())
    page = template.substitute(
        title="JSMA: the paper's evaluation",
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=version,
        results=_results_table(summaries),
        robustness=_robustness_table(summaries),
        sections=body,
        configuration=_configuration(summaries),
    )
    html_path, summary_path = out / "report.html", out / "summary.json"
    with atomic_write(html_path) as handle:
        handle.write(page.encode())
    with atomic_write(summary_path) as handle:
        handle.write(json.dumps([s.to_json() for s in summaries], indent=2).encode())
    return ReportFiles(html_path, summary_path, tuple(written))
