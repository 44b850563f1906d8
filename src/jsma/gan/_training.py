"""Training the conditional DCGAN on the training split, seeded and resumable by epoch.

The usual non-saturating GAN game (Goodfellow et al. 2014) with DCGAN's Adam
settings (learning rate 2e-4, beta1 0.5). After each epoch the whole training
state (both networks, both optimizers, both random generators, the history)
goes to a safetensors file, written atomically; a run that was stopped
continues from its last finished epoch and ends with the weights an
uninterrupted run would have had.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn
from tqdm.auto import tqdm

from jsma._io import atomic_write
from jsma._records import dumps, encode, load, loads_json, record_differences
from jsma.data._dataset import Dataset
from jsma.errors import CheckpointError, ConfigurationError, ModelError
from jsma.gan._networks import Discriminator, GanSpec, Generator

__all__ = ["GanRecipe", "generate", "train_gan"]

logger = logging.getLogger(__name__)

_STATE_KEY = "jsma-gan-training"


@dataclass(frozen=True)
class GanRecipe:
    """How the GAN trains: epochs over the training split, batch size, Adam's settings."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-4
    beta1: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or not self.learning_rate > 0:
            raise ConfigurationError(
                f"epochs must be at least 1, batch size at least 2 (batch norm), learning rate "
                f"positive; got {self.epochs}, {self.batch_size}, {self.learning_rate}"
            )


@dataclass(frozen=True)
class GanEpoch:
    """One epoch's means: the two losses, the discriminator's probability that a real
    image is real and that a generated one is, and the epoch's seconds."""

    epoch: int
    generator_loss: float
    discriminator_loss: float
    real_score: float
    fake_score: float
    seconds: float


@dataclass(frozen=True)
class TrainedGan:
    """A trained generator (eval mode), how it was made, and its training history."""

    generator: Generator
    spec: GanSpec
    recipe: GanRecipe
    history: tuple[GanEpoch, ...]
    data: Mapping[str, Any]

    @property
    def seconds(self) -> float:
        return sum(epoch.seconds for epoch in self.history)


def _data_record(dataset: Dataset) -> dict[str, Any]:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(dataset.train.images).tobytes())
    digest.update(np.ascontiguousarray(dataset.train.labels).tobytes())
    return {
        "name": dataset.name,
        "source": dataset.source,
        "train": len(dataset.train),
        "fingerprint": digest.hexdigest(),
    }


def _optimizer(module: nn.Module, recipe: GanRecipe) -> torch.optim.Adam:
    return torch.optim.Adam(
        module.parameters(), lr=recipe.learning_rate, betas=(recipe.beta1, 0.999)
    )


def generate(
    generator: Generator, classes: torch.Tensor, *, seed: int = 0, batch_size: int = 1000
) -> torch.Tensor:
    """Images of the asked `classes` (N,), from seeded noise: (N, C, H, W).

    The same seed and classes give the same images; the generator runs in eval
    mode (batch norm's running statistics), and its own mode is restored after.
    """
    # All the noise at once: torch's draws in chunks differ from one draw of the whole.
    noise = torch.randn(
        len(classes), generator.spec.noise, generator=torch.Generator().manual_seed(seed)
    )
    device = next(generator.parameters()).device
    chunks = []
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            for z, part in zip(noise.split(batch_size), classes.split(batch_size), strict=True):
                chunks.append(generator(z.to(device), part.to(device)))
    finally:
        generator.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, *generator.spec.input_shape)


