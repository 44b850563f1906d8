"""The attack: forward derivative, saliency maps, pair search and crafting."""

from jsma.attacks._compat import TorchattacksJSMA
from jsma.attacks._crafting import (
    JSMA,
    AttackResult,
    AttackSettings,
    PairSearch,
    Saliency,
    SampleResult,
    SearchDomain,
    StopReason,
    Variant,
)
from jsma.attacks._derivatives import (
    Output,
    TargetDerivatives,
    forward_derivative,
    target_derivatives,
)
from jsma.attacks._functional import all_other_targets, attack
from jsma.attacks._pair_search import PairChoice, select_pair
from jsma.attacks._saliency import (
    FeatureChoice,
    adversarial_distance,
    pair_saliency,
    pareto_front,
    saliency_map,
    select_feature,
)

__all__ = [
    "JSMA",
    "AttackResult",
    "AttackSettings",
    "FeatureChoice",
    "Output",
    "PairChoice",
    "PairSearch",
    "Saliency",
    "SampleResult",
    "SearchDomain",
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
