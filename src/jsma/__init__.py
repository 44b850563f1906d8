"""jsma: the Jacobian-based Saliency Map Attack and the evaluation of
Papernot et al., "The Limitations of Deep Learning in Adversarial Settings"
(EuroS&P 2016).

The public API is what `__all__` lists; modules whose names start with an
underscore are private.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

from jsma._version import __version__
from jsma.errors import (
    CampaignError,
    CheckpointError,
    ConfigurationError,
    DataError,
    InputTypeError,
    Interrupted,
    JSMAError,
    MissingDependencyError,
    ModelError,
    StorageError,
    TrainingError,
)

# Where each public name lives. They are imported on first use (PEP 562), so that
# `import jsma` (and `jsma --help`) costs milliseconds instead of torch's second.
_LAZY = {
    "jsma.attacks": (
        "JSMA", "AttackResult", "SampleResult", "StopReason", "TorchattacksJSMA", "attack",
        "forward_derivative", "saliency_map", "select_pair", "target_derivatives",
    ),
    "jsma.campaign": ("Campaign",),
    "jsma.context": ("frozen_eval",),
    "jsma.data": ("DataRef", "Dataset", "Split", "load_mnist"),
    "jsma.models": (
        "AndNet", "CheckpointInfo", "LeNet", "ModelRef", "ModelSpec", "evaluate",
        "load_checkpoint", "pretrained", "save_checkpoint", "train",
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _LAZY.items() for name in names}

if TYPE_CHECKING:
    from jsma.attacks import (
        JSMA,
        AttackResult,
        SampleResult,
        StopReason,
        TorchattacksJSMA,
        attack,
        forward_derivative,
        saliency_map,
        select_pair,
        target_derivatives,
    )
    from jsma.campaign import Campaign
    from jsma.context import frozen_eval
    from jsma.data import DataRef, Dataset, Split, load_mnist
    from jsma.models import (
        AndNet,
        CheckpointInfo,
        LeNet,
        ModelRef,
        ModelSpec,
        evaluate,
        load_checkpoint,
        pretrained,
        save_checkpoint,
        train,
    )


if not TYPE_CHECKING:  # hidden from mypy, which would read any attribute as Any

    def __getattr__(name: str) -> Any:
        if name not in _HOME:
            raise AttributeError(f"module 'jsma' has no attribute {name!r}")
        value = getattr(_importlib.import_module(_HOME[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "JSMA",
    "AndNet",
    "AttackResult",
    "Campaign",
    "CampaignError",
    "CheckpointError",
    "CheckpointInfo",
    "ConfigurationError",
    "DataError",
    "DataRef",
    "Dataset",
    "InputTypeError",
    "Interrupted",
    "JSMAError",
    "LeNet",
    "MissingDependencyError",
    "ModelError",
    "ModelRef",
    "ModelSpec",
    "SampleResult",
    "Split",
    "StopReason",
    "StorageError",
    "TorchattacksJSMA",
    "TrainingError",
    "__version__",
    "attack",
    "evaluate",
    "forward_derivative",
    "frozen_eval",
    "load_checkpoint",
    "load_mnist",
    "pretrained",
    "saliency_map",
    "save_checkpoint",
    "select_pair",
    "target_derivatives",
    "train",
]
