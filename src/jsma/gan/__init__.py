"""A conditional DCGAN: fresh digits of a chosen class, for adversarial training
(`jsma defend adv-train --from-gan`) and for looking at."""

from jsma.gan._checkpoint import (
    GENERATOR_FILE,
    GeneratorInfo,
    LoadedGenerator,
    load_generator,
    save_generator,
)
from jsma.gan._networks import Discriminator, GanSpec, Generator
from jsma.gan._quality import GanQuality, frechet_distance, gan_quality, penultimate_features
from jsma.gan._runs import GanRun, GanRunSummary, read_gan_run, run_gan, samples_figure
from jsma.gan._training import GanEpoch, GanRecipe, TrainedGan, generate, train_gan

__all__ = [
    "GENERATOR_FILE",
    "Discriminator",
    "GanEpoch",
    "GanQuality",
    "GanRecipe",
    "GanRun",
    "GanRunSummary",
    "GanSpec",
    "Generator",
    "GeneratorInfo",
    "LoadedGenerator",
    "TrainedGan",
    "frechet_distance",
    "gan_quality",
    "generate",
    "load_generator",
    "penultimate_features",
    "read_gan_run",
    "run_gan",
    "samples_figure",
    "save_generator",
    "train_gan",
]
