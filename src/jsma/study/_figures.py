"""The study's figure: what observers saw in each condition, beside the network."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jsma._io import ensure_writable
from jsma._records import write_record
from jsma.study._analysis import (
    ANALYSIS_FIGURE,
    ANALYSIS_FILE,
    ConditionLine,
    Rate,
    StudyAnalysis,
)

__all__ = ["write_analysis"]

_BARS = (
    ("judged a digit", "judged_digit"),
    ("saw the source class", "saw_source"),
    ("saw the target class", "saw_target"),
    ("network: the target", "network_target"),
)


def analysis_figure(analysis: StudyAnalysis) -> Figure:
    """One panel per observer kind: per condition, the shares of answers (bars, with
    cluster bootstrap 95% intervals, the ones to quote; Wilson's where the bootstrap was
    not computed) judging a digit (or one of the classes), naming the source and the target,
    and the network's rate of outputting the target (no interval: the network's
    answer on each stimulus is known, not sampled). The legend sits below the panels."""
    kinds = sorted({line.kind for line in analysis.lines}) or ["human"]
    figure = Figure(figsize=(6 * len(kinds), 4), layout="constrained")
    panels = np.atleast_1d(figure.subplots(1, len(kinds), squeeze=False)).flatten()
    for axes, kind in zip(panels, kinds, strict=True):
        lines: list[ConditionLine] = [
            line for line in analysis.lines if line.kind == kind and line.bucket == "all"
        ]
        positions = np.arange(len(lines))
        width = 0.8 / len(_BARS)
        for number, (label, field) in enumerate(_BARS):
            label = analysis.judged if field == "judged_digit" else label
            rates: list[Rate] = [getattr(line, field) for line in lines]
            shares = np.array([r.share * 100 for r in rates])
            low = [r.cluster_low if math.isfinite(r.cluster_low) else r.low for r in rates]
            high = [r.cluster_high if math.isfinite(r.cluster_high) else r.high for r in rates]
            below = np.array([(r.share - lo) * 100 for r, lo in zip(rates, low, strict=True)])
            above = np.array([(hi - r.share) * 100 for r, hi in zip(rates, high, strict=True)])
            interval = None if field == "network_target" else np.stack([below, above])
            axes.bar(
                positions + (number - (len(_BARS) - 1) / 2) * width, shares, width,
                yerr=None if interval is None else np.nan_to_num(interval), capsize=2,
                label=label,
            )  # fmt: skip
        axes.set_xticks(positions, [line.condition for line in lines])
        axes.set_ylim(0, 105)
        axes.set_ylabel("share of the answers (%)")
        observers = "people" if kind == "human" else f"machine observer: {kind}"
        axes.set_title(f"{observers} ({analysis.participants.get(kind, 0)} kept)")
        axes.grid(axis="y", alpha=0.3)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(_BARS), fontsize=8)
    return figure


def write_analysis(analysis: StudyAnalysis, out: Path) -> Path:
    """`out`/analysis.json and `out`/analysis.png (the figure); returns the JSON path."""
    from jsma.plotting import save_figure

    ensure_writable(out)
    path = out / ANALYSIS_FILE
    write_record(path, analysis)
    save_figure(analysis_figure(analysis), out / ANALYSIS_FIGURE)
    return path
