"""How good generated digits are, judged by a classifier the GAN never saw.

Two measures, both computed with an independent MNIST classifier (the
"judge"):

- the share of generated digits it labels with confidence, and as the class
  they were asked to be;
- a Frechet distance (Heusel et al. 2017's FID, with the judge's penultimate
  features instead of Inception's) between generated and real test images,
  beside the same distance between real training and real test images: the
  floor that sampling alone gives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import nn

from jsma.context import frozen_eval
from jsma.data._dataset import Dataset
from jsma.errors import ConfigurationError, InputTypeError, ModelError
from jsma.gan._networks import Generator
from jsma.gan._training import generate

__all__ = ["gan_quality"]


def penultimate_features(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000
) -> np.ndarray:
    """What the model's last linear layer receives, for each image: (N, D) float64.

    Found with a forward hook on the last `nn.Linear`, so any classifier whose
    logits come from a linear layer serves.
    """
    last = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not last:
        raise InputTypeError("the judge needs a final nn.Linear layer to take features from")
    captured: list[torch.Tensor] = []
    hook = last[-1].register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0].detach().flatten(1))
    )
    try:
        with frozen_eval(model), torch.no_grad():
            for part in images.split(batch_size):
                model(part)
    finally:
        hook.remove()
    return torch.cat(captured).double().cpu().numpy()


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets (N, D), (M, D):
    |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ConfigurationError(
            f"feature sets must be (N, D) and (M, D), got {first.shape} and {second.shape}"
        )
    if min(len(first), len(second)) < 2:
        raise ConfigurationError("a Frechet distance needs at least 2 samples on each side")
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        # scipy's sqrtm would iterate for minutes on such a product, deaf to Ctrl-C.
        raise ModelError("the features hold NaN or infinite values: no Frechet distance")
    mean_gap = first.mean(axis=0) - second.mean(axis=0)
    cov_first = np.atleast_2d(np.cov(first, rowvar=False))
    cov_second = np.atleast_2d(np.cov(second, rowvar=False))
    with warnings.catch_warnings():
        # Features a ReLU never fires make the product singular; its root is still
        # the one the distance needs (the reference FID code ignores it too).
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(cov_first @ cov_second)
        if not np.isfinite(root).all():  # nudge both, as the reference FID code does
            nudge = np.eye(len(cov_first)) * 1e-6
            root = scipy.linalg.sqrtm((cov_first + nudge) @ (cov_second + nudge))
    trace = np.trace(cov_first) + np.trace(cov_second) - 2 * np.trace(np.real(root))
    return float(mean_gap @ mean_gap + trace)


def check_quality_settings(dataset: Dataset, samples: int, threshold: float = 0.9) -> int:
    """The number of images each side of the measures compares, or a `ConfigurationError`
    (called before training, so a bad setting fails in a second, not after it)."""
    count = min(samples, len(dataset.test), len(dataset.train))
    least = max(2, dataset.num_classes)
    if count < least:
        raise ConfigurationError(f"samples must be at least {least}, got {count}")
    if not 0 < threshold <= 1:
        raise ConfigurationError(f"threshold must lie in (0, 1], got {threshold}")
    return count


@dataclass(frozen=True)
class GanQuality:
    """Generated digits as the judge sees them, `samples` of them, classes balanced."""

    samples: int
    threshold: float
    confident: float  # judge's top probability >= threshold
    as_asked: float  # judge's label is the asked class
    confident_as_asked: float
    as_asked_by_class: tuple[float, ...]
    fid_generated_test: float
    fid_train_test: float  # the floor: real against real


def gan_quality(
    generator: Generator,
    judge: nn.Module,
    dataset: Dataset,
    *,
    samples: int = 10_000,
    threshold: float = 0.9,
    seed: int = 0,
) -> GanQuality:
    """Judge `samples` generated digits (each class equally often) with `judge`.

    The Frechet distances compare equal numbers of images (`samples`, or fewer
    when a split is smaller): generated vs the first test images, and the first
    training images vs the same test images.
    """
    classes_count = dataset.num_classes
    count = check_quality_settings(dataset, samples, threshold)
    asked = torch.arange(count) % classes_count
    generated = generate(generator, asked, seed=seed)
    broken = int((~torch.isfinite(generated.flatten(1))).any(dim=1).sum())
    if broken:
        raise ModelError(
            f"the generator makes images with NaN or infinite values ({broken} of {count}): "
            "they cannot be judged (did its training diverge?)"
        )
    with frozen_eval(judge), torch.no_grad():
        probabilities = torch.cat([judge(part).softmax(dim=1) for part in generated.split(1000)])
    top, labels = probabilities.max(dim=1)
    confident, right = top >= threshold, labels == asked
    by_class = tuple(float(right[asked == c].double().mean()) for c in range(classes_count))
    test, _ = dataset.test.tensors(slice(0, count))
    train, _ = dataset.train.tensors(slice(0, count))
    test_features = penultimate_features(judge, test)
    return GanQuality(
        samples=count,
        threshold=threshold,
        confident=float(confident.double().mean()),
        as_asked=float(right.double().mean()),
        confident_as_asked=float((confident & right).double().mean()),
        as_asked_by_class=by_class,
        fid_generated_test=frechet_distance(penultimate_features(judge, generated), test_features),
        fid_train_test=frechet_distance(penultimate_features(judge, train), test_features),
    )
