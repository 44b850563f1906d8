"""Whole defense runs: train the defended models, attack them with the baseline's
campaign, record everything in `defense.json`. Rerunning resumes: trained
models are reloaded from their checkpoints, campaigns continue.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from jsma.attacks import JSMA
from jsma.campaign import CampaignRef
from jsma.data._dataset import Dataset
from jsma.defenses._evaluation import (
    DefendedCampaign,
    DefenseRecord,
    baseline_output,
    check_baseline_model,
    same_campaign,
    write_defense,
)
from jsma.defenses._figures import generated_adversarial_figure
from jsma.defenses._training import DISTILLATION_LOSS, adversarial_training, distill
from jsma.errors import ConfigurationError, JSMAError
from jsma.gan import load_generator
from jsma.models import (
    LoadedModel,
    ModelProvenance,
    Recipe,
    evaluate,
    load_checkpoint,
    model_fingerprint,
    save_checkpoint,
)
from jsma.models._reference import checkpoint_provenance
from jsma.models._training import TrainingResult
from jsma.plotting import save_figure
from jsma.settings import Output

__all__ = [
    "run_adversarial_training",
    "run_distillation",
]

logger = logging.getLogger(__name__)

GAN_FIGURE = "gan-adversarial.png"  # beside the record of adversarial training on GAN digits


def _trained(
    path: Path, description: Mapping[str, Any], make: Callable[[], TrainingResult]
) -> LoadedModel:
    """The model at `path` if it was made as `description` says; else make and save it."""
    if path.is_file():
        loaded = load_checkpoint(path)
        stored = {k: loaded.info.defense.get(k) for k in description}
        if loaded.info.defense.get("kind") == "distillation" and "loss" not in loaded.info.defense:
            raise JSMAError(
                f"{path}: this student was distilled by an earlier jsma, whose losses were not "
                "multiplied by the temperature (with plain SGD a student at high temperature "
                "stayed at chance); delete its folder or use another output directory to "
                "distil it again"
            )
        if stored != dict(description):
            raise JSMAError(
                f"{path}: this model was trained with other settings ({dict(loaded.info.defense)}"
                f", asked {dict(description)}); use another output directory"
            )
        logger.info("reusing %s", path)
        return loaded
    result = make()
    save_checkpoint(path, result.model, result.info)
    return LoadedModel(result.model, result.info)


def _accuracy(model: nn.Module, dataset: Dataset) -> float:
    return evaluate(model, dataset.test, dataset.num_classes).accuracy


def run_adversarial_training(
    baseline: Path,
    model: nn.Module,
    dataset: Dataset,
    directory: Path,
    *,
    recipe: Recipe | str,
    campaign: Path | None = None,
    gan: Path | None = None,
    fraction: float = 0.25,
    epochs: int | None = None,
    fine_tune: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> DefenseRecord:
    """Adversarially train a model, attack it with the campaign of `baseline` (run
    against the undefended `model`) and record both side by side.

    The adversarial samples come from `campaign` (a training-split campaign), or are
    crafted on the fly from the batches' images, or from digits that the GAN stored
    at `gan` (a `jsma gan train` directory or generator checkpoint) makes fresh."""
    check_baseline_model(baseline, model)
    generator = None if gan is None else load_generator(gan).generator
    source = "campaign" if campaign is not None else "gan" if gan is not None else "on-the-fly"
    description: dict[str, Any] = {
        "kind": "adversarial-training",
        "fraction": fraction,
        "source": source,
        "campaign": None if campaign is None else str(campaign.resolve()),
        "gan": None if generator is None else model_fingerprint(generator),
        "fine_tuned": fine_tune,
        "seed": seed,
        "epochs": epochs,
    }

    def make() -> TrainingResult:
        initial = model if fine_tune else None
        return adversarial_training(
            dataset, recipe, campaign=campaign, generator=generator, fraction=fraction,
            seed=seed, epochs=epochs, initial=initial, progress=progress,
        )  # fmt: skip

    defended = _trained(directory / "model.safetensors", description, make)
    output = baseline_output(baseline)
    attacked = same_campaign(
        baseline, defended.model, dataset, directory / "campaign",
        provenance=_provenance(defended, directory / "model.safetensors"),
        progress=progress,
    )  # fmt: skip
    record = DefenseRecord(
        "adversarial-training",
        (
            DefendedCampaign(
                "undefended", output, _accuracy(model, dataset), CampaignRef.of(baseline)
            ),
            DefendedCampaign(
                "adversarially trained" + (" on GAN digits" if gan is not None else ""),
                output,
                _accuracy(defended.model, dataset),
                CampaignRef.of(attacked),
            ),
        ),
        {**dict(defended.info.defense), "epochs": defended.info.recipe.get("epochs")},
    )
    write_defense(directory, record)
    if generator is not None:
        low, high = dataset.bounds
        figure = generated_adversarial_figure(
            generator, model, JSMA(clip_min=low, clip_max=high), seed=seed
        )
        save_figure(figure, directory / GAN_FIGURE)
    return record


def run_distillation(
    baseline: Path,
    model: nn.Module,
    dataset: Dataset,
    directory: Path,
    *,
    recipe: Recipe | str,
    temperatures: Sequence[float] = (1.0, 10.0, 100.0),
    outputs: Sequence[Output] = ("logits", "probabilities"),
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> DefenseRecord:
    """Distil at each temperature and attack every student, on each of `outputs`,
    with the campaign of `baseline`; the undefended `model` is attacked on each
    output too."""
    check_baseline_model(baseline, model)
    if not temperatures or any(not t > 0 for t in temperatures):
        raise ConfigurationError(f"temperatures must be positive numbers, got {list(temperatures)}")
    base_output = baseline_output(baseline)
    accuracy = _accuracy(model, dataset)
    entries = []
    for output in outputs:
        campaign = baseline
        if output != base_output:
            campaign = same_campaign(
                baseline, model, dataset, directory / f"undefended-{output}",
                output=output, progress=progress,
            )  # fmt: skip
        entries.append(DefendedCampaign("undefended", output, accuracy, CampaignRef.of(campaign)))
    for temperature in temperatures:
        folder = directory / f"T{temperature:g}"
        description = {
            "kind": "distillation",
            "temperature": temperature,
            "seed": seed,
            "epochs": epochs,
            "loss": DISTILLATION_LOSS,
        }
        student = _trained(
            folder / "student.safetensors",
            description,
            functools.partial(
                _distilled_student,
                dataset,
                recipe,
                temperature,
                folder,
                seed=seed,
                epochs=epochs,
                progress=progress,
            ),
        )
        student_accuracy = _accuracy(student.model, dataset)
        for output in outputs:
            campaign = same_campaign(
                baseline, student.model, dataset, folder / output, output=output,
                provenance=_provenance(student, folder / "student.safetensors"),
                progress=progress,
            )  # fmt: skip
            entries.append(
                DefendedCampaign(
                    f"distilled T={temperature:g}",
                    output,
                    student_accuracy,
                    CampaignRef.of(campaign),
                )
            )
    record = DefenseRecord(
        "distillation", tuple(entries), {"temperatures": [float(t) for t in temperatures]}
    )
    write_defense(directory, record)
    return record


def _distilled_student(
    dataset: Dataset,
    recipe: Recipe | str,
    temperature: float,
    folder: Path,
    *,
    seed: int,
    epochs: int | None,
    progress: bool,
) -> TrainingResult:
    distillation = distill(
        dataset, recipe, temperature, seed=seed, epochs=epochs, progress=progress
    )
    teacher = distillation.teacher
    save_checkpoint(folder / "teacher.safetensors", teacher.model, teacher.info)
    return distillation.student


def _provenance(loaded: LoadedModel, checkpoint: Path) -> ModelProvenance:
    """Where the model saved at `checkpoint` (and loaded or made here) came from."""
    return checkpoint_provenance(loaded, checkpoint=str(checkpoint.resolve()))
