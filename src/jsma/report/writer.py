"""Write the report: PNG figures, one self-contained HTML page, a JSON summary.

It reads stored campaign results (and the data set, to draw the samples)
and runs no attack.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from jsma._io import atomic_write, ensure_writable
from jsma.campaign import Campaign, CampaignLike
from jsma.data.dataset import Dataset
from jsma.defenses.detection import (
    DetectionSummary,
    JointRecord,
    OperatingPoint,
    StoredDetection,
    read_detection,
)
from jsma.defenses.evaluation import read_defense
from jsma.defenses.figures import comparison_figure, detection_figure
from jsma.defenses.runs import GAN_FIGURE
from jsma.experiments.toy import TOY_FIGURE, read_toy
from jsma.gan import read_gan_run
from jsma.metrics import results_by_split, success_matrix
from jsma.paper import CLOSEST, PAPER
from jsma.plotting import figure_png
from jsma.report.figures import budget_figure, distortion_histogram, heatmap, sample_grid
from jsma.report.summary import CampaignSummary, summarise
from jsma.study.analysis import ANALYSIS_FIGURE, Rate, read_analysis
from jsma.transfer import read_transfer, transfer_figure

__all__ = ["ReportFiles", "render_report", "write_report"]

_DASH = "&ndash;"  # an HTML entity: what the page shows for a missing number


@dataclass(frozen=True)
class ReportFiles:
    """The files a report wrote: the page, the JSON summary and each figure."""

    html: Path
    summary: Path
    figures: tuple[Path, ...]


def _png(figure: Figure) -> bytes:
    return figure_png(figure, dpi=110)


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
        paper = PAPER.get(summary.direction, {})
        rows.append(
            f"<tr class='paper'><td class='name'>paper ({summary.direction})</td>"
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


def _setting(summaries: Sequence[CampaignSummary]) -> str:
    """What was attacked, in words: which model, which output, and why that one."""
    settings: dict[tuple[str, str], str] = {}
    for s in summaries:
        model, output = s.manifest.model, s.manifest.spec.attack.output
        if model.recipe is not None:
            name = f"the {model.architecture} of recipe '{model.recipe}'"
        elif model.checkpoint is not None:
            name = f"the {model.architecture} of checkpoint {model.checkpoint}"
        else:
            name = "a model the campaign does not describe"
        settings[(name, output)] = f"{name}, attacked on its {output}"
    text = html.escape("Attacked: " + "; ".join(settings.values()) + ".")
    closest = (f"the lenet of recipe '{CLOSEST.recipe}'", CLOSEST.output)
    if closest in settings:
        text += (
            f" This is {html.escape(CLOSEST.why)}. Alternatives: "
            "<code>jsma replicate --recipe default</code> (ReLU, Adam), "
            "<code>--output logits</code> (what the paper&#x27;s text describes)."
        )
    else:
        text += (
            " The setting closest to the paper&#x27;s figures is what "
            "<code>jsma replicate</code> runs by default: "
            + html.escape(f"recipe '{CLOSEST.recipe}', attacked on its {CLOSEST.output}.")
        )
    return f"<p class='setting'>{text}</p>"


def _configuration(summaries: Sequence[CampaignSummary]) -> str:
    parts = []
    for s in summaries:
        accuracies = s.manifest.model.accuracies
        accuracy = ", ".join(f"{k} {v:.2%}" for k, v in accuracies.items()) or "not recorded"
        throughput = s.status.throughput
        speed = (
            _DASH
            if math.isnan(throughput)
            else f"{throughput:.1f} attacks/s ({1e3 / throughput:.1f} ms per attack)"
        )
        config = {
            "spec": s.manifest.spec.to_json(),
            "model": s.manifest.model.to_json(),
            "data": {k: v for k, v in s.manifest.data.to_json().items() if k != "fingerprint"},
            "versions": dict(s.manifest.versions),
        }
        parts.append(
            f"<h3>{html.escape(s.label)}</h3><p>Model accuracy: {html.escape(accuracy)}. "
            f"Attacks: {s.status.attacks_done} of {s.status.attacks_total}; throughput "
            f"{speed}.</p><pre>{html.escape(json.dumps(config, indent=2))}</pre>"
        )
    return "".join(parts)


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
) -> ReportFiles:
    """Summarise `campaigns` and write `out`/report.html, summary.json and figures/*.png.

    The report only reads: `dataset` (the campaigns' data) is needed only to draw
    the grid of adversarial samples, which is left out without it; `toy` adds the
    AND network section that `jsma toy --out DIRECTORY` stored there; `defenses`
    adds the results that `jsma defend` stored in those directories; `study` the
    perception study's analysis (`jsma study analyze STUDY` stores it in
    STUDY/analysis); `gan` the generated digits that `jsma gan train --out DIR` stored;
    `transfer` the matrix that `jsma transfer --out DIR` stored.
    """
    ensure_writable(out, out / "figures")
    summaries = [summarise(directory) for directory in campaigns]
    return render_report(
        summaries, out, dataset, toy=toy, defenses=defenses, study=study, gan=gan,
        transfer=transfer,
    )  # fmt: skip


@dataclass(frozen=True)
class _Section:
    """One part of the page: a heading, an introduction (HTML) and its figures
    as (file stem, caption, PNG bytes)."""

    title: str
    introduction: str
    figures: list[tuple[str, str, bytes]]


def _study_section(directory: Path) -> tuple[_Section, dict[str, Any]]:
    """The perception study's analysis, as `jsma study analyze` stored it in
    `directory`/analysis."""
    out = directory / "analysis"
    analysis = read_analysis(out)

    def cell(rate: Rate) -> str:
        if rate.n == 0:
            return f"<td>{_DASH}</td>"
        return (
            f"<td>{rate.share:.1%} <span class='note'>({rate.low:.0%}-{rate.high:.0%})</span></td>"
        )

    rows = []
    for line in analysis.lines:
        if line.bucket != "all":
            continue
        who = "people" if line.kind == "human" else f"machine observer: {line.kind}"
        rows.append(
            f"<tr><td class='name'>{html.escape(who)}</td>"
            f"<td class='name'>{html.escape(line.condition)}</td><td>{line.answers}</td>"
            + cell(line.judged_digit) + cell(line.saw_source) + cell(line.saw_target)
            + cell(line.network_target) + "</tr>"
        )  # fmt: skip
    kept = ", ".join(
        f"{'people' if kind == 'human' else kind}: {n} kept, {analysis.excluded.get(kind, 0)} "
        "excluded" for kind, n in analysis.participants.items()
    )  # fmt: skip
    text = (
        "<p>Observers judged each image: is it a digit, and which. Shares of the answers with "
        "Wilson 95% intervals; machine observers are labelled and never pooled with people "
        f"(they measure transfer to other classifiers, not perception). {html.escape(kept)} "
        "(excluded: failed an attention check).</p>"
        "<table><tr><th class='name'>observers</th><th class='name'>condition</th>"
        "<th>answers</th><th>judged a digit</th><th>saw the source</th>"
        "<th>saw the target</th><th>network: the target</th></tr>"
        f"{''.join(rows)}</table>"
    )
    figure = (out / ANALYSIS_FIGURE).read_bytes()
    section = _Section("Perception study", text, [("study", "What observers saw", figure)])
    return section, {"directory": str(directory), **analysis.to_json()}


def _gan_section(directory: Path) -> tuple[_Section, dict[str, Any]]:
    """The generated digits and their quality, as `jsma gan train` stored them."""
    summary, figure = read_gan_run(directory)
    quality = summary["quality"]
    text = (
        f"<p>A class-conditional DCGAN trained {summary['epochs']} epochs on the training "
        f"split ({float(summary.get('training_seconds', math.nan)):.0f} s). An independent "
        f"classifier ({html.escape(str(summary.get('judge')))}) labels "
        f"{quality['as_asked']:.1%} of {quality['samples']} generated digits as the class "
        f"they were asked to be, {quality['confident']:.1%} with probability at least "
        f"{quality['threshold']:g}. Frechet distance on that classifier's features: "
        f"{quality['fid_generated_test']:.2f} between generated and real test digits, "
        f"{quality['fid_train_test']:.2f} between real training and real test digits (the "
        "floor of sampling).</p>"
    )
    section = _Section("Generated digits (DCGAN)", text, [("gan-samples", "Generated", figure)])
    return section, {"directory": str(directory), **summary}


def _transfer_section(directory: Path) -> tuple[_Section, dict[str, Any]]:
    """The transfer matrix that `jsma transfer --out` stored."""
    result = read_transfer(directory)
    header = "".join(f"<th>{html.escape(name)}</th>" for name in result.evaluated_on)
    tables = []
    for measure, title in (
        ("as_target", "classified as the target"), ("misclassified", "misclassified"),
    ):  # fmt: skip
        rows = "".join(
            f"<tr><td class='name'>{html.escape(crafted)}</td>"
            + "".join(f"<td>{_percent(v)}</td>" for v in values)
            + "</tr>"
            for crafted, values in zip(result.crafted_on, result.matrix(measure), strict=True)
        )
        tables.append(
            f"<p>{title} (rows: crafted on; columns: evaluated on)</p>"
            f"<table><tr><th class='name'>crafted on</th>{header}</tr>{rows}</table>"
        )
    first = [row for row in result.rows if row.crafted_on == result.crafted_on[0]]
    accuracy = "".join(f"<td>{_percent(row.benign_accuracy)}</td>" for row in first)
    tables.append(
        "<p>accuracy on the same samples before the attack</p>"
        f"<table><tr><th class='name'></th>{header}</tr>"
        f"<tr><td class='name'>benign</td>{accuracy}</tr></table>"
    )
    text = (
        "<p>Each campaign's successful samples, rebuilt from their stored trajectories, "
        "given to other models: does what fools one model fool another (the premise of "
        "black-box attacks through a substitute model)?</p>" + "".join(tables)
    )
    figure = _png(transfer_figure(result))
    section = _Section("Transferability", text, [("transfer", "Transferability", figure)])
    return section, {"directory": str(directory), **result.to_json()}


def _toy_section(directory: Path) -> tuple[_Section, dict[str, Any]]:
    record = read_toy(directory)
    crafting = record.crafting
    corners = ", ".join(
        f"F{point} = {value:.3f}"
        for point, value in zip(
            ("(0,0)", "(0,1)", "(1,0)", "(1,1)"), record.corner_outputs, strict=True
        )
    )
    text = (
        "<p>A network of 2 inputs, 2 sigmoid hidden units and 1 sigmoid output, trained "
        f"(seed {record.seed}) on the Boolean AND over [0, 1]<sup>2</sup>: "
        f"{html.escape(corners)}; {record.grid_accuracy:.1%} correct on a 101 x 101 grid "
        "(points within 0.05 of the boundary left out). The forward derivative is near zero "
        "almost everywhere and large in a narrow band: that is where a small change flips the "
        "output, and its sign and size say which input to change. Crafted from "
        f"({crafting.points[0, 0]:.2f}, {crafting.points[0, 1]:.2f}) "
        f"(F = {crafting.outputs[0]:.3f}) by raising the input with the largest derivative by "
        f"{record.theta:g} per step: F = {crafting.outputs[-1]:.3f} after "
        f"{len(crafting.features)} steps.</p>"
    )
    figure = (directory / TOY_FIGURE).read_bytes()
    section = _Section("Toy example", text, [("toy-and", "The AND network", figure)])
    return section, {"directory": str(directory), **record.to_json()}


def _defense_sections(directories: Sequence[Path]) -> tuple[_Section, list[dict[str, Any]]]:
    parts: list[str] = []
    figures: list[tuple[str, str, bytes]] = []
    records: list[dict[str, Any]] = []
    for number, directory in enumerate(directories):
        detection = read_detection(directory)
        if detection is not None:
            results = list(detection.results)
            records.append({"kind": "detection", "directory": str(directory),
                            **_detection_json(detection)})  # fmt: skip
            parts.append(_detection_table(results, detection.joint))
            figures.append(
                (f"defense-{number}-detection", "Detection", _png(detection_figure(results)))
            )
            continue
        record = read_defense(directory)
        rows, matrices = [], []
        for entry in record.entries:
            # Only the results line and the success matrix: no need for the whole summary.
            campaign = Campaign.open(entry.campaign)
            arrays = campaign.arrays()
            line = results_by_split(arrays)[-1]
            rows.append(
                f"<tr><td class='name'>{html.escape(entry.model)}</td>"
                f"<td class='name'>{html.escape(entry.output)}</td>"
                f"<td>{_percent(entry.test_accuracy)}</td><td>{line.attacks}</td>"
                f"<td>{_percent(line.success_rate)}</td>"
                f"<td>{_points(line.mean_distortion_success)}</td>"
                f"<td>{_points(line.mean_distortion_all)}</td></tr>"
            )
            classes = campaign.manifest.data.num_classes
            matrices.append((f"{entry.model}, {entry.output}", success_matrix(arrays, classes)))
        title = html.escape(record.kind.replace("-", " ").capitalize())
        details = "; ".join(f"{key}: {value}" for key, value in record.details.items())
        parts.append(
            f"<h3>{title}</h3><p class='note'>{html.escape(details)}</p>"
            "<table><tr><th class='name'>model</th><th class='name'>attack on</th>"
            "<th>test accuracy</th><th>attacks</th><th>success rate</th>"
            "<th>distortion of successes</th><th>distortion of all</th></tr>"
            f"{''.join(rows)}</table>"
        )
        figures.append(
            (f"defense-{number}-{record.kind}",
             f"{record.kind.replace('-', ' ').capitalize()}: success rate per (source, target)",
             _png(comparison_figure(matrices))),
        )  # fmt: skip
        if (directory / GAN_FIGURE).is_file():
            figures.append(
                (f"defense-{number}-gan", "Adversarial samples generated using DCGAN",
                 (directory / GAN_FIGURE).read_bytes()),
            )  # fmt: skip
        records.append(
            {"kind": record.kind, "directory": str(directory), "details": record.details}
        )
    return _Section("Defenses", "".join(parts), figures), records


def _detection_json(detection: StoredDetection) -> dict[str, Any]:
    """The figures of stored detection results for summary.json (strict JSON: no NaN)."""

    def point(p: OperatingPoint) -> dict[str, Any]:
        values = dataclasses.asdict(p)
        values["detection_rate_by_bucket"] = [
            None if math.isnan(v) else v for v in p.detection_rate_by_bucket
        ]
        return values

    return {
        "results": [
            {
                "campaign": r.campaign,
                "direction": r.direction,
                "auc": r.auc,
                "attacks": r.attacks,
                "adversarial_samples": r.adversarial_samples,
                "operating_points": [point(p) for p in r.points],
            }
            for r in detection.results
        ],
        "joint": [record.to_json() for record in detection.joint],
    }


def _detection_table(results: Sequence[DetectionSummary], joint: Sequence[JointRecord]) -> str:
    rows = []
    for result in results:
        for point in result.points:
            rows.append(
                f"<tr><td class='name'>{html.escape(result.direction)}</td>"
                f"<td>{result.auc:.3f}</td>"
                f"<td>{_percent(point.calibrated_false_positive_rate)}</td>"
                f"<td>{_percent(point.test_false_positive_rate)}</td>"
                f"<td>{_percent(point.detection_rate)}</td>"
                f"<td>{point.undetected} of {result.adversarial_samples}</td>"
                f"<td>{_percent(point.undetected_success_rate)}</td></tr>"
            )
    for record in joint:
        rows.append(
            "<tr><td class='name'>either, whichever evades</td><td>&ndash;</td>"
            f"<td>{_percent(record.calibrated_false_positive_rate)}</td>"
            "<td>&ndash;</td><td>&ndash;</td><td>&ndash;</td>"
            f"<td>{_percent(record.undetected_success_rate)}</td></tr>"
        )
    return (
        "<h3>Detection by the sum of squared neighbour differences</h3>"
        "<p class='note'>Thresholds calibrated on benign validation images. Last column: "
        "the share of all attacks that succeed and stay under the threshold; the last rows "
        "keep, for each (sample, target), any campaign's sample that does.</p>"
        "<table><tr><th class='name'>campaign</th><th>AUC</th><th>calibrated FPR</th>"
        "<th>FPR on test</th><th>detection rate</th><th>undetected successes</th>"
        "<th>attacks succeeding undetected</th></tr>"
        f"{''.join(rows)}</table>"
    )


def render_report(
    summaries: Sequence[CampaignSummary],
    out: Path,
    dataset: Dataset | None = None,
    *,
    toy: Path | None = None,
    defenses: Sequence[Path] = (),
    study: Path | None = None,
    gan: Path | None = None,
    transfer: Path | None = None,
) -> ReportFiles:
    """Write the report of campaigns already summarised (see `write_report`)."""
    # Directory names reach titles and legends: a `$` in one must stay a `$`, not
    # start a formula that matplotlib then fails to parse.
    with matplotlib.rc_context({"text.parse_math": False}):
        return _render_report(
            summaries, out, dataset, toy=toy, defenses=defenses, study=study, gan=gan,
            transfer=transfer,
        )  # fmt: skip


def _render_report(
    summaries: Sequence[CampaignSummary],
    out: Path,
    dataset: Dataset | None,
    *,
    toy: Path | None,
    defenses: Sequence[Path],
    study: Path | None,
    gan: Path | None,
    transfer: Path | None,
) -> ReportFiles:
    sections = []
    for index, s in enumerate(summaries):
        stem = f"{index}-{s.directory.name}"
        figures = [
            (f"{stem}-success", "success rate per (source, target)",
             heatmap(s.success * 100, "success rate (%)", fmt="{:.0f}")),
            (f"{stem}-distortion", "mean distortion of successes (%)",
             heatmap(s.distortion, "mean distortion of successes (%)", fmt="{:.1f}", cmap="magma")),
            (f"{stem}-hardness", "hardness H(s, t)",
             heatmap(s.hardness, "hardness H(s, t)", fmt="{:.1f}", cmap="magma")),
            (f"{stem}-distance", "mean adversarial distance A(X, t)",
             heatmap(s.distance, "adversarial distance A(X, t)", fmt="{:.2f}", cmap="cividis")),
        ]  # fmt: skip
        if dataset is not None and (grid := sample_grid(s, dataset)) is not None:
            figures.append((f"{stem}-samples", "adversarial samples", grid))
        sections.append(
            _Section(s.label, "", [(st, f"{s.label}: {c}", _png(f)) for st, c, f in figures])
        )
    across = [
        ("budget", "Success and distortion against the budget", budget_figure(summaries)),
        ("distortion-histogram", "Distribution of distortion", distortion_histogram(summaries)),
    ]
    sections.append(_Section("Across campaigns", "", [(st, c, _png(f)) for st, c, f in across]))
    extra: dict[str, Any] = {}
    if toy is not None:
        toy_section, extra["toy"] = _toy_section(toy)
        sections.append(toy_section)
    if defenses:
        defense_section, extra["defenses"] = _defense_sections(defenses)
        sections.append(defense_section)
    if gan is not None:
        gan_section, extra["gan"] = _gan_section(gan)
        sections.append(gan_section)
    if transfer is not None:
        transfer_section, extra["transfer"] = _transfer_section(transfer)
        sections.append(transfer_section)
    if study is not None:
        study_section, extra["study"] = _study_section(study)
        sections.append(study_section)

    written, body = [], []
    for section in sections:
        items = []
        for stem, caption, data in section.figures:
            path = out / "figures" / f"{stem}.png"
            with atomic_write(path) as handle:
                handle.write(data)
            written.append(path)
            encoded = base64.b64encode(data).decode()
            items.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        body.append(
            f"<h2>{html.escape(section.title)}</h2>{section.introduction}"
            f"<div class='grid'>{''.join(items)}</div>"
        )
    try:
        version = metadata.version("jsma")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    template = Template(resources.files("jsma.report").joinpath("template.html").read_text())
    page = template.substitute(
        title="JSMA: the paper's evaluation",
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=version,
        setting=_setting(summaries),
        results=_results_table(summaries),
        robustness=_robustness_table(summaries),
        sections="".join(body),
        configuration=_configuration(summaries),
    )
    summary = {"campaigns": [s.to_json() for s in summaries], **extra}
    html_path, summary_path = out / "report.html", out / "summary.json"
    with atomic_write(html_path) as handle:
        handle.write(page.encode())
    with atomic_write(summary_path) as handle:
        handle.write(json.dumps(summary, indent=2).encode())
    return ReportFiles(html_path, summary_path, tuple(written))
