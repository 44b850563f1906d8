"""Defenses the paper discusses, and the follow-up's distillation, evaluated.

- `evaluate_detection`: the neighbouring-pixel statistic as a detector.
- `run_adversarial_training` / `adversarial_training`: train on JSMA samples
  (crafted from the batches, from a conditional GAN's digits, or a campaign's).
- `run_distillation` / `distill`: defensive distillation at temperature T.

The `run_*` functions also attack the defended models with the campaign that
was run against the undefended one and record the comparison (`defense.json`).
"""

from jsma.defenses.detection import (
    DISTORTION_BUCKETS,
    DetectionResult,
    OperatingPoint,
    RocCurve,
    evaluate_detection,
    joint_undetected_success_rate,
    neighbour_statistic,
    roc_curve,
    threshold_at,
    write_detection,
)
from jsma.defenses.evaluation import (
    DefendedCampaign,
    DefenseRecord,
    campaign_results,
    read_defense,
    same_campaign,
)
from jsma.defenses.runs import run_adversarial_training, run_distillation
from jsma.defenses.training import (
    CampaignAdversarialObjective,
    Distillation,
    GeneratedAdversarialObjective,
    OnTheFlyAdversarialObjective,
    SoftLabelObjective,
    TemperatureObjective,
    adversarial_training,
    campaign_training_samples,
    distill,
    soft_labels,
)

__all__ = [
    "DISTORTION_BUCKETS",
    "CampaignAdversarialObjective",
    "DefendedCampaign",
    "DefenseRecord",
    "DetectionResult",
    "Distillation",
    "GeneratedAdversarialObjective",
    "OnTheFlyAdversarialObjective",
    "OperatingPoint",
    "RocCurve",
    "SoftLabelObjective",
    "TemperatureObjective",
    "adversarial_training",
    "campaign_results",
    "campaign_training_samples",
    "distill",
    "evaluate_detection",
    "joint_undetected_success_rate",
    "neighbour_statistic",
    "read_defense",
    "roc_curve",
    "run_adversarial_training",
    "run_distillation",
    "same_campaign",
    "soft_labels",
    "threshold_at",
    "write_detection",
]
