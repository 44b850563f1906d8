"""The paper's metrics, computed from a campaign's stored rows.

Every function here is pure and works on numpy arrays (one entry per attack),
so it can be checked against a plain computation; `CampaignArrays` pulls those
arrays out of a campaign's Parquet table.
"""

from jsma.metrics._core import (
    BudgetCurves,
    CampaignArrays,
    ClassRates,
    SetResults,
    budget_curves,
    class_rates,
    distance_matrix,
    distortion_bucket,
    distortion_matrix,
    hardness_matrix,
    pixels_changed,
    rank_correlation,
    results_by_split,
    robustness,
    success_matrix,
)

__all__ = [
    "BudgetCurves",
    "CampaignArrays",
    "ClassRates",
    "SetResults",
    "budget_curves",
    "class_rates",
    "distance_matrix",
    "distortion_bucket",
    "distortion_matrix",
    "hardness_matrix",
    "pixels_changed",
    "rank_correlation",
    "results_by_split",
    "robustness",
    "success_matrix",
]
