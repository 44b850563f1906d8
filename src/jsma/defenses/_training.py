"""Training defended models: adversarial training and defensive distillation.

Both are training objectives plugged into `jsma.models.train`, so they share
its recipes, seeding, progress bar and checkpoints.

- Adversarial training (the paper's Section VII idea): every batch is
  extended with JSMA samples labelled with their true class, crafted on the
  fly against the model being trained (from the batch's own images, or from
  digits a conditional GAN makes fresh for each batch), or drawn from a
  stored campaign.
- Defensive distillation (Papernot et al., S&P 2016, the follow-up): a
  teacher trained with its logits divided by a temperature T labels the
  training set softly at T; a student learns those soft labels at T and is
  deployed at T = 1, which scales its logits up by about T.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jsma.attacks import JSMA
from jsma.campaign import Campaign
from jsma.context import frozen_eval
from jsma.data._dataset import Dataset
from jsma.errors import ConfigurationError, JSMAError, TrainingError
from jsma.gan._networks import Generator
from jsma.models import model_fingerprint
from jsma.models._training import Objective, Recipe, TrainingResult, train

__all__ = ["adversarial_training", "distill"]


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction <= 4:
        raise ConfigurationError(
            f"fraction (adversarial samples per benign sample of a batch) must lie in (0, 4], "
            f"got {fraction}"
        )


class OnTheFlyAdversarialObjective:
    """Cross-entropy over each batch plus JSMA samples crafted from it against the
    current model, towards random other classes, labelled with the true class."""

    def __init__(self, attack: JSMA, num_classes: int, *, fraction: float = 0.25, seed: int = 0):
        _check_fraction(fraction)
        self.attack, self.num_classes, self.fraction = attack, num_classes, fraction
        self.generator = torch.Generator().manual_seed(seed)
        self.crafted = 0
        self.succeeded = 0

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        count = min(len(labels), max(1, round(self.fraction * len(labels))))
        offsets = torch.randint(1, self.num_classes, (count,), generator=self.generator)
        targets = (labels[:count] + offsets.to(labels.device)) % self.num_classes
        result = self.attack(model, images[:count], targets, sources=labels[:count])
        self.crafted += count
        self.succeeded += int(result.success.sum())
        inputs = torch.cat([images, result.adversarial.detach()])
        return nn.functional.cross_entropy(model(inputs), torch.cat([labels, labels[:count]]))


class GeneratedAdversarialObjective:
    """Cross-entropy over each batch plus JSMA samples crafted from digits the GAN
    makes fresh for each batch (classes drawn at random), against the current model,
    towards random other classes, labelled with the class the GAN was asked for.

    Real training images are limited; a generator gives new inputs without end.
    """

    def __init__(
        self, generator: Generator, attack: JSMA, *, fraction: float = 0.25, seed: int = 0
    ):
        _check_fraction(fraction)
        self.generator, self.attack, self.fraction = generator.eval(), attack, fraction
        self.num_classes = generator.spec.num_classes
        self.random = torch.Generator().manual_seed(seed)
        self.crafted = 0
        self.succeeded = 0

    def digits(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` fresh generated digits and the classes they were asked to be."""
        asked = torch.randint(0, self.num_classes, (count,), generator=self.random)
        noise = torch.randn(count, self.generator.spec.noise, generator=self.random)
        device = next(self.generator.parameters()).device
        with torch.no_grad():
            return self.generator(noise.to(device), asked.to(device)), asked.to(device)

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        count = max(1, round(self.fraction * len(labels)))
        digits, asked = self.digits(count)
        offsets = torch.randint(1, self.num_classes, (count,), generator=self.random)
        targets = (asked + offsets.to(asked.device)) % self.num_classes
        result = self.attack(model, digits.to(images.device), targets, sources=asked)
        self.crafted += count
        self.succeeded += int(result.success.sum())
        inputs = torch.cat([images, result.adversarial.detach()])
        return nn.functional.cross_entropy(model(inputs), torch.cat([labels, asked]))


