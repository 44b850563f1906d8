"""Generator checkpoints: safetensors weights plus JSON metadata, like the classifiers'."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import safetensors
import safetensors.torch
import torch

from jsma._io import atomic_write
from jsma._records import dumps, encode, load, loads_json
from jsma.errors import CheckpointError
from jsma.gan._networks import GanSpec, Generator
from jsma.gan._training import GanEpoch, GanRecipe, TrainedGan

__all__ = ["LoadedGenerator", "load_generator"]

GAN_METADATA_KEY = "jsma-gan"
CLASSIFIER_METADATA_KEY = "jsma"  # what `jsma.models.save_checkpoint` writes
GENERATOR_FILE = "generator.safetensors"  # its name in a `jsma gan train --out DIR`


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator checkpoint says: how to rebuild it and how it was trained."""

    KIND: ClassVar[str] = "gan-generator"
    FORMAT: ClassVar[int] = 1  # 0: 0.1.0 and 0.2.0 (the same fields, no header)

    spec: GanSpec
    recipe: GanRecipe
    history: tuple[GanEpoch, ...]
    data: dict[str, Any]
    torch_version: str = "unknown"


@dataclass(frozen=True)
class LoadedGenerator:
    """A generator rebuilt from its checkpoint (eval mode) and what the checkpoint says."""

    generator: Generator
    spec: GanSpec
    info: GeneratorInfo

    @property
    def about(self) -> dict[str, Any]:
        """`info` as the JSON it was stored as (what 0.2.0 gave here)."""
        return dict(encode(self.info))


def save_generator(path: Path, gan: TrainedGan) -> None:
    """Write the generator's weights, spec, recipe, history and data record atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in gan.generator.state_dict().items()}
    info = GeneratorInfo(gan.spec, gan.recipe, gan.history, dict(gan.data), torch.__version__)
    payload = safetensors.torch.save(tensors, metadata={GAN_METADATA_KEY: dumps(info).decode()})
    with atomic_write(path) as handle:
        handle.write(payload)


def load_generator(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedGenerator:
    """The generator stored at `path` (a checkpoint, or a `jsma gan train` directory)."""
    if path.is_dir():
        path = path / GENERATOR_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no GAN generator here (make one with `jsma gan train`)")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (OSError, ValueError, safetensors.SafetensorError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({error})") from None
    if GAN_METADATA_KEY not in header:
        kind = "a classifier" if CLASSIFIER_METADATA_KEY in header else "not a jsma"
        raise CheckpointError(
            f"{path}: {kind} checkpoint, not a GAN generator (make one with `jsma gan train`)"
        )
    try:
        info = load(GeneratorInfo, loads_json(header[GAN_METADATA_KEY]))
        generator = Generator(info.spec)
        generator.load_state_dict(tensors)
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{path}: damaged GAN checkpoint ({error})") from None
    return LoadedGenerator(generator.to(map_location).eval(), info.spec, info)