class _State:
    """Everything a training run needs to continue exactly where it stopped."""

    def __init__(self, spec: GanSpec, recipe: GanRecipe) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            self.generator, self.discriminator = Generator(spec), Discriminator(spec)
        self.generator_optimizer = _optimizer(self.generator, recipe)
        self.discriminator_optimizer = _optimizer(self.discriminator, recipe)
        self.shuffle = torch.Generator().manual_seed(recipe.seed)
        self.noise = torch.Generator().manual_seed(recipe.seed + 1)
        self.history: list[GanEpoch] = []

    def _parts(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "generator_optimizer": self.generator_optimizer,
            "discriminator_optimizer": self.discriminator_optimizer,
        }

    def save(self, path: Path, identity: Mapping[str, Any]) -> None:
        tensors: dict[str, torch.Tensor] = {
            "rng.shuffle": self.shuffle.get_state(),
            "rng.noise": self.noise.get_state(),
        }
        for part, module in self._parts().items():
            if isinstance(module, nn.Module):
                for name, tensor in module.state_dict().items():
                    tensors[f"{part}.{name}"] = tensor.detach().cpu().contiguous()
            else:
                for index, slots in module.state_dict()["state"].items():
                    for slot, tensor in slots.items():
                        tensors[f"{part}.{index}.{slot}"] = torch.as_tensor(tensor).contiguous()
        stored = _StoredState(**identity, history=tuple(self.history))
        metadata = {_STATE_KEY: dumps(stored).decode()}
        payload = safetensors.torch.save(tensors, metadata=metadata)
        with atomic_write(path) as handle:
            handle.write(payload)

    def load(self, path: Path, identity: Mapping[str, Any]) -> None:
        try:
            with safetensors.safe_open(str(path), framework="pt") as handle:
                stored = load(_StoredState, loads_json((handle.metadata() or {})[_STATE_KEY]))
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except (OSError, ValueError, KeyError, safetensors.SafetensorError) as error:
            raise CheckpointError(
                f"{path}: not a GAN training state ({type(error).__name__}: {error}); "
                "move it away to start afresh"
            ) from None
        differences = record_differences({k: getattr(stored, k) for k in identity}, identity)
        if differences:
            raise CheckpointError(
                f"{path}: a training run with other settings or data ({'; '.join(differences)}); "
                "use another output, or the same settings to continue it"
            )
        try:
            self._restore(tensors, stored.history)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{path}: not a GAN training state ({type(error).__name__}: {error}); "
                "move it away to start afresh"
            ) from None

    def _layout(self) -> dict[str, tuple[int, ...]]:
        """Every tensor a saved state holds, with its shape: what `save` writes for these
        networks after at least one step (each Adam slot shaped like its parameter)."""
        layout = {
            "rng.shuffle": tuple(self.shuffle.get_state().shape),
            "rng.noise": tuple(self.noise.get_state().shape),
        }
        for part, module in self._parts().items():
            if isinstance(module, nn.Module):
                layout |= {f"{part}.{k}": tuple(v.shape) for k, v in module.state_dict().items()}
        for part, network in (("generator", self.generator), ("discriminator", self.discriminator)):
            for index, parameter in enumerate(network.parameters()):
                for slot, shape in (("exp_avg", parameter.shape), ("exp_avg_sq", parameter.shape),
                                    ("step", ())):  # fmt: skip
                    layout[f"{part}_optimizer.{index}.{slot}"] = tuple(shape)
        return layout

    def _restore(self, tensors: dict[str, torch.Tensor], history: Sequence[GanEpoch]) -> None:
        """Load a stored state, after checking it is whole: every tensor of the layout,
        each of its shape (the history was checked when read)."""
        found = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
        expected = self._layout()
        if missing := sorted(expected.keys() - found.keys()):
            raise KeyError(f"missing tensors {missing[:3]}")
        if extra := sorted(found.keys() - expected.keys()):
            raise KeyError(f"unexpected tensors {extra[:3]}")
        if wrong := [name for name in sorted(expected) if expected[name] != found[name]]:
            raise ValueError(f"{wrong[0]} has shape {found[wrong[0]]}, not {expected[wrong[0]]}")
        self.shuffle.set_state(tensors.pop("rng.shuffle"))
        self.noise.set_state(tensors.pop("rng.noise"))
        for part, module in self._parts().items():
            prefix = f"{part}."
            mine = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            if isinstance(module, nn.Module):
                module.load_state_dict(mine)
            else:
                state: dict[int, dict[str, torch.Tensor]] = {}
                for key, tensor in mine.items():
                    index, _, slot = key.partition(".")
                    state.setdefault(int(index), {})[slot] = tensor
                groups = module.state_dict()["param_groups"]
                module.load_state_dict({"state": state, "param_groups": groups})
        self.history = list(history)


@dataclass(frozen=True)
class _StoredState:
    """The metadata of a training state: the run's identity and its history so far."""

    KIND: ClassVar[str] = "gan-training"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (the same fields, no header)

    spec: dict[str, Any]
    recipe: dict[str, Any]  # without the epochs: a run continues to more
    data: dict[str, Any]
    history: tuple[GanEpoch, ...]


