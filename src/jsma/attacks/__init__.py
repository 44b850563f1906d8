"""The attack: forward derivative, saliency maps, pair search and crafting."""

from jsma.attacks._compat import TorchattacksJSMA
from jsma.attacks._crafting import JSMA, AttackResult, AttackSettings, SampleResult, StopReason
from jsma.attacks._derivatives import TargetDerivatives, forward_derivative, target_derivatives
from jsma.attacks._functional import all_other_targets, attack
from jsma.attacks._pair_search import select_pair
from jsma.attacks._saliency import adversarial_distance, saliency_map

__all__ = [
    "JSMA",
    "AttackResult",
    "AttackSettings",
    "SampleResult",
    "StopReason",
    "TargetDerivatives",
    "TorchattacksJSMA",
    "adversarial_distance",
    "all_other_targets",
    "attack",
    "forward_derivative",
    "saliency_map",
    "select_pair",
    "target_derivatives",
]
