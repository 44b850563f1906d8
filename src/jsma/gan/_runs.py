"""`jsma gan train` as one library call: train (resumably), save, judge, draw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from jsma._io import ensure_writable
from jsma._records import read_record, write_record
from jsma.data._dataset import Dataset
from jsma.errors import JSMAError
from jsma.gan._checkpoint import GENERATOR_FILE, save_generator
from jsma.gan._networks import GanSpec, Generator
from jsma.gan._quality import GanQuality, check_quality_settings, gan_quality
from jsma.gan._training import GanEpoch, GanRecipe, TrainedGan, generate, train_gan
from jsma.plotting import save_figure, show_image

__all__ = ["GanRunSummary", "read_gan_run", "run_gan"]

STATE_FILE = "training.safetensors"
QUALITY_FILE = "quality.json"
SAMPLES_FIGURE = "samples.png"


def samples_figure(generator: Generator, *, per_class: int = 10, seed: int = 0) -> Figure:
    """A grid of generated digits: one row per class, `per_class` columns."""
    classes = generator.spec.num_classes
    asked = torch.arange(classes).repeat_interleave(per_class)
    images = generate(generator, asked, seed=seed)
    figure = Figure(figsize=(per_class * 0.6, classes * 0.6), layout="constrained")
    grid = figure.subplots(classes, per_class, squeeze=False)
    for position, axes in enumerate(grid.flat):
        show_image(axes, images[position], generator.spec.bounds)
        if position % per_class == 0:
            axes.set_ylabel(str(position // per_class), rotation=0, labelpad=8)
    figure.suptitle("generated digits, one class per row (conditional DCGAN)")
    return figure


@dataclass(frozen=True)
class GanRunSummary:
    """What `run_gan` stores in quality.json: the judged quality and how the GAN was made."""

    KIND: ClassVar[str] = "gan-run"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (the same fields, no header)

    judge: str
    quality: GanQuality
    recipe: GanRecipe
    spec: GanSpec
    epochs: int
    training_seconds: float
    median_epoch_seconds: float
    history: tuple[GanEpoch, ...]


@dataclass(frozen=True)
class GanRun:
    """What `run_gan` made: the trained GAN, its judged quality, and the files."""

    gan: TrainedGan
    quality: GanQuality
    checkpoint: Path
    figure: Path
    summary: Path


def run_gan(
    dataset: Dataset,
    judge: nn.Module,
    out: Path,
    recipe: GanRecipe | None = None,
    *,
    spec: GanSpec | None = None,
    judge_name: str = "classifier",
    samples: int = 10_000,
    progress: bool = False,
) -> GanRun:
    """Train a conditional DCGAN into `out` (continuing a stopped run there), then save
    the generator, judge `samples` generated digits with `judge`, and draw a grid.

    Files in `out`: `generator.safetensors` (for `--from-gan`), `training.safetensors`
    (the state a stopped run continues from), `quality.json`, `samples.png`.
    """
    check_quality_settings(dataset, samples)
    ensure_writable(out)
    gan = train_gan(dataset, recipe, spec=spec, state=out / STATE_FILE, progress=progress)
    checkpoint = out / GENERATOR_FILE
    save_generator(checkpoint, gan)
    quality = gan_quality(gan.generator, judge, dataset, samples=samples, seed=gan.recipe.seed)
    seconds = [epoch.seconds for epoch in gan.history]
    summary = GanRunSummary(
        judge=judge_name,
        quality=quality,
        recipe=gan.recipe,
        spec=gan.spec,
        epochs=len(gan.history),
        training_seconds=float(np.sum(seconds)),
        median_epoch_seconds=float(np.median(seconds)),
        history=tuple(gan.history),
    )
    write_record(out / QUALITY_FILE, summary)
    figure = save_figure(samples_figure(gan.generator, seed=gan.recipe.seed), out / SAMPLES_FIGURE)
    return GanRun(gan, quality, checkpoint, figure, out / QUALITY_FILE)


def read_gan_run(directory: Path) -> tuple[GanRunSummary, bytes]:
    """What `run_gan` stored in `directory`: its summary (quality.json) and the grid PNG."""
    advice = "run `jsma gan train --out DIR`"
    missing = f"no GAN run here ({advice})"
    summary = read_record(GanRunSummary, directory / QUALITY_FILE, missing=missing)
    try:
        figure = (directory / SAMPLES_FIGURE).read_bytes()
    except FileNotFoundError:
        raise JSMAError(
            f"{directory}: no GAN run here ({SAMPLES_FIGURE} missing; {advice})"
        ) from None
    return summary, figure
