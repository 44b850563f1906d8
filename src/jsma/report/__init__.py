"""The report: figures, a self-contained HTML page and a JSON summary, from stored results."""

from jsma.report.summary import CampaignSummary, summarise
from jsma.report.writer import ReportFiles, render_report, write_report

__all__ = ["CampaignSummary", "ReportFiles", "render_report", "summarise", "write_report"]
