"""The attack: forward derivative, saliency maps, pair search and crafting."""

from jsma.attacks.compat import TorchattacksJSMA
from jsma.attacks.crafting import (
    JSMA,
    AttackResult,
    AttackSettings,
    SampleResult,
    StopReason,
    Variant,
    all_other_targets,
    attack,
)
from jsma.attacks.derivatives import (
    Output,
    TargetDerivatives,
    forward_derivative,
    target_derivatives,
)
from jsma.attacks.saliency import (
    FeatureChoice,
    PairChoice,
    adversarial_distance,
    pair_saliency,
    pareto_front,
    saliency_map,
    select_feature,
    select_pair,
)

__all__ = [
    "JSMA",
    "AttackResult",
    "AttackSettings",
    "FeatureChoice",
    "Output",
    "PairChoice",
    "SampleResult",
    "StopReason",
    "TargetDerivatives",
    "TorchattacksJSMA",
    "Variant",
    "adversarial_distance",
    "all_other_targets",
    "attack",
    "forward_derivative",
    "pair_saliency",
    "pareto_front",
    "saliency_map",
    "select_feature",
    "select_pair",
    "target_derivatives",
]
