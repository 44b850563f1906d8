from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import jsma.defenses._runs as runs
from jsma.attacks import JSMA, AttackResult
from jsma.campaign import Campaign, CampaignSpec
from jsma.data import Dataset
from jsma.defenses import (
    adversarial_training,
    distill,
    read_defense,
    run_adversarial_training,
    run_distillation,
)
from jsma.defenses._training import (
    OnTheFlyAdversarialObjective,
    SoftLabelObjective,
    TemperatureObjective,
    campaign_training_samples,
    soft_labels,
)
from jsma.errors import JSMAError, TrainingError
from jsma.metrics import CampaignArrays
from jsma.models import load_checkpoint, save_checkpoint, train
from jsma.models._training import RECIPES, Objective
from tests.conftest import NUM_CLASSES

FAST = dataclasses.replace(RECIPES["default"], batch_size=16, epochs=2)


@pytest.fixture(scope="module")
def undefended(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from jsma.data._sources import IdxDirectorySource
    from tests.conftest import write_idx_directory

    root = tmp_path_factory.mktemp("defenses")
    dataset = IdxDirectorySource(write_idx_directory(root / "idx"), validation_size=40).load(
        root / "cache"
    )
    model = train(dataset, FAST, seed=0).model
    baseline = root / "baseline"
    Campaign.run(baseline, CampaignSpec(samples=6, unit_size=3), model, dataset)
    return dataset, model, baseline


def test_soft_label_objective_is_cross_entropy_on_one_hot_labels(tiny_dataset: Dataset) -> None:
    images, labels = tiny_dataset.train.tensors(torch.arange(8).numpy())
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, NUM_CLASSES))
    one_hot = torch.nn.functional.one_hot(labels, NUM_CLASSES).float()
    objective = SoftLabelObjective(one_hot, temperature=1.0)
    expected = torch.nn.functional.cross_entropy(model(images), labels)
    torch.testing.assert_close(objective(model, images, labels, torch.arange(8)), expected)
    soft = soft_labels(model, images, temperature=5.0, batch_size=3)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(8))
    torch.testing.assert_close(soft, (model(images) / 5).softmax(dim=1).detach())


def test_temperature_objectives_give_the_logits_the_gradient_of_t_1() -> None:
    # d/dz of T * cross_entropy(z / T, y) is softmax(z / T) - y, per sample: the
    # size it has at T = 1, so plain SGD trains at T = 100 as well.
    logits = torch.randn(6, NUM_CLASSES, generator=torch.Generator().manual_seed(0)) * 30
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    soft = torch.softmax(torch.randn(6, NUM_CLASSES), dim=1)
    temperature = 100.0
    objectives: list[tuple[Objective, torch.Tensor]] = [
        (TemperatureObjective(temperature), torch.nn.functional.one_hot(labels).float()),
        (SoftLabelObjective(soft, temperature), soft),
    ]
    for objective, wanted in objectives:
        z = logits.clone().requires_grad_()
        objective(torch.nn.Identity(), z, labels, torch.arange(6)).backward()
        expected = (torch.softmax(logits / temperature, dim=1) - wanted) / 6
        torch.testing.assert_close(z.grad, expected)


def test_distillation_at_t_100_trains_with_plain_sgd(undefended) -> None:  # type: ignore[no-untyped-def]
    # The paper recipe's kind (tanh, plain SGD, output layer starting at zero):
    # without the factor T its student stayed at chance at T = 100.
    dataset, _, _ = undefended
    sgd = dataclasses.replace(RECIPES["paper"], batch_size=16, learning_rate=0.1)
    result = distill(dataset, sgd, temperature=100.0, seed=0, epochs=8)
    assert result.teacher.info.accuracies["validation"] >= 0.8
    assert result.student.info.accuracies["validation"] >= 0.8


def test_a_distillation_that_learned_nothing_is_refused(undefended) -> None:  # type: ignore[no-untyped-def]
    dataset, _, _ = undefended
    stalled = dataclasses.replace(RECIPES["paper"], batch_size=16, learning_rate=1e-12)
    with pytest.raises(TrainingError, match=r"reached .* validation accuracy, about chance"):
        distill(dataset, stalled, temperature=10.0, seed=0, epochs=1)


def test_distillation_scales_the_deployed_logits(undefended) -> None:  # type: ignore[no-untyped-def]
    dataset, _, _ = undefended
    images, _ = dataset.test.tensors()
    model = train(dataset, FAST, seed=0, epochs=10).model
    result = distill(dataset, FAST, temperature=20.0, seed=0, epochs=10)
    defense = dict(result.student.info.defense)
    assert defense.pop("training_seconds") >= 0  # the cost, recorded beside the settings
    assert defense == {
        "kind": "distillation", "temperature": 20.0, "seed": 0, "epochs": 10,
        "loss": "T * cross-entropy",
    }  # fmt: skip
    assert result.teacher.info.defense["kind"] == "distillation-teacher"
    with torch.no_grad():
        plain = model(images).std(dim=1).mean()
        student = result.student.model(images).std(dim=1).mean()
    # Trained to match soft labels at T = 20, its logits at T = 1 are far larger.
    assert student > 3 * plain
    assert result.student.info.accuracies["test"] >= 0.9


