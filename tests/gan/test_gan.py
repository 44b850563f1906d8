"""The conditional DCGAN: shapes, seeding, resuming, and quality measures against
independent references."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from jsma.data import Dataset
from jsma.errors import CheckpointError, ConfigurationError
from jsma.gan import GanRecipe, GanSpec, gan_quality, generate, load_generator, train_gan
from jsma.gan._checkpoint import save_generator
from jsma.gan._networks import Discriminator, Generator
from jsma.gan._quality import frechet_distance, penultimate_features
from jsma.models import ModelSpec, load_checkpoint, save_checkpoint, train
from jsma.models._checkpoint import CheckpointInfo
from tests.conftest import NUM_CLASSES, SIDE, write_idx_directory

SPEC = GanSpec((1, SIDE, SIDE), NUM_CLASSES, width=4, noise=8)
QUICK = GanRecipe(epochs=1, batch_size=16, seed=3)


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(first: nn.Module, second: nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_shapes_and_bounds() -> None:
    spec = dataclasses.replace(SPEC, bounds=(-1.0, 2.0))
    generator, discriminator = Generator(spec).eval(), Discriminator(spec).eval()
    classes = torch.tensor([0, 1, 3, 2, 1])
    images = generator(torch.randn(5, spec.noise), classes)
    assert images.shape == (5, 1, SIDE, SIDE)
    assert images.min() >= -1.0
    assert images.max() <= 2.0
    assert discriminator(images, classes).shape == (5,)
    with pytest.raises(ConfigurationError, match="multiple of 4"):
        GanSpec((1, 28, 26), 10)
    with pytest.raises(ConfigurationError, match="num_classes must be at least 2"):
        GanSpec((1, 28, 28), 1)


def test_generate_is_seeded_and_keeps_the_mode() -> None:
    generator = Generator(SPEC).train()
    classes = torch.arange(12) % NUM_CLASSES
    first = generate(generator, classes, seed=5)
    assert torch.equal(first, generate(generator, classes, seed=5))
    # Chunks see the same noise; only the last bit of the floats may move (batch size
    # picks the convolution's summation order).
    torch.testing.assert_close(first, generate(generator, classes, seed=5, batch_size=5))
    assert not torch.equal(first, generate(generator, classes, seed=6))
    assert generator.training  # restored


def test_training_is_seeded(tiny_dataset: Dataset) -> None:
    first = train_gan(tiny_dataset, QUICK, spec=SPEC)
    again = train_gan(tiny_dataset, QUICK, spec=SPEC)
    other = train_gan(tiny_dataset, dataclasses.replace(QUICK, seed=4), spec=SPEC)
    assert _same(first.generator, again.generator)
    assert not _same(first.generator, other.generator)
    assert not first.generator.training
    (epoch,) = first.history
    assert 0 <= epoch.real_score <= 1
    assert 0 <= epoch.fake_score <= 1
    assert first.data["train"] == len(tiny_dataset.train)


def test_a_stopped_run_continues_to_the_same_weights(tiny_dataset: Dataset, tmp_path: Path) -> None:
    two = dataclasses.replace(QUICK, epochs=2)
    straight = train_gan(tiny_dataset, two, spec=SPEC)
    state = tmp_path / "state.safetensors"
    first = train_gan(tiny_dataset, QUICK, spec=SPEC, state=state)
    assert len(first.history) == 1
    resumed = train_gan(tiny_dataset, two, spec=SPEC, state=state)
    assert _same(resumed.generator, straight.generator)
    strip = [dataclasses.replace(e, seconds=0) for e in resumed.history]
    assert strip == [dataclasses.replace(e, seconds=0) for e in straight.history]
    # A finished run is not trained again, and other settings are refused by name.
    assert _same(train_gan(tiny_dataset, two, spec=SPEC, state=state).generator, straight.generator)
    with pytest.raises(CheckpointError, match=r"recipe\.batch_size: stored 16, asked 8\)"):
        train_gan(tiny_dataset, dataclasses.replace(two, batch_size=8), spec=SPEC, state=state)
    with pytest.raises(CheckpointError, match="already trained 2 epochs"):
        train_gan(tiny_dataset, QUICK, spec=SPEC, state=state)
    state.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a GAN training state"):
        train_gan(tiny_dataset, QUICK, spec=SPEC, state=state)


def test_checkpoint_round_trip_and_wrong_files(tiny_dataset: Dataset, tmp_path: Path) -> None:
    gan = train_gan(tiny_dataset, QUICK, spec=SPEC)
    path = tmp_path / "gan" / "generator.safetensors"
    path.parent.mkdir()
    save_generator(path, gan)
    loaded = load_generator(path.parent)  # the directory of `jsma gan train` serves
    assert _same(loaded.generator, gan.generator)
    assert loaded.spec == SPEC
    assert loaded.about["recipe"]["seed"] == 3
    classes = torch.arange(8) % NUM_CLASSES
    assert torch.equal(generate(loaded.generator, classes), generate(gan.generator, classes))

    classifier = tmp_path / "classifier.safetensors"
    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    save_checkpoint(classifier, spec.build(), CheckpointInfo(spec=spec))
    with pytest.raises(CheckpointError, match="a classifier checkpoint, not a GAN generator"):
        load_generator(classifier)
    with pytest.raises(CheckpointError, match="a GAN generator checkpoint, not a classifier"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no GAN generator here"):
        load_generator(tmp_path / "nothing")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_generator(tmp_path / "cut.safetensors")


def test_frechet_distance_matches_independent_references() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.normal(0, 1, (400, 1)), rng.normal(0.5, 2, (300, 1))
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2.
    s1, s2 = first.std(ddof=1), second.std(ddof=1)
    expected = (first.mean() - second.mean()) ** 2 + (s1 - s2) ** 2
    assert frechet_distance(first, second) == pytest.approx(expected, rel=1e-9)
    # Several: Tr(sqrt(S1 S2)) is the sum of the square roots of S1 S2's eigenvalues.
    first = rng.normal(0, 1, (500, 5)) @ rng.normal(0, 1, (5, 5))
    second = rng.normal(1, 1, (500, 5))
    c1, c2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    root_trace = np.sqrt(np.linalg.eigvals(c1 @ c2).real.clip(0)).sum()
    gap = first.mean(0) - second.mean(0)
    expected = gap @ gap + np.trace(c1) + np.trace(c2) - 2 * root_trace
    assert frechet_distance(first, second) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(first, first) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ConfigurationError, match="feature sets must be"):
        frechet_distance(first, second[:, :3])


def test_penultimate_features_are_the_last_linear_layers_input() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 6), nn.ReLU(), nn.Linear(6, 3))
    images = torch.rand(7, 1, SIDE, SIDE)
    expected = torch.relu(model[1](images.flatten(1))).double().detach().numpy()
    assert np.allclose(penultimate_features(model, images, batch_size=3), expected)
    with pytest.raises(TypeError, match=r"final nn\.Linear"):
        penultimate_features(nn.Flatten(), images)


class _Always(nn.Module):
    """A judge that says class 0, with probability `p`, whatever it sees."""

    def __init__(self, p: float) -> None:
        super().__init__()
        rest = (1 - p) / (NUM_CLASSES - 1)
        self.logits = nn.Parameter(torch.log(torch.tensor([p] + [rest] * (NUM_CLASSES - 1))))
        self.last = nn.Linear(SIDE * SIDE, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(x.flatten(1)).sum(1, keepdim=True) * 0 + self.logits


def test_quality_counts_what_the_judge_says(tiny_dataset: Dataset) -> None:
    generator = Generator(SPEC)
    quality = gan_quality(generator, _Always(0.95), tiny_dataset, samples=40)
    assert quality.samples == 40
    assert quality.as_asked == pytest.approx(1 / NUM_CLASSES)  # classes are balanced
    assert quality.as_asked_by_class == pytest.approx((1, 0, 0, 0))
    assert quality.confident == 1
    assert quality.confident_as_asked == pytest.approx(1 / NUM_CLASSES)
    assert gan_quality(generator, _Always(0.8), tiny_dataset, samples=40).confident == 0
    assert quality.fid_train_test >= 0
    with pytest.raises(ConfigurationError, match="samples must be at least"):
        gan_quality(generator, _Always(0.9), tiny_dataset, samples=2)


@pytest.mark.slow
def test_a_trained_gan_makes_the_asked_classes(tiny_dataset: Dataset) -> None:
    # The synthetic classes light up one quadrant each: after a few hundred steps
    # the generator's digits are of the asked class, as a trained judge sees them.
    judge = train(tiny_dataset, "default", epochs=15).model
    recipe = GanRecipe(epochs=40, batch_size=16, learning_rate=1e-3)
    gan = train_gan(tiny_dataset, recipe, spec=dataclasses.replace(SPEC, width=8))
    untrained = gan_quality(Generator(gan.spec), judge, tiny_dataset, samples=40)
    trained = gan_quality(gan.generator, judge, tiny_dataset, samples=40)
    assert trained.as_asked >= 0.9
    assert trained.fid_generated_test < untrained.fid_generated_test


def _gan_command(tmp_path: Path, out: Path) -> list[str]:
    """`jsma gan train` on synthetic data (32 images to train on), judged by an untrained
    LeNet: a tiny, quick run."""
    data = write_idx_directory(tmp_path / "idx", train=10_010 + 32)
    judge = tmp_path / "judge.safetensors"
    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    save_checkpoint(judge, spec.build(), CheckpointInfo(spec=spec))
    return [
        "gan", "train", "--out", str(out), "--data", f"idx:{data}",
        "--cache-dir", str(tmp_path / "cache"), "--model", str(judge), "--width", "4",
        "--batch-size", "16", "--samples", "20",
    ]  # fmt: skip


@pytest.mark.slow
def test_cli_trains_continues_and_judges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jsma.cli import main

    out = tmp_path / "gan"
    common = _gan_command(tmp_path, out)
    assert main([*common, "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "trained:     1 epochs" in printed
    assert "labelled as asked" in printed
    assert {p.name for p in out.iterdir()} == {
        "generator.safetensors", "training.safetensors", "quality.json", "samples.png",
    }  # fmt: skip
    assert main([*common, "--epochs", "2"]) == 0  # continues after epoch 1
    summary = json.loads((out / "quality.json").read_text())
    assert summary["epochs"] == 2
    assert summary["quality"]["samples"] == 20
    assert load_generator(out).about["recipe"]["epochs"] == 2
    assert main([*common, "--epochs", "1"]) == 2
    assert "already trained 2 epochs" in capsys.readouterr().err
    # Checked before training: a bad setting costs a second, not an epoch.
    assert main([*common, "--out", str(tmp_path / "other"), "--samples", "2"]) == 2
    assert "samples must be at least 4, got 2" in capsys.readouterr().err
    assert not (tmp_path / "other" / "training.safetensors").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_weights_of_an_unbroken_one(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import safetensors.torch

    data = write_idx_directory(tmp_path / "idx", train=10_010 + 256)  # 256 to train on
    judge = tmp_path / "judge.safetensors"
    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    save_checkpoint(judge, spec.build(), CheckpointInfo(spec=spec))

    def command(out: Path) -> list[str]:
        return [
            sys.executable, "-m", "jsma.cli", "-q", "--threads", "1", "gan", "train",
            "--out", str(out), "--epochs", "60", "--width", "4", "--batch-size", "16",
            "--samples", "20", "--data", f"idx:{data}",
            "--cache-dir", str(tmp_path / "cache"), "--model", str(judge),
        ]  # fmt: skip

    subprocess.run(command(tmp_path / "unbroken"), check=True, capture_output=True)
    broken = tmp_path / "broken"
    process = subprocess.Popen(command(broken), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (broken / "training.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)  # an epoch or so in, mid-epoch most likely
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
    assert not (broken / "generator.safetensors").exists()
    subprocess.run(command(broken), check=True, capture_output=True)
    ours = safetensors.torch.load_file(broken / "generator.safetensors")
    theirs = safetensors.torch.load_file(tmp_path / "unbroken" / "generator.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    assert json.loads((broken / "quality.json").read_text())["epochs"] == 60


def test_non_finite_images_or_features_are_an_error_not_a_hang(tiny_dataset: Dataset) -> None:
    import time

    from jsma.errors import ModelError

    spec = GanSpec(input_shape=(1, SIDE, SIDE), num_classes=NUM_CLASSES, width=4)
    generator = Generator(spec)
    with torch.no_grad():
        next(generator.parameters()).fill_(float("nan"))
    judge = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    started = time.monotonic()
    with pytest.raises(ModelError, match="NaN or infinite values"):
        gan_quality(generator, judge.build(), tiny_dataset, samples=8)
    assert time.monotonic() - started < 30
    features = np.ones((10, 3))
    features[2, 1] = np.nan
    with pytest.raises(ModelError, match="no Frechet distance"):
        frechet_distance(features, np.ones((10, 3)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("history", r"history\[0\]: expected an object, got 'not'"),
        ("shape", "has shape"),
        ("missing", "missing tensors"),
    ],
)
def test_a_tampered_training_state_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: str, why: str
) -> None:
    import safetensors.torch

    from jsma.cli import main

    out = tmp_path / "gan"
    common = _gan_command(tmp_path, out)
    assert main([*common, "--epochs", "1"]) == 0
    capsys.readouterr()
    state = out / "training.safetensors"
    tensors = safetensors.torch.load_file(state)
    with safetensors.safe_open(str(state), framework="pt") as handle:
        metadata = dict(handle.metadata())
    key = next(iter(metadata))
    if tamper == "history":
        stored = json.loads(metadata[key])
        stored["history"] = ["not", "epochs"]
        metadata[key] = json.dumps(stored)
    elif tamper == "shape":
        name = next(n for n in tensors if n.startswith("generator.") and tensors[n].ndim == 4)
        tensors[name] = tensors[name][:, :1].contiguous()
    else:
        del tensors[next(n for n in tensors if n.startswith("discriminator_optimizer."))]
    safetensors.torch.save_file(tensors, state, metadata=metadata)
    assert main([*common, "--epochs", "2"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("jsma: error: ")
    assert "not a GAN training state" in error
    assert re.search(why, error)
