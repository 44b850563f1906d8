"""Training recipes for the paper's LeNet, seeded and deterministic on the CPU."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from jsma._records import encode
from jsma.data._dataset import Dataset
from jsma.errors import CheckpointError, ConfigurationError
from jsma.models._checkpoint import (
    CheckpointInfo,
    LoadedModel,
    load_checkpoint,
    save_checkpoint,
)
from jsma.models._evaluation import evaluate
from jsma.models._networks import Activation
from jsma.models._registry import ModelSpec

__all__ = ["Recipe", "TrainingResult", "pretrained", "train"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How to train: activation, optimiser and schedule. Closed choices are Literals."""

    name: str
    activation: Activation
    optimizer: Literal["sgd", "adam"]
    learning_rate: float
    batch_size: int
    epochs: int
    momentum: float = 0.0
    schedule: Literal["constant", "one-cycle"] = "constant"
    init: Literal["torch", "theano"] = "torch"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.learning_rate <= 0:
            raise ConfigurationError(
                f"recipe {self.name!r}: batch_size, epochs and learning_rate must be positive"
            )


RECIPES: dict[str, Recipe] = {
    # The classic Theano LeNet tutorial that the paper's setting matches: tanh,
    # plain SGD, learning rate 0.1, batches of 500 (the tutorial runs up to 200
    # epochs with early stopping; we run a fixed number, see the README).
    "paper": Recipe(
        name="paper",
        activation="tanh",
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=500,
        epochs=30,
        init="theano",
    ),
    # A fast modern recipe: ReLU and Adam with a one-cycle schedule.
    "default": Recipe(
        name="default",
        activation="relu",
        optimizer="adam",
        learning_rate=3e-3,
        batch_size=128,
        epochs=6,
        schedule="one-cycle",
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, or a `ConfigurationError` listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}"
        ) from None


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training: its mean loss, validation accuracy and time."""

    epoch: int
    loss: float
    validation_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainingResult:
    """A trained model (in eval mode), its checkpoint metadata and its history."""

    model: nn.Module
    info: CheckpointInfo
    history: tuple[EpochRecord, ...]
    seconds: float


def theano_init(model: nn.Module) -> None:
    """Initialise weights as the Theano LeNet tutorial does (for tanh units).

    Convolutions and hidden layers draw from U(-b, b) with
    b = sqrt(6 / (fan_in + fan_out)), where a convolution's fan_out is divided
    by the 2x2 pooling that follows it; biases start at zero; the output layer
    (the tutorial's logistic regression) starts entirely at zero.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for layer in layers[:-1]:
            if isinstance(layer, nn.Conv2d):
                receptive = layer.kernel_size[0] * layer.kernel_size[1]
                fan_in = layer.in_channels * receptive
                fan_out = layer.out_channels * receptive / 4
            else:
                fan_in, fan_out = layer.in_features, layer.out_features
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            layer.weight.uniform_(-bound, bound)
            if layer.bias is not None:
                layer.bias.zero_()
        for parameter in layers[-1].parameters():
            parameter.zero_()


def _optimizer(
    recipe: Recipe, model: nn.Module, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    optimizer: torch.optim.Optimizer
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.learning_rate, momentum=recipe.momentum
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    if recipe.schedule == "one-cycle":
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.learning_rate, total_steps=steps
        )
    return optimizer, None


Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""A training loss: (model, images, labels, their indices in the training split) -> loss.

The indices let an objective look up per-sample data, such as a teacher's
soft labels; the model is in training mode when it is called.
"""


def cross_entropy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """The plain objective: cross-entropy of the logits against the labels."""
    return nn.functional.cross_entropy(model(images), labels)


def train(
    dataset: Dataset,
    recipe: Recipe | str = "default",
    *,
    seed: int = 0,
    epochs: int | None = None,
    architecture: str = "lenet",
    progress: bool = False,
    objective: Objective = cross_entropy,
    initial: nn.Module | None = None,
    on_epoch: Callable[[EpochRecord, nn.Module], None] | None = None,
) -> TrainingResult:
    """Train `architecture` on the training split with `recipe`, seeded.

    The same seed, recipe and data give the same weights on the CPU. Returns
    the model in eval mode with validation and test accuracy in `info`.
    `objective` replaces the cross-entropy (defenses train differently);
    `initial` starts from a copy of that model's weights instead of a fresh
    initialisation (fine-tuning). Training knows nothing of defenses: a defense
    records what it did in the result (`jsma.defenses._training.recorded`).
    `on_epoch(record, model)` runs after each epoch (the model in training
    mode; copy it to keep a snapshot).

    Example:
        >>> result = train(load_mnist(), "default", seed=0)  # doctest: +SKIP
        >>> result.info.accuracies["test"]  # doctest: +SKIP
        0.99...
    """
    chosen = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if epochs is not None:
        chosen = dataclasses.replace(chosen, epochs=epochs)
    spec = ModelSpec(
        architecture,
        {
            "input_shape": dataset.input_shape,
            "num_classes": dataset.num_classes,
            "activation": chosen.activation,
        },
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()
        if initial is not None:
            model.load_state_dict(initial.state_dict())
        elif chosen.init == "theano":
            theano_init(model)
    images, labels = dataset.train.tensors()
    batches = -(-len(labels) // chosen.batch_size)
    optimizer, scheduler = _optimizer(chosen, model, chosen.epochs * batches)
    history: list[EpochRecord] = []
    started = time.perf_counter()
    bar = tqdm(total=chosen.epochs * batches, disable=not progress, unit="batch", leave=True)
    try:
        for epoch in range(1, chosen.epochs + 1):
            epoch_started = time.perf_counter()
            bar.set_description(f"epoch {epoch}/{chosen.epochs}")
            model.train()
            order = torch.randperm(len(labels), generator=generator)
            total_loss = 0.0
            for batch in order.split(chosen.batch_size):
                loss = objective(model, images[batch], labels[batch], batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total_loss += loss.item() * len(batch)
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            accuracy = evaluate(model, dataset.validation, dataset.num_classes).accuracy
            record = EpochRecord(
                epoch, total_loss / len(labels), accuracy, time.perf_counter() - epoch_started
            )
            history.append(record)
            bar.set_postfix(loss=f"{record.loss:.4f}", val_acc=f"{accuracy:.4f}")
            logger.info(
                "epoch %d: loss %.4f, validation accuracy %.4f", epoch, record.loss, accuracy
            )
            if on_epoch is not None:
                on_epoch(record, model)
    finally:
        bar.close()
    model.eval()
    accuracies: dict[str, float] = {
        split.name: evaluate(model, split, dataset.num_classes).accuracy
        for split in (dataset.validation, dataset.test)
        if len(split)  # a user's data may have no validation split
    }
    info = CheckpointInfo(
        spec=spec,
        recipe=encode(chosen),
        seed=seed,
        data={
            "name": dataset.name,
            "source": dataset.source,
            "sizes": {split.name: len(split) for split in dataset.splits()},
        },
        accuracies=accuracies,
    )
    return TrainingResult(model, info, tuple(history), time.perf_counter() - started)


# Measured here (2 cores): what a user waits when a recipe's model must be trained.
_TRAINING_TIME = {"paper": "about 8.5 minutes", "default": "about 2 minutes"}


def cached_model_path(cache_dir: Path, recipe: str, seed: int = 0) -> Path:
    """Where the model cache keeps the LeNet of (recipe, seed)."""
    return cache_dir / "models" / f"lenet-{recipe}-seed{seed}.safetensors"


def packaged_model_path(recipe: str, seed: int = 0) -> Path | None:
    """The checkpoint shipped inside the package for (recipe, seed), if there is one.

    Made by `jsma train --recipe paper` and `--recipe default` on this project's CPU
    machine: no command trains a model before it can start (8.5 and 2 minutes).
    """
    path = Path(str(resources.files("jsma.models").joinpath("pretrained"))) / (
        f"lenet-{recipe}-seed{seed}.safetensors"
    )
    return path if path.is_file() else None


def pretrained(recipe: str = "default", seed: int = 0) -> LoadedModel:
    """The LeNet of `recipe` shipped inside the package, trained on MNIST (the
    classic 50,000 / 10,000 / 10,000 split): no data and no training needed.

    Example:
        >>> model = pretrained("paper").model  # the paper's tanh LeNet, 98.83% test
    """
    path = packaged_model_path(get_recipe(recipe).name, seed)
    if path is None:
        raise CheckpointError(
            f"no packaged model for recipe {recipe!r}, seed {seed}: jsma ships seed 0 of "
            "the 'default' and 'paper' recipes (train others with jsma.train)"
        )
    return load_checkpoint(path)


def _fits(info: CheckpointInfo, dataset: Dataset, recipe: str) -> bool:
    """Whether a packaged checkpoint was made for this data (by shape and split sizes)."""
    sizes = {split.name: len(split) for split in dataset.splits()}
    return (
        info.recipe == encode(get_recipe(recipe))
        and dict(info.data.get("sizes", {})) == sizes
        and tuple(info.spec.arguments.get("input_shape", ())) == tuple(dataset.input_shape)
        and info.spec.arguments.get("num_classes") == dataset.num_classes
    )


def cached_model(
    dataset: Dataset,
    cache_dir: Path,
    recipe: str = "default",
    *,
    seed: int = 0,
    progress: bool = False,
    retrain: bool = False,
) -> LoadedModel:
    """The LeNet trained with `recipe`: from the cache, else the packaged checkpoint
    (when it was made for this data), else trained now and cached.

    `retrain` trains it again and replaces the cached copy.
    """
    path = cached_model_path(cache_dir, recipe, seed)
    if not retrain:
        if path.is_file():
            return load_checkpoint(path)
        packaged = packaged_model_path(recipe, seed)
        if packaged is not None:
            loaded = load_checkpoint(packaged)
            if _fits(loaded.info, dataset, recipe):
                logger.info("using the packaged %r model %s", recipe, packaged)
                return loaded
        logger.warning(
            "no cached %r model at %s, and none packaged for this data: training one now "
            "(%s on 2 CPU cores for MNIST; then cached)", recipe, path,
            _TRAINING_TIME.get(recipe, "minutes"),
        )  # fmt: skip
    result = train(dataset, recipe, seed=seed, progress=progress)
    save_checkpoint(path, result.model, result.info)
    return LoadedModel(result.model, result.info)