def test_adversarial_training_on_the_fly(undefended) -> None:  # type: ignore[no-untyped-def]
    dataset, model, _ = undefended
    attack = JSMA(theta=1.0, max_distortion=0.1)
    objective = OnTheFlyAdversarialObjective(attack, NUM_CLASSES, fraction=0.5, seed=0)
    images, labels = dataset.train.tensors(torch.arange(16).numpy())
    loss = objective(model, images, labels, torch.arange(16))
    assert loss.requires_grad
    assert objective.crafted == 8
    assert model.training is False  # crafting restored the mode it found
    result = adversarial_training(dataset, FAST, fraction=0.5, seed=0, epochs=1, initial=model)
    assert result.info.defense["source"] == "on-the-fly"
    assert result.info.defense["fine_tuned"] is True
    assert result.info.accuracies["test"] >= 0.9


def test_campaign_samples_come_from_the_training_split(  # type: ignore[no-untyped-def]
    undefended, tmp_path: Path
) -> None:
    dataset, model, baseline = undefended
    with pytest.raises(JSMAError, match="training split only"):
        campaign_training_samples(baseline, dataset)
    pool = tmp_path / "pool"
    Campaign.run(pool, CampaignSpec(splits=("train",), samples=4, unit_size=4), model, dataset)
    images, labels = campaign_training_samples(pool, dataset)
    arrays = CampaignArrays.from_table(Campaign.open(pool).results())
    assert labels.tolist() == arrays.source[arrays.success].tolist()
    originals, _ = dataset.train.tensors(arrays.index[arrays.success])
    changed = (images != originals).flatten(1).sum(dim=1)
    assert changed.tolist() == arrays.features_changed[arrays.success].tolist()
    result = adversarial_training(dataset, FAST, campaign=pool, seed=0, epochs=1)
    assert result.info.defense["pool"] == len(labels)


