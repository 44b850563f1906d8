"""The report: figures, a self-contained HTML page and a JSON summary, from stored results."""

from jsma.report._figures import (
    budget_figure,
    distortion_bins,
    distortion_histogram,
    heatmap,
    sample_grid,
)
from jsma.report._summary import CampaignSummary, ReportSummary, summarise
from jsma.report._writer import ReportFiles, StoredResults, render_report, write_report

__all__ = [
    "CampaignSummary",
    "ReportFiles",
    "ReportSummary",
    "StoredResults",
    "budget_figure",
    "distortion_bins",
    "distortion_histogram",
    "heatmap",
    "render_report",
    "sample_grid",
    "summarise",
    "write_report",
]
