"""Tests on the real MNIST data (the `mnist` extra): marked, and not skipped silently."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from jsma._records import encode
from jsma.data import Dataset, load_mnist
from jsma.data._sources import EmbeddedSource
from jsma.models import evaluate, load_checkpoint, save_checkpoint, train
from jsma.models._training import cached_model, cached_model_path, get_recipe, packaged_model_path

pytestmark = pytest.mark.mnist


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_mnist(EmbeddedSource(), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.mark.slow
def test_embedded_split_is_the_papers(mnist: Dataset) -> None:
    assert [len(s) for s in mnist.splits()] == [50_000, 10_000, 10_000]
    assert mnist.input_shape == (1, 28, 28)
    assert mnist.num_classes == 10
    np.testing.assert_array_equal(
        mnist.test.class_counts(10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    x, _ = mnist.train.tensors(slice(0, 100))
    assert float(x.max()) <= 255 / 256


@pytest.mark.slow
def test_one_epoch_reaches_97_percent_and_round_trips(mnist: Dataset, tmp_path: Path) -> None:
    result = train(mnist, "default", seed=0, epochs=1)
    assert result.info.accuracies["test"] >= 0.97
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, result.model, result.info)
    loaded = load_checkpoint(path)
    again = evaluate(loaded.model, mnist.test, mnist.num_classes)
    assert again.accuracy == result.info.accuracies["test"]
    # The model cache reads an existing checkpoint instead of training again.
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    path.rename(cache / "models" / "lenet-default-seed0.safetensors")
    cached = cached_model(mnist, cache, "default")
    assert cached.info.accuracies == result.info.accuracies


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["paper", "default"])
def test_packaged_models_are_what_their_metadata_says(
    mnist: Dataset, tmp_path: Path, recipe: str
) -> None:
    """The checkpoints shipped for every command's default model (`paper` for replicate,
    `default` for the others): their recorded accuracies are their own, and
    `cached_model` serves each (without training) to a fresh cache."""
    path = packaged_model_path(recipe)
    assert path is not None
    loaded = load_checkpoint(path)
    assert loaded.info.recipe == encode(get_recipe(recipe))
    assert loaded.info.seed == 0
    for split in (mnist.validation, mnist.test):
        measured = evaluate(loaded.model, split, mnist.num_classes).accuracy
        assert measured == loaded.info.accuracies[split.name]
    served = cached_model(mnist, tmp_path, recipe)
    assert served.info.accuracies == loaded.info.accuracies
    assert not cached_model_path(tmp_path, recipe).exists()


@pytest.mark.slow
@pytest.mark.mnist
def test_the_documented_attack_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jsma.cli import main

    out = tmp_path / "attack.png"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["attack", *cache, "--index", "7", "--target", "3", "--out", str(out)]) == 0
    assert "source 9 -> target 3:" in capsys.readouterr().out
    assert out.is_file()
    assert not (tmp_path / "cache" / "models").exists()  # the packaged model, not a new one


def _comparable(lines: list[str]) -> list[str]:
    """Output lines without what changes from run to run (timings, where files went)."""
    kept = []
    for line in lines:
        if line.startswith(("report:", "results:")):
            continue
        line = re.sub(r"[\d.]+ ms per attack", "X ms per attack", line)
        kept.append(re.sub(r"^time: \d+ s", "time: X s", line))
    return kept


@pytest.mark.mnist
@pytest.mark.slow
def test_the_readme_shows_what_replicate_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jsma.cli import main

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"took \*\*.*?```text\n(.*?)```", readme, re.S)
    assert shown is not None
    assert main(["replicate", "--cache-dir", str(tmp_path), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert _comparable(printed.strip().splitlines()) == _comparable(
        shown.group(1).strip().splitlines()
    )
