"""Defenses the paper discusses, and the follow-up's distillation, evaluated.

- `evaluate_detection`: the neighbouring-pixel statistic as a detector.
- `run_adversarial_training` / `adversarial_training`: train on JSMA samples
  (crafted from the batches, from a conditional GAN's digits, or a campaign's).
- `run_distillation` / `distill`: defensive distillation at temperature T.

The `run_*` functions also attack the defended models with the campaign that
was run against the undefended one and record the comparison (`defense.json`).
"""

from jsma.defenses._detection import (
    DetectionResult,
    StoredDetection,
    evaluate_detection,
    neighbour_statistic,
    read_detection,
)
from jsma.defenses._evaluation import DefendedCampaign, DefenseRecord, read_defense
from jsma.defenses._runs import run_adversarial_training, run_distillation
from jsma.defenses._training import adversarial_training, distill

__all__ = [
    "DefendedCampaign",
    "DefenseRecord",
    "DetectionResult",
    "StoredDetection",
    "adversarial_training",
    "distill",
    "evaluate_detection",
    "neighbour_statistic",
    "read_defense",
    "read_detection",
    "run_adversarial_training",
    "run_distillation",
]
