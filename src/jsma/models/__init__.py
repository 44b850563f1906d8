"""The paper's networks, training recipes, checkpoints and evaluation, and models
from outside jsma (exported programs, TorchScript, builders and weights)."""

from jsma.models._checkpoint import CheckpointInfo, LoadedModel, load_checkpoint, save_checkpoint
from jsma.models._evaluation import Evaluation, check_model_fits, evaluate, predict
from jsma.models._networks import MLP, AndNet, LeNet
from jsma.models._onnx import export_onnx
from jsma.models._reference import ModelLike, ModelProvenance, ModelRef, model_fingerprint
from jsma.models._registry import ModelSpec
from jsma.models._training import Recipe, TrainingResult, pretrained, train

__all__ = [
    "MLP",
    "AndNet",
    "CheckpointInfo",
    "Evaluation",
    "LeNet",
    "LoadedModel",
    "ModelLike",
    "ModelProvenance",
    "ModelRef",
    "ModelSpec",
    "Recipe",
    "TrainingResult",
    "check_model_fits",
    "evaluate",
    "export_onnx",
    "load_checkpoint",
    "model_fingerprint",
    "predict",
    "pretrained",
    "save_checkpoint",
    "train",
]
