"""A conditional DCGAN: fresh digits of a chosen class, for adversarial training
(`jsma defend adv-train --from-gan`) and for looking at."""

from jsma.gan._checkpoint import LoadedGenerator, load_generator
from jsma.gan._networks import GanSpec
from jsma.gan._quality import gan_quality
from jsma.gan._runs import GanRunSummary, read_gan_run, run_gan
from jsma.gan._training import GanRecipe, generate, train_gan

__all__ = [
    "GanRecipe",
    "GanRunSummary",
    "GanSpec",
    "LoadedGenerator",
    "gan_quality",
    "generate",
    "load_generator",
    "read_gan_run",
    "run_gan",
    "train_gan",
]
