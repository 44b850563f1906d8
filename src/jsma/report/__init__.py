"""The report: figures, a self-contained HTML page and a JSON summary, from stored results."""

from jsma.report.summary import CampaignSummary, ReportSummary, summarise
from jsma.report.writer import ReportFiles, StoredResults, render_report, write_report

__all__ = [
    "CampaignSummary",
    "ReportFiles",
    "ReportSummary",
    "StoredResults",
    "render_report",
    "summarise",
    "write_report",
]
