"""jsma: the Jacobian-based Saliency Map Attack and the evaluation of
Papernot et al., "The Limitations of Deep Learning in Adversarial Settings"
(EuroS&P 2016).

The public API is what `__all__` lists; modules whose names start with an
underscore are private.
"""

from importlib import metadata as _metadata

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
from jsma.data import Dataset, Split, load_mnist
from jsma.errors import (
    CampaignError,
    CheckpointError,
    ConfigurationError,
    DataError,
    InputTypeError,
    JSMAError,
    MissingDependencyError,
    ModelError,
    StorageError,
)
from jsma.models import (
    AndNet,
    CheckpointInfo,
    LeNet,
    ModelSpec,
    evaluate,
    frozen_eval,
    load_checkpoint,
    save_checkpoint,
    train,
)

try:
    __version__ = _metadata.version("jsma")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "JSMA",
    "AndNet",
    "AttackResult",
    "CampaignError",
    "CheckpointError",
    "CheckpointInfo",
    "ConfigurationError",
    "DataError",
    "Dataset",
    "InputTypeError",
    "JSMAError",
    "LeNet",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "SampleResult",
    "Split",
    "StopReason",
    "StorageError",
    "TorchattacksJSMA",
    "__version__",
    "attack",
    "evaluate",
    "forward_derivative",
    "frozen_eval",
    "load_checkpoint",
    "load_mnist",
    "saliency_map",
    "save_checkpoint",
    "select_pair",
    "target_derivatives",
    "train",
]
