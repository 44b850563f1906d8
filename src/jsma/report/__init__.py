"""The report: figures, a self-contained HTML page and a JSON summary, from stored results."""

from jsma.report._summary import ReportSummary, summarise
from jsma.report._writer import ReportFiles, write_report

__all__ = [
    "ReportFiles",
    "ReportSummary",
    "summarise",
    "write_report",
]
