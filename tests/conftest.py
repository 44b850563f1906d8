"""Tiny deterministic data sets that the tests build themselves."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jsma.data import Dataset
from jsma.data._idx import write_idx
from jsma.data._sources import IdxDirectorySource

NUM_CLASSES = 4
SIDE = 16


def synthetic_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Noisy 16x16 images where class c lights up the c-th quadrant: easy to learn."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), SIDE, SIDE), dtype=np.uint8)
    half = SIDE // 2
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 2)
        images[index, row * half : (row + 1) * half, col * half : (col + 1) * half] += 180
    return images


def write_idx_directory(
    directory: Path, *, train: int = 120, test: int = 40, compress: bool = True
) -> Path:
    """The four standard IDX files with synthetic content."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for prefix, count, seed in (("train", train, 1), ("t10k", test, 2)):
        labels = (np.arange(count) % NUM_CLASSES).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", synthetic_images(labels, seed))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return write_idx_directory(tmp_path / "idx")


@pytest.fixture
def tiny_dataset(idx_dir: Path, tmp_path: Path) -> Dataset:
    return IdxDirectorySource(idx_dir, validation_size=40).load(tmp_path / "cache")


def increasing_and_decreasing(
    dataset: Dataset, directory: Path, *, samples: int, unit_size: int
) -> list[Path]:
    """The same small campaign with theta = +1 and -1 against a seeded untrained LeNet."""
    import torch

    from jsma.campaign import AttackSettings, Campaign, CampaignSpec
    from jsma.models import ModelSpec

    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES}).build()
    directories = []
    for name, theta in (("increasing", 1.0), ("decreasing", -1.0)):
        spec = CampaignSpec(
            samples=samples, unit_size=unit_size, attack=AttackSettings(theta=theta)
        )
        Campaign.run(directory / name, spec, model, dataset)
        directories.append(directory / name)
    return directories


def maximal_campaign(dataset: Dataset, directory: Path) -> Path:
    """A small untargeted M-JSMA campaign against a seeded untrained LeNet."""
    import torch

    from jsma.campaign import AttackSettings, Campaign, CampaignSpec
    from jsma.models import ModelSpec

    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES}).build()
    maximal = AttackSettings(variant="maximal", max_distortion=0.1)
    spec = CampaignSpec(samples=4, unit_size=4, targets="untargeted", attack=maximal)
    Campaign.run(directory, spec, model, dataset)
    return directory


@pytest.fixture(scope="session")
def user_data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A user's own data: 3x16x16 colour images in 4 named classes, from a `.npz`."""
    from jsma.data import load_data
    from tests.userdata import write_npz

    return load_data(write_npz(tmp_path_factory.mktemp("user-data") / "small.npz"))


@pytest.fixture(scope="session")
def forms(user_data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small CNN trained on `user_data`, saved as a `.pt2` program, TorchScript and
    a state dict (`tests.userdata.save_model_forms`)."""
    from tests.userdata import save_model_forms, trained_small_cnn

    model = trained_small_cnn(*user_data.train.tensors())
    return save_model_forms(model, tmp_path_factory.mktemp("user-models"))


def popen_as_from_a_terminal(command: list[str]) -> subprocess.Popen[str]:
    """`command` in a session of its own (Ctrl-C in a terminal signals the whole process
    group), with a terminal's SIGINT disposition: run from a background job (`cmd &`,
    nohup) the suite has SIGINT ignored, which a child inherits and Python keeps."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
