"""`jsma gan train` as one library call: train (resumably), save, judge, draw."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from jsma._io import atomic_write, ensure_writable
from jsma._records import loads_json
from jsma.data.dataset import Dataset
from jsma.errors import JSMAError
from jsma.gan.checkpoint import GENERATOR_FILE, save_generator
from jsma.gan.networks import GanSpec, Generator
from jsma.gan.quality import GanQuality, check_quality_settings, gan_quality
from jsma.gan.training import GanRecipe, TrainedGan, generate, train_gan
from jsma.plotting import save_figure, show_image

__all__ = ["GanRun", "read_gan_run", "run_gan", "samples_figure"]

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
    summary = {
        "judge": judge_name,
        "quality": quality.to_json(),
        "recipe": gan.recipe.to_json(),
        "spec": gan.spec.to_json(),
        "epochs": len(gan.history),
        "training_seconds": float(np.sum(seconds)),
        "median_epoch_seconds": float(np.median(seconds)),
        "history": [asdict(epoch) for epoch in gan.history],
    }
    with atomic_write(out / QUALITY_FILE) as handle:
        handle.write(json.dumps(summary, indent=2).encode())
    figure = save_figure(samples_figure(gan.generator, seed=gan.recipe.seed), out / SAMPLES_FIGURE)
    return GanRun(gan, quality, checkpoint, figure, out / QUALITY_FILE)


def read_gan_run(directory: Path) -> tuple[dict[str, Any], bytes]:
    """What `run_gan` stored in `directory`: its summary (quality.json) and the grid PNG."""
    try:
        summary = loads_json((directory / QUALITY_FILE).read_text(encoding="utf-8"))
        figure = (directory / SAMPLES_FIGURE).read_bytes()
        quality = summary["quality"]
        float(quality["as_asked"]), float(quality["fid_generated_test"]), int(summary["epochs"])
    except FileNotFoundError as error:
        raise JSMAError(
            f"{directory}: no GAN run here ({Path(error.filename).name} missing; "
            "run `jsma gan train --out DIR`)"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise JSMAError(f"{directory}/{QUALITY_FILE}: damaged GAN summary ({error})") from None
    return summary, figure
