"""Generator checkpoints: safetensors weights plus JSON metadata, like the classifiers'."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from jsma._io import atomic_write
from jsma._records import decode, encode, loads_json
from jsma.errors import CheckpointError
from jsma.gan._networks import GanSpec, Generator
from jsma.gan._training import TrainedGan

__all__ = ["GENERATOR_FILE", "LoadedGenerator", "load_generator", "save_generator"]

GAN_METADATA_KEY = "jsma-gan"
CLASSIFIER_METADATA_KEY = "jsma"  # what `jsma.models.save_checkpoint` writes
GENERATOR_FILE = "generator.safetensors"  # its name in a `jsma gan train --out DIR`


@dataclass(frozen=True)
class LoadedGenerator:
    """A generator rebuilt from its checkpoint (eval mode) and what the checkpoint says."""

    generator: Generator
    spec: GanSpec
    about: Mapping[str, Any]


def save_generator(path: Path, gan: TrainedGan) -> None:
    """Write the generator's weights, spec, recipe, history and data record atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in gan.generator.state_dict().items()}
    about = {
        "spec": encode(gan.spec),
        "recipe": encode(gan.recipe),
        "history": [asdict(epoch) for epoch in gan.history],
        "data": dict(gan.data),
        "torch_version": torch.__version__,
    }
    payload = safetensors.torch.save(tensors, metadata={GAN_METADATA_KEY: json.dumps(about)})
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
        about = loads_json(header[GAN_METADATA_KEY])
        spec = decode(GanSpec, about["spec"], "spec")
        generator = Generator(spec)
        generator.load_state_dict(tensors)
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{path}: damaged GAN checkpoint ({error})") from None
    return LoadedGenerator(generator.to(map_location).eval(), spec, about)
