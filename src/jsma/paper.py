"""The paper's reference numbers (Papernot et al., EuroS&P 2016, Section V)."""

from __future__ import annotations

__all__ = ["PAPER"]

# Increasing: the average over the training, validation and test sets.
PAPER: dict[str, dict[str, float]] = {
    "increasing": {
        "success_rate": 0.9710,
        "mean_distortion_success": 4.02,
        "mean_distortion_all": 4.44,
    },
    "decreasing": {"success_rate": 0.647},
}
