"""Accuracy and confusion matrix of a classifier on a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from jsma.context import frozen_eval
from jsma.data.dataset import Split

__all__ = ["Evaluation", "evaluate", "predict"]


@dataclass(frozen=True)
class Evaluation:
    """How a model does on one split.

    `confusion[i, j]` counts samples of true class i predicted as class j.
    """

    split: str
    accuracy: float
    confusion: np.ndarray

    @property
    def count(self) -> int:
        return int(self.confusion.sum())


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes (n,) for images (n, ...), in batches, without gradients."""
    with frozen_eval(model), torch.no_grad():
        chunks = [model(chunk).argmax(dim=1) for chunk in images.split(batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)


def evaluate(
    model: nn.Module, split: Split, num_classes: int, *, batch_size: int = 1000
) -> Evaluation:
    """Accuracy and confusion matrix of `model` on `split`."""
    device = next(model.parameters()).device
    images, labels = split.tensors(device=device)
    predicted = predict(model, images, batch_size=batch_size).cpu().numpy()
    truth = labels.cpu().numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    accuracy = float(np.mean(predicted == truth)) if len(truth) else float("nan")
    return Evaluation(split=split.name, accuracy=accuracy, confusion=confusion)
