from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.data import Dataset
from jsma.models import LeNet, evaluate, save_checkpoint, train
from jsma.models._training import RECIPES, cached_model, cached_model_path, get_recipe, theano_init
from tests.conftest import NUM_CLASSES

FAST = dataclasses.replace(RECIPES["default"], batch_size=16, epochs=3)


def test_training_learns_and_records(tiny_dataset: Dataset) -> None:
    result = train(tiny_dataset, FAST, seed=0)
    assert [record.epoch for record in result.history] == [1, 2, 3]
    assert result.info.accuracies["test"] >= 0.9
    assert result.info.spec.arguments["num_classes"] == NUM_CLASSES
    assert result.info.spec.arguments["input_shape"] == (1, 16, 16)
    assert result.info.recipe["name"] == "default"
    assert not result.model.training


def test_training_is_deterministic(tiny_dataset: Dataset) -> None:
    first = train(tiny_dataset, FAST, seed=5, epochs=1)
    second = train(tiny_dataset, FAST, seed=5, epochs=1)
    other = train(tiny_dataset, FAST, seed=6, epochs=1)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(
        not torch.equal(a, c)
        for a, c in zip(first.model.parameters(), other.model.parameters(), strict=True)
    )


def test_training_leaves_global_rng_alone(tiny_dataset: Dataset) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(tiny_dataset, FAST, seed=0, epochs=1)
    torch.testing.assert_close(torch.rand(3), expected)


def test_paper_recipe_trains(tiny_dataset: Dataset) -> None:
    recipe = dataclasses.replace(get_recipe("paper"), batch_size=8, epochs=2)
    result = train(tiny_dataset, recipe, seed=0)
    assert result.info.recipe["activation"] == "tanh"
    assert np.isfinite(result.history[-1].loss)


def test_theano_init_zeroes_the_output_layer() -> None:
    model = LeNet()
    theano_init(model)
    output = model[-1]
    assert isinstance(output, torch.nn.Linear)
    assert not output.weight.any()
    assert not output.bias.any()
    first = model[0]
    assert isinstance(first, torch.nn.Conv2d)
    bound = (6 / (25 + 20 * 25 / 4)) ** 0.5
    assert float(first.weight.detach().abs().max()) <= bound


def test_unknown_recipe() -> None:
    with pytest.raises(ValueError, match="unknown recipe 'fancy'; choose one of"):
        get_recipe("fancy")


def test_cached_model_trains_once(
    tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RECIPES, "default", FAST)
    first = cached_model(tiny_dataset, tmp_path, "default")
    assert cached_model_path(tmp_path, "default").is_file()
    calls: list[object] = []
    monkeypatch.setattr("jsma.models._training.train", lambda *a, **k: calls.append(a))
    second = cached_model(tiny_dataset, tmp_path, "default")
    assert calls == []
    x, _ = tiny_dataset.test.tensors()
    torch.testing.assert_close(first.model(x), second.model(x), rtol=0, atol=0)
    assert second.info.accuracies == first.info.accuracies


def test_evaluate_matches_numpy(tiny_dataset: Dataset) -> None:
    torch.manual_seed(0)
    model = LeNet((1, 16, 16), NUM_CLASSES)
    evaluation = evaluate(model, tiny_dataset.test, NUM_CLASSES, batch_size=7)
    x, y = tiny_dataset.test.tensors()
    with torch.no_grad():
        predicted = model(x).argmax(1).numpy()
    reference = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for truth, guess in zip(y.numpy(), predicted, strict=True):
        reference[truth, guess] += 1
    np.testing.assert_array_equal(evaluation.confusion, reference)
    assert evaluation.accuracy == pytest.approx(np.trace(reference) / len(y))
    assert evaluation.count == len(y)


def test_cached_model_prefers_cache_then_a_fitting_packaged_checkpoint(
    tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RECIPES, "default", FAST)
    made = train(tiny_dataset, "default", seed=0)
    packaged = tmp_path / "packaged.safetensors"
    save_checkpoint(packaged, made.model, made.info)
    monkeypatch.setattr("jsma.models._training.packaged_model_path", lambda *a: packaged)
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise RuntimeError("train was called")

    monkeypatch.setattr("jsma.models._training.train", refuse)
    # No cached copy: the packaged checkpoint is used, nothing is trained or written.
    loaded = cached_model(tiny_dataset, tmp_path, "default")
    assert calls == []
    assert loaded.info.accuracies == made.info.accuracies
    assert not cached_model_path(tmp_path, "default").exists()
    # A recipe the packaged file was not made with does not use it.
    monkeypatch.setitem(RECIPES, "default", dataclasses.replace(FAST, learning_rate=0.5))
    with pytest.raises(RuntimeError, match="train was called"):
        cached_model(tiny_dataset, tmp_path, "default")
    assert len(calls) == 1


def test_cached_model_retrain_replaces_the_cached_copy(
    tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RECIPES, "default", FAST)
    first = cached_model(tiny_dataset, tmp_path, "default")
    path = cached_model_path(tmp_path, "default")
    before = path.stat().st_mtime_ns
    again = cached_model(tiny_dataset, tmp_path, "default", retrain=True)
    assert path.stat().st_mtime_ns != before
    # Training is deterministic: the same weights again.
    x, _ = tiny_dataset.test.tensors()
    torch.testing.assert_close(first.model(x), again.model(x), rtol=0, atol=0)
