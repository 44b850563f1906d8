"""Accuracy and confusion matrix of a classifier on a split."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from jsma.context import frozen_eval
from jsma.data._dataset import Dataset, Split
from jsma.errors import ModelError

__all__ = ["Evaluation", "check_model_fits", "evaluate", "predict"]


def check_model_fits(model: nn.Module, dataset: Dataset, *, name: str = "the model") -> None:
    """A `ModelError` naming both if `model` does not take `dataset`'s inputs, does not
    give one finite score per class of it, or takes one input at a time only: checked on
    two samples, before any long work."""
    split = next(s for s in dataset.splits() if len(s))
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    images, _ = split.tensors(np.array([0, min(1, len(split) - 1)]), device=device)
    shape = tuple(dataset.input_shape)

    def outputs_of(batch: torch.Tensor) -> Any:
        with frozen_eval(model), torch.no_grad():
            return model(batch)

    try:
        outputs = outputs_of(images[:1])
    except Exception as error:  # a model from outside jsma may raise anything here
        raise ModelError(
            f"{name} does not take this data's inputs, of shape {shape} ({_first_line(error)})"
        ) from None
    if not isinstance(outputs, torch.Tensor) or outputs.ndim != 2 or len(outputs) != 1:
        got = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ModelError(f"{name} gives {got} for one input of shape {shape}, not (1, classes)")
    if outputs.shape[1] != dataset.num_classes:
        raise ModelError(
            f"{name} gives {outputs.shape[1]} class scores, the data has "
            f"{dataset.num_classes} classes"
        )
    if not torch.isfinite(outputs).all():
        raise ModelError(f"{name} gives NaN or infinite scores for a sample of this data")
    if outputs.dtype != images.dtype:
        raise ModelError(
            f"{name} gives {outputs.dtype} scores for {images.dtype} inputs; the attack works "
            f"in {images.dtype}: convert the model (model.to({images.dtype})) before saving it"
        )
    try:
        batch = outputs_of(images)
    except Exception as error:  # a program exported for batches of one, say
        raise ModelError(
            f"{name} takes one input at a time only ({_first_line(error)}); the attack runs "
            "batches: export it with a dynamic batch dimension (dynamic_shapes="
            "({0: torch.export.Dim('batch')},))"
        ) from None
    # In train mode (dropout, batch norm on batch statistics) the same input gets other
    # scores each time or in another batch; an exported program keeps the mode it had.
    if not (
        torch.allclose(outputs_of(images), batch, rtol=1e-4, atol=1e-5)
        and torch.allclose(batch[:1], outputs, rtol=1e-4, atol=1e-5)
    ):
        raise ModelError(
            f"{name} gives the same input other scores on another call or in another batch: "
            "it runs in training mode (dropout, batch norm); call model.eval() before "
            "exporting or saving it"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
    """Predicted classes (n,) for images (n, ...), in batches, without gradients: each
    batch moved to the model's device, the classes returned on the CPU."""
    device = next(itertools.chain(model.parameters(), model.buffers()), images).device
    with frozen_eval(model), torch.no_grad():
        chunks = [model(chunk.to(device)).argmax(dim=1).cpu() for chunk in images.split(batch_size)]
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
