"""Robustness rho(F), the per-sample smallest adversarial distance, and how hardness
and adversarial distance agree (the paper's section V)."""

from __future__ import annotations

from collections.abc import Sequence

from jsma.report._page import Section
from jsma.report._summary import CampaignSummary

__all__ = ["robustness_section"]


def robustness_section(summaries: Sequence[CampaignSummary]) -> Section:
    """One line per campaign: rho(F), the mean smallest distance, the rank correlation."""
    return Section("Robustness and hardness", "robustness.html", {"summaries": summaries})