class CampaignAdversarialObjective:
    """Cross-entropy over each batch plus adversarial samples drawn (seeded) from
    a fixed pool, such as the successful samples of a campaign."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, *, fraction: float = 0.25, seed: int = 0
    ):
        _check_fraction(fraction)
        if len(images) == 0 or len(images) != len(labels):
            raise ConfigurationError("the pool needs adversarial samples, one label each")
        self.images, self.labels, self.fraction = images, labels, fraction
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        count = max(1, round(self.fraction * len(labels)))
        drawn = torch.randint(0, len(self.labels), (count,), generator=self.generator)
        inputs = torch.cat([images, self.images[drawn].to(images.device)])
        targets = torch.cat([labels, self.labels[drawn].to(labels.device)])
        return nn.functional.cross_entropy(model(inputs), targets)


def campaign_training_samples(
    campaign: Path, dataset: Dataset
) -> tuple[torch.Tensor, torch.Tensor]:
    """The successful adversarial samples of a campaign on the training split,
    rebuilt from their trajectories, with their true (source) labels.

    Campaigns on other splits are refused: training on samples crafted from
    validation or test images would leak them into the evaluation.
    """
    opened = Campaign.open(campaign)
    splits = opened.manifest.spec.splits
    if splits != ("train",):
        raise JSMAError(
            f"{campaign}: attacks samples of {list(splits)}; adversarial training takes "
            "campaigns on the training split only (others would leak evaluation images)"
        )
    samples = opened.samples(dataset)
    return samples.adversarial, samples.sources


def _check_generator(generator: Generator, dataset: Dataset) -> None:
    spec = generator.spec
    made = (spec.input_shape, spec.num_classes, tuple(spec.bounds))
    wanted = (tuple(dataset.input_shape), dataset.num_classes, tuple(dataset.bounds))
    if made != wanted:
        raise ConfigurationError(
            f"the GAN makes {spec.input_shape} images of {spec.num_classes} classes in "
            f"{spec.bounds}; the data has {tuple(dataset.input_shape)}, "
            f"{dataset.num_classes} and {dataset.bounds}"
        )


def adversarial_training(
    dataset: Dataset,
    recipe: Recipe | str,
    *,
    attack: JSMA | None = None,
    campaign: Path | None = None,
    generator: Generator | None = None,
    fraction: float = 0.25,
    seed: int = 0,
    epochs: int | None = None,
    initial: nn.Module | None = None,
    progress: bool = False,
) -> TrainingResult:
    """Train a LeNet on benign batches extended with JSMA samples.

    With `campaign`, the samples come from that training-split campaign; else
    they are crafted on the fly with `attack` (default: the paper's
    increasing JSMA) against the model as it trains, `fraction` of each
    batch, from the batch's images or, with `generator` (a conditional GAN's),
    from fresh generated digits. `initial` fine-tunes that model instead of
    training from scratch.
    """
    description: dict[str, Any] = {
        "kind": "adversarial-training",
        "fraction": fraction,
        "seed": seed,
        "epochs": epochs,  # None: the recipe's
    }
    objective: Objective
    if campaign is not None:
        if attack is not None or generator is not None:
            raise ConfigurationError("give either a campaign or an attack / generator, not both")
        images, labels = campaign_training_samples(campaign, dataset)
        objective = CampaignAdversarialObjective(images, labels, fraction=fraction, seed=seed)
        description.update(source="campaign", campaign=str(campaign.resolve()), pool=len(labels))
    else:
        low, high = dataset.bounds
        attack = attack or JSMA(clip_min=low, clip_max=high)
        if generator is None:
            objective = OnTheFlyAdversarialObjective(
                attack, dataset.num_classes, fraction=fraction, seed=seed
            )
        else:
            _check_generator(generator, dataset)
            objective = GeneratedAdversarialObjective(
                generator, attack, fraction=fraction, seed=seed
            )
        description.update(source="on-the-fly", attack=attack.to_json())
        if generator is not None:  # the GAN, known by its weights
            description.update(source="gan", gan=model_fingerprint(generator))
    description["fine_tuned"] = initial is not None
    result = train(
        dataset, recipe, seed=seed, epochs=epochs, progress=progress,
        objective=objective, initial=initial,
    )  # fmt: skip
    _check_learned(result, "the adversarially trained model", dataset.num_classes)
    return recorded(result, description)


class TemperatureObjective:
    """Cross-entropy of the logits divided by `temperature`, times `temperature`
    (the teacher's training).

    The derivative of cross_entropy(z / T, y) by the logits z is
    (softmax(z / T) - y) / T: at T = 100 plain SGD (the `paper` recipe, whose
    tanh units leave only the output layer to grow the logits T-fold) barely
    moves. Times T it has the size it has at T = 1 (Hinton et al. 2015 scale
    soft-target losses likewise); Adam does not see a constant factor.
    """

    def __init__(self, temperature: float):
        if not temperature > 0:
            raise ConfigurationError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        loss = nn.functional.cross_entropy(model(images) / self.temperature, labels)
        return self.temperature * loss


class SoftLabelObjective:
    """Cross-entropy against per-sample soft labels, logits divided by `temperature`,
    times `temperature` (the student's training; why the factor: see
    `TemperatureObjective`); `soft` is indexed by training-split index."""

    def __init__(self, soft: torch.Tensor, temperature: float):
        if not temperature > 0:
            raise ConfigurationError(f"temperature must be positive, got {temperature}")
        self.soft, self.temperature = soft, temperature

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        log_probabilities = (model(images) / self.temperature).log_softmax(dim=1)
        loss = -(self.soft[indices].to(images.device) * log_probabilities).sum(dim=1).mean()
        return self.temperature * loss


def soft_labels(
    model: nn.Module, images: torch.Tensor, temperature: float, *, batch_size: int = 2000
) -> torch.Tensor:
    """softmax(logits / temperature) of `model` on `images`, batched."""
    with frozen_eval(model), torch.no_grad():
        return torch.cat(
            [(model(part) / temperature).softmax(dim=1) for part in images.split(batch_size)]
        )


@dataclass(frozen=True)
class Distillation:
    """A distilled student, its teacher, and the temperature both were trained at."""

    temperature: float
    teacher: TrainingResult
    student: TrainingResult  # deployed at temperature 1


# The loss `distill` trains with, in each checkpoint: students of earlier versions,
# whose losses were not multiplied by T, lack it and are not reused.
DISTILLATION_LOSS = "T * cross-entropy"


def distill(
    dataset: Dataset,
    recipe: Recipe | str,
    temperature: float,
    *,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = False,
) -> Distillation:
    """Defensive distillation at `temperature`: teacher, soft labels, student."""
    about = {"temperature": temperature, "seed": seed, "epochs": epochs, "loss": DISTILLATION_LOSS}
    teacher = train(
        dataset, recipe, seed=seed, epochs=epochs, progress=progress,
        objective=TemperatureObjective(temperature),
    )  # fmt: skip
    _check_learned(
        teacher, f"distillation at T = {temperature:g}: the teacher", dataset.num_classes
    )
    soft = soft_labels(teacher.model, dataset.train.tensors()[0], temperature)
    student = train(
        dataset, recipe, seed=seed + 1, epochs=epochs, progress=progress,
        objective=SoftLabelObjective(soft, temperature),
    )  # fmt: skip
    _check_learned(
        student, f"distillation at T = {temperature:g}: the student", dataset.num_classes
    )
    return Distillation(
        temperature,
        recorded(teacher, {"kind": "distillation-teacher", **about}),
        recorded(student, {"kind": "distillation", **about}),
    )


def _check_learned(result: TrainingResult, what: str, num_classes: int) -> None:
    """Refuse a model near chance: attacking it would report a defense that is
    only a model that never learned."""
    accuracy = result.info.accuracies["validation"]
    if accuracy < 2 / num_classes:
        raise TrainingError(
            f"{what} reached {accuracy:.2%} validation accuracy, about chance "
            f"({1 / num_classes:.0%} for {num_classes} classes); train longer (epochs) "
            "or with another recipe"
        )


def recorded(result: TrainingResult, defense: Mapping[str, Any]) -> TrainingResult:
    """`result` with how the defense made it (and the training's seconds: its cost)
    written into its checkpoint metadata: training itself knows nothing of defenses."""
    about = {**dict(defense), "training_seconds": round(result.seconds, 1)}
    info = dataclasses.replace(result.info, defense=about)
    return dataclasses.replace(result, info=info)
