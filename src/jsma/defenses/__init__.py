"""Defenses the paper discusses, and the follow-up's distillation, evaluated.

- `evaluate_detection`: the neighbouring-pixel statistic as a detector.
- `run_adversarial_training` / `adversarial_training`: train on JSMA samples
  (crafted from the batches, from a conditional GAN's digits, or a campaign's).
- `run_distillation` / `distill`: defensive distillation at temperature T.

The `run_*` functions also attack the defended models with the campaign that
was run against the undefended one and record the comparison (`defense.json`).
"""

from jsma.defenses._detection import (
    DETECTION_FILE,
    DISTORTION_BUCKETS,
    DetectionResult,
    DetectionSummary,
    JointRecord,
    OperatingPoint,
    RocCurve,
    StoredDetection,
    evaluate_detection,
    joint_records,
    joint_undetected_success_rate,
    neighbour_statistic,
    read_detection,
    roc_curve,
    threshold_at,
    write_detection,
)
from jsma.defenses._evaluation import (
    DEFENSE_FILE,
    DefendedCampaign,
    DefenseRecord,
    campaign_results,
    read_defense,
    same_campaign,
    write_defense,
)
from jsma.defenses._figures import comparison_figure, detection_figure, generated_adversarial_figure
from jsma.defenses._runs import run_adversarial_training, run_distillation
from jsma.defenses._training import (
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
    "DEFENSE_FILE",
    "DETECTION_FILE",
    "DISTORTION_BUCKETS",
    "CampaignAdversarialObjective",
    "DefendedCampaign",
    "DefenseRecord",
    "DetectionResult",
    "DetectionSummary",
    "Distillation",
    "GeneratedAdversarialObjective",
    "JointRecord",
    "OnTheFlyAdversarialObjective",
    "OperatingPoint",
    "RocCurve",
    "SoftLabelObjective",
    "StoredDetection",
    "TemperatureObjective",
    "adversarial_training",
    "campaign_results",
    "campaign_training_samples",
    "comparison_figure",
    "detection_figure",
    "distill",
    "evaluate_detection",
    "generated_adversarial_figure",
    "joint_records",
    "joint_undetected_success_rate",
    "neighbour_statistic",
    "read_defense",
    "read_detection",
    "roc_curve",
    "run_adversarial_training",
    "run_distillation",
    "same_campaign",
    "soft_labels",
    "threshold_at",
    "write_defense",
    "write_detection",
]
