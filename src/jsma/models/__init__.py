"""The paper's networks, training recipes, checkpoints and evaluation, and models
from outside jsma (exported programs, TorchScript, builders and weights)."""

from jsma.context import frozen_eval
from jsma.models._checkpoint import (
    CheckpointInfo,
    LoadedModel,
    describe_model,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from jsma.models._evaluation import Evaluation, check_model_fits, evaluate, predict
from jsma.models._external import (
    ModelForm,
    ModelSource,
    Normalization,
    SourcedModel,
    is_builder,
    load_model,
    model_source,
    parse_model_arguments,
    resolve_device,
)
from jsma.models._networks import MLP, Activation, AndNet, LeNet
from jsma.models._provenance import ModelProvenance, model_fingerprint
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
    resolve_model,
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
    "ModelForm",
    "ModelProvenance",
    "ModelSource",
    "ModelSpec",
    "Normalization",
    "Objective",
    "Recipe",
    "SourcedModel",
    "TrainingResult",
    "build_model",
    "cached_model",
    "cached_model_path",
    "check_model_fits",
    "cross_entropy",
    "describe_model",
    "evaluate",
    "frozen_eval",
    "get_recipe",
    "is_builder",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "model_fingerprint",
    "model_source",
    "packaged_model_path",
    "parse_model_arguments",
    "predict",
    "pretrained",
    "resolve_device",
    "resolve_model",
    "save_checkpoint",
    "train",
]