def train_gan(
    dataset: Dataset,
    recipe: GanRecipe | None = None,
    *,
    spec: GanSpec | None = None,
    state: Path | None = None,
    progress: bool = False,
) -> TrainedGan:
    """Train a conditional DCGAN on `dataset`'s training split (only), seeded.

    `spec` defaults to the data's shape, classes and bounds at DCGAN's usual
    noise size and a narrow width. With `state`, the training state is saved
    there after each epoch and a run finds it and continues (same settings and
    data, or a `CheckpointError` says what differs); asking for more epochs
    than a finished run had trains the extra ones.

    Example:
        >>> gan = train_gan(load_mnist(), GanRecipe(epochs=5))  # doctest: +SKIP
        >>> digits = generate(gan.generator, torch.arange(10))  # doctest: +SKIP
    """
    recipe = recipe or GanRecipe()
    channels, height, width = dataset.input_shape
    spec = spec or GanSpec((channels, height, width), dataset.num_classes, dataset.bounds)
    if (spec.input_shape, spec.num_classes) != ((channels, height, width), dataset.num_classes):
        raise ConfigurationError(
            f"the GAN makes {spec.input_shape} images of {spec.num_classes} classes; the data "
            f"has {dataset.input_shape} and {dataset.num_classes}"
        )
    data = _data_record(dataset)
    identity = {
        "spec": encode(spec),
        "recipe": {k: v for k, v in encode(recipe).items() if k != "epochs"},
        "data": data,
    }
    current = _State(spec, recipe)
    if state is not None and state.exists():
        current.load(state, identity)
        if len(current.history) > recipe.epochs:
            raise CheckpointError(
                f"{state}: already trained {len(current.history)} epochs, more than the "
                f"{recipe.epochs} asked; ask for at least {len(current.history)}"
            )
        if current.history:
            logger.info("%s: continuing after epoch %d", state, len(current.history))
    images, labels = dataset.train.tensors()
    batches = -(-len(labels) // recipe.batch_size)
    first = len(current.history) + 1
    bar = tqdm(
        total=(recipe.epochs - first + 1) * batches, disable=not progress, unit="batch", leave=True
    )
    try:
        for epoch in range(first, recipe.epochs + 1):
            bar.set_description(f"GAN epoch {epoch}/{recipe.epochs}")
            record = _epoch(current, images, labels, recipe, spec, epoch, bar)
            if not np.isfinite([record.generator_loss, record.discriminator_loss]).all():
                raise ModelError(
                    f"GAN training diverged in epoch {epoch} (its losses are NaN or infinite); "
                    f"the state after epoch {epoch - 1} is kept: try a lower learning rate "
                    "or another seed"
                )
            current.history.append(record)
            logger.info(
                "GAN epoch %d: D loss %.3f, G loss %.3f, D(real) %.2f, D(fake) %.2f, %.0f s",
                epoch, record.discriminator_loss, record.generator_loss,
                record.real_score, record.fake_score, record.seconds,
            )  # fmt: skip
            if state is not None:
                current.save(state, identity)
    finally:
        bar.close()
    current.generator.eval()
    return TrainedGan(current.generator, spec, recipe, tuple(current.history), data)


def _epoch(
    current: _State,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: GanRecipe,
    spec: GanSpec,
    epoch: int,
    bar: Any,
) -> GanEpoch:
    started = time.perf_counter()
    generator, discriminator = current.generator.train(), current.discriminator.train()
    bce = nn.functional.binary_cross_entropy_with_logits
    totals = np.zeros(4)
    order = torch.randperm(len(labels), generator=current.shuffle)
    batches = [batch for batch in order.split(recipe.batch_size) if len(batch) > 1]
    for batch in batches:
        real, real_classes = images[batch], labels[batch]
        count = len(batch)
        z = torch.randn(count, spec.noise, generator=current.noise)
        fake_classes = torch.randint(0, spec.num_classes, (count,), generator=current.noise)
        fake = generator(z, fake_classes)

        # The discriminator learns real from generated ...
        real_logits = discriminator(real, real_classes)
        fake_logits = discriminator(fake.detach(), fake_classes)
        d_loss = bce(real_logits, torch.ones(count)) + bce(fake_logits, torch.zeros(count))
        current.discriminator_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        current.discriminator_optimizer.step()

        # ... and the generator to be taken for real (the non-saturating loss).
        g_loss = bce(discriminator(fake, fake_classes), torch.ones(count))
        current.generator_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        current.generator_optimizer.step()

        with torch.no_grad():
            totals += [
                g_loss.item(),
                d_loss.item(),
                torch.sigmoid(real_logits).mean().item(),
                torch.sigmoid(fake_logits).mean().item(),
            ]
        bar.update()
        bar.set_postfix(d=f"{d_loss.item():.3f}", g=f"{g_loss.item():.3f}", refresh=False)
    g_mean, d_mean, real_mean, fake_mean = (float(v) for v in totals / max(1, len(batches)))
    return GanEpoch(epoch, g_mean, d_mean, real_mean, fake_mean, time.perf_counter() - started)
