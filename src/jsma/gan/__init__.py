"""A conditional DCGAN: fresh digits of a chosen class, for adversarial training
(`jsma defend adv-train --from-gan`) and for looking at."""

from jsma.gan.checkpoint import LoadedGenerator, load_generator, save_generator
from jsma.gan.networks import Discriminator, GanSpec, Generator
from jsma.gan.quality import GanQuality, frechet_distance, gan_quality, penultimate_features
from jsma.gan.runs import GanRun, GanRunSummary, read_gan_run, run_gan, samples_figure
from jsma.gan.training import GanEpoch, GanRecipe, TrainedGan, generate, train_gan

__all__ = [
    "Discriminator",
    "GanEpoch",
    "GanQuality",
    "GanRecipe",
    "GanRun",
    "GanRunSummary",
    "GanSpec",
    "Generator",
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