def test_run_adversarial_training_compares_and_resumes(  # type: ignore[no-untyped-def]
    undefended, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, model, baseline = undefended
    out = tmp_path / "adv"
    record = run_adversarial_training(
        baseline, model, dataset, out, recipe=FAST, fraction=0.5, epochs=1
    )
    assert [entry.model for entry in record.entries] == ["undefended", "adversarially trained"]
    attacked = Path(record.entries[1].campaign.location)
    assert attacked == (out / "campaign").resolve()  # absolute: read from anywhere
    assert (
        json.loads((attacked / "campaign.json").read_text())["spec"]
        == json.loads((baseline / "campaign.json").read_text())["spec"]
    )  # the same campaign, against the defended model
    assert read_defense(out) == record
    assert load_checkpoint(out / "model.safetensors").info.defense["kind"] == (
        "adversarial-training"
    )
    # Rerunning reuses the trained model instead of training again.
    monkeypatch.setattr(runs, "adversarial_training", lambda *a, **k: pytest.fail("retrained"))
    assert (
        run_adversarial_training(baseline, model, dataset, out, recipe=FAST, fraction=0.5, epochs=1)
        == record
    )
    with pytest.raises(JSMAError, match="other settings"):
        run_adversarial_training(baseline, model, dataset, out, recipe=FAST, fraction=0.3)
    other = train(dataset, FAST, seed=1, epochs=1).model
    with pytest.raises(JSMAError, match="attacked another model"):
        run_adversarial_training(baseline, other, dataset, tmp_path / "x", recipe=FAST)


def test_run_distillation(undefended, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, model, baseline = undefended
    record = run_distillation(
        baseline, model, dataset, tmp_path / "distill", recipe=FAST, temperatures=(10.0,), epochs=5
    )
    names = [(entry.model, entry.output) for entry in record.entries]
    assert names == [
        ("undefended", "logits"), ("undefended", "probabilities"),
        ("distilled T=10", "logits"), ("distilled T=10", "probabilities"),
    ]  # fmt: skip
    assert record.entries[0].campaign.open().folder.name == baseline.name
    for entry in record.entries[1:]:
        manifest = json.loads((Path(entry.campaign.location) / "campaign.json").read_text())
        assert manifest["spec"]["attack"]["output"] == entry.output
        assert manifest["spec"]["samples"] == 6
    with pytest.raises(ValueError, match="temperatures"):
        run_distillation(baseline, model, dataset, tmp_path / "d", recipe=FAST, temperatures=(0,))


def test_a_student_of_the_unscaled_loss_is_not_reused(  # type: ignore[no-untyped-def]
    undefended, tmp_path: Path
) -> None:
    """A student distilled before the losses were scaled by T (its checkpoint has no
    "loss") is refused by name, not attacked as the defense; today's is reused."""
    dataset, model, baseline = undefended
    directory = tmp_path / "distill"
    settings: dict[str, Any] = {"recipe": FAST, "temperatures": (10.0,), "epochs": 5}
    run_distillation(baseline, model, dataset, directory, **settings)
    path = directory / "T10" / "student.safetensors"
    written = path.read_bytes()
    run_distillation(baseline, model, dataset, directory, **settings)
    assert path.read_bytes() == written  # reused, not trained again
    student = load_checkpoint(path)
    defense = {k: v for k, v in student.info.defense.items() if k != "loss"}
    save_checkpoint(path, student.model, dataclasses.replace(student.info, defense=defense))
    with pytest.raises(JSMAError, match="distilled by an earlier jsma"):
        run_distillation(baseline, model, dataset, directory, **settings)


class _Spy(JSMA):
    """The attack, noting the inputs it is given."""

    seen: list[torch.Tensor] = []  # noqa: RUF012 - a test's notebook

    def __call__(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        targets: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> AttackResult:
        _Spy.seen.append(x.clone())
        return super().__call__(model, x, targets, **kwargs)


def _gan(dataset: Dataset):  # type: ignore[no-untyped-def]
    from jsma.gan import GanRecipe, GanSpec, train_gan

    spec = GanSpec(tuple(dataset.input_shape), NUM_CLASSES, dataset.bounds, width=4)  # type: ignore[arg-type]
    return train_gan(dataset, GanRecipe(epochs=1, batch_size=16), spec=spec)


def test_gan_digits_are_crafted_from(undefended) -> None:  # type: ignore[no-untyped-def]
    from jsma.defenses._training import GeneratedAdversarialObjective

    dataset, model, _ = undefended
    gan = _gan(dataset)
    _Spy.seen.clear()
    objective = GeneratedAdversarialObjective(
        gan.generator, _Spy(theta=1.0, max_distortion=0.1), fraction=0.5, seed=7
    )
    images, labels = dataset.train.tensors(torch.arange(16).numpy())
    loss = objective(model, images, labels, torch.arange(16))
    assert loss.requires_grad
    assert objective.crafted == 8
    (crafted_from,) = _Spy.seen
    # The generator's digits, drawn as the objective draws them, and no real image.
    expected, asked = GeneratedAdversarialObjective(
        gan.generator, JSMA(), fraction=0.5, seed=7
    ).digits(8)
    torch.testing.assert_close(crafted_from, expected)
    real = dataset.train.tensors()[0].flatten(1)
    assert torch.cdist(crafted_from.flatten(1), real).min() > 0.1
    assert set(asked.tolist()) <= set(range(NUM_CLASSES))


def test_adversarial_training_on_gan_digits(  # type: ignore[no-untyped-def]
    undefended, tmp_path: Path
) -> None:
    from jsma.errors import CheckpointError, ConfigurationError
    from jsma.gan import GanSpec
    from jsma.gan._checkpoint import save_generator
    from jsma.gan._networks import Generator
    from jsma.models import model_fingerprint

    dataset, model, baseline = undefended
    gan = _gan(dataset)
    result = adversarial_training(dataset, FAST, generator=gan.generator, seed=0, epochs=1)
    assert result.info.defense["source"] == "gan"
    assert result.info.defense["gan"] == model_fingerprint(gan.generator)
    assert result.info.defense["training_seconds"] > 0
    other = Generator(GanSpec((1, 8, 8), NUM_CLASSES))
    with pytest.raises(ConfigurationError, match=r"the GAN makes \(1, 8, 8\) images"):
        adversarial_training(dataset, FAST, generator=other, seed=0, epochs=1)

    stored = tmp_path / "gan"
    stored.mkdir()
    save_generator(stored / "generator.safetensors", gan)
    out = tmp_path / "defended"
    record = run_adversarial_training(
        baseline, model, dataset, out, recipe=FAST, gan=stored, epochs=1, seed=0
    )
    names = [entry.model for entry in record.entries]
    assert names == ["undefended", "adversarially trained on GAN digits"]
    assert record.details["source"] == "gan"
    assert (out / runs.GAN_FIGURE).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(CheckpointError, match="a classifier checkpoint, not a GAN generator"):
        run_adversarial_training(
            baseline, model, dataset, tmp_path / "x", recipe=FAST,
            gan=out / "model.safetensors", epochs=1,
        )  # fmt: skip
