"""The paper's networks, training recipes, checkpoints and evaluation, and models
from outside jsma (exported programs, TorchScript, builders and weights)."""

from jsma.context import frozen_eval
from jsma.models._checkpoint import (
    CheckpointInfo,
    LoadedModel,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from jsma.models._evaluation import Evaluation, check_model_fits, evaluate, predict
from jsma.models._external import Normalization, resolve_device
from jsma.models._networks import MLP, Activation, AndNet, LeNet
from jsma.models._reference import (
    LoadedRef,
    ModelForm,
    ModelProvenance,
    ModelRef,
    model_fingerprint,
)
from jsma.models._registry import ARCHITECTURES, ModelSpec, build_model
from jsma.models._training import (
    RECIPES,
    EpochRecord,
    Objective,
    Recipe,
    TrainingResult,
    cached_model,
    cached_model_path,
    cross_entropy,
    get_recipe,
    packaged_model_path,
    pretrained,
    train,
)

__all__ = [
    "ARCHITECTURES",
    "MLP",
    "RECIPES",
    "Activation",
    "AndNet",
    "CheckpointInfo",
    "EpochRecord",
    "Evaluation",
    "LeNet",
    "LoadedModel",
    "LoadedRef",
    "ModelForm",
    "ModelProvenance",
    "ModelRef",
    "ModelSpec",
    "Normalization",
    "Objective",
    "Recipe",
    "TrainingResult",
    "build_model",
    "cached_model",
    "cached_model_path",
    "check_model_fits",
    "cross_entropy",
    "evaluate",
    "frozen_eval",
    "get_recipe",
    "load_checkpoint",
    "load_weights",
    "model_fingerprint",
    "packaged_model_path",
    "predict",
    "pretrained",
    "resolve_device",
    "save_checkpoint",
    "train",
]
