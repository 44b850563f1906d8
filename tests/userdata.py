"""A user's own data and models, as the tests write them: a `.npz` of 3x16x16 images in
4 named classes, the same images as a folder of PNGs and as a Parquet table, binary
feature vectors, and a small CNN saved in each form jsma reads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch import nn

from jsma.models import ModelRef

CLASS_NAMES = ("cat", "dog", "frog", "ship")
SIDE = 16


def colour_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (count, 3, 16, 16) where class c lights quadrant c in channel c % 3,
    and their labels: easy to learn, every class present."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % len(CLASS_NAMES)).astype(np.int64)
    images = rng.integers(0, 60, size=(count, 3, SIDE, SIDE), dtype=np.uint8)
    half = SIDE // 2
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 2)
        images[index, label % 3, row * half : (row + 1) * half, col * half : (col + 1) * half] += (
            180
        )
    return images, labels


def write_npz(path: Path, *, train: int = 64, test: int = 16, names: bool = True) -> Path:
    x_train, y_train = colour_images(train, 1)
    x_test, y_test = colour_images(test, 2)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if names:
        arrays["class_names"] = np.array(CLASS_NAMES)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def write_image_folder(directory: Path, *, train: int = 64, test: int = 16) -> Path:
    for split, (images, labels) in (
        ("train", colour_images(train, 1)),
        ("test", colour_images(test, 2)),
    ):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = directory / split / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{index:04d}.png")
    return directory


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(path: Path, *, train: int = 64, test: int = 16) -> Path:
    """A table as dataset hubs store one: an `image` struct of PNG bytes and a path, a
    `label` column, a `split` column, the class names in the schema's metadata."""
    rows: dict[str, list[object]] = {"image": [], "label": [], "split": []}
    for split, (images, labels) in (
        ("train", colour_images(train, 1)),
        ("test", colour_images(test, 2)),
    ):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            rows["image"].append({"bytes": png_bytes(image), "path": f"{split}/{index}.png"})
            rows["label"].append(int(label))
            rows["split"].append(split)
    features = {"label": {"names": list(CLASS_NAMES), "_type": "ClassLabel"}}
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    table = pa.table(rows).replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


def binary_features(count: int, seed: int, features: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(count, features) 0/1 vectors in 2 classes: class 1 has its first 8 features set."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 2).astype(np.int64)
    vectors = rng.random((count, features)) < 0.2
    vectors[labels == 1, :8] = True
    return vectors, labels


class SmallCNN(nn.Module):
    """A tiny CNN for 3x16x16 inputs."""

    def __init__(self, classes: int = len(CLASS_NAMES), width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(width * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def build_small_cnn(classes: int = len(CLASS_NAMES), width: int = 8) -> nn.Module:
    """The builder a user names as `tests.userdata:build_small_cnn`."""
    return SmallCNN(classes, width)


def trained_small_cnn(images: torch.Tensor, labels: torch.Tensor, steps: int = 60) -> nn.Module:
    """The CNN trained a little on `images` (in [0, 1]): deterministic."""
    torch.manual_seed(0)
    model = SmallCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimiser.step()
    return model.eval()


def save_model_forms(model: nn.Module, directory: Path) -> dict[str, Path]:
    """The model as a `.pt2` program (dynamic batch), a TorchScript file and a state dict."""
    directory.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, SIDE, SIDE)
    program = torch.export.export(
        model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    forms = {
        "exported": directory / "model.pt2",
        "torchscript": directory / "model.torchscript",
        "weights": directory / "weights.pt",
    }
    torch.export.save(program, forms["exported"])
    torch.jit.script(model).save(str(forms["torchscript"]))
    torch.save(model.state_dict(), forms["weights"])
    return forms


def outside_source(
    text: str,
    *,
    weights: Path | None = None,
    arguments: dict[str, object] | None = None,
    mean: tuple[float, ...] = (),
    std: tuple[float, ...] = (),
) -> ModelRef:
    """The reference to a model from outside jsma (never a jsma checkpoint), its builder's
    arguments and weights written as `--model` takes them."""
    if arguments:
        text += "(" + ", ".join(f"{key}={value!r}" for key, value in arguments.items()) + ")"
    if weights is not None:
        text += f"@{weights}"
    source = ModelRef.parse(text, mean=mean, std=std)
    if not source.runs_code:
        raise TypeError(f"{text} is one of jsma's own models")
    return source


def load_model(source: ModelRef, device: str = "cpu") -> nn.Module:
    """The model `source` names (without its provenance)."""
    return source.load(device).model
