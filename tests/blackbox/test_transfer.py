"""Craft on the substitute, measure on the oracle: FGSM and JSMA, held-out samples only,
every query through the run's log (a rerun asks nothing)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.blackbox import ModelOracle, TransferAttack, attack_through_substitute, train_substitute
from jsma.blackbox._transfer import fgsm
from jsma.cli import main
from jsma.data import Dataset
from jsma.errors import OracleError
from jsma.models import CheckpointInfo, ModelSpec, save_checkpoint
from tests.blackbox.test_substitute import FAST, tiny_oracle
from tests.userdata import write_npz


def test_fgsm_steps_by_the_sign_of_the_loss_gradient_within_bounds() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3))
    x = torch.rand(4, 1, 2, 3)
    labels = torch.tensor([0, 1, 2, 0])
    crafted = fgsm(model, x, labels, 0.25, (0.0, 1.0), rows=3)
    probe = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(probe), labels, reduction="sum").backward()
    assert probe.grad is not None
    expected = (x + 0.25 * probe.grad.sign()).clamp(0, 1)
    assert torch.equal(crafted, expected)
    assert crafted.min() >= 0
    assert crafted.max() <= 1


@pytest.fixture
def trained(tiny_dataset: Dataset, tmp_path: Path) -> Path:
    train_substitute(tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "run", FAST)
    return tmp_path / "run"


def test_fgsm_and_jsma_are_measured_on_held_out_samples_and_asked_once(
    trained: Path, tiny_dataset: Dataset
) -> None:
    oracle = tiny_oracle(tiny_dataset)
    fgsm_attack = TransferAttack("fgsm", samples=20, epsilon=0.3)
    first = attack_through_substitute(oracle, tiny_dataset, trained, fgsm_attack)
    assert first.held_out == (8, 28)
    assert first.queries == 40  # 20 originals, 20 adversarial samples
    assert first.in_target is None
    assert 0 <= first.misclassified <= 1
    again = attack_through_substitute(oracle, tiny_dataset, trained, fgsm_attack)
    assert again.queries == 0
    assert again.misclassified == first.misclassified
    stored = json.loads((trained / "attacks" / "fgsm-0.3.json").read_text())
    assert stored["kind"] == "blackbox-attack"
    assert stored["misclassified"] == first.misclassified

    jsma_attack = TransferAttack("jsma", samples=12, targets="random")
    outcome = attack_through_substitute(oracle, tiny_dataset, trained, jsma_attack)
    assert outcome.held_out == (8, 20)
    assert outcome.in_target is not None
    assert outcome.queries <= 12  # the originals were answered for FGSM already
    assert (trained / "attacks" / "jsma-random-pairs" / "campaign.json").exists()


def test_another_oracle_or_no_substitute_is_refused(
    trained: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    other = ModelOracle(tiny_oracle(tiny_dataset)._model, identity="model:other")
    with pytest.raises(OracleError, match="trained on model:tiny, not on model:other"):
        attack_through_substitute(other, tiny_dataset, trained)
    with pytest.raises(Exception, match="no substitute here"):
        attack_through_substitute(tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "none")


def test_the_command_prints_the_transfer_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_npz(tmp_path / "data.npz", test=40)
    torch.manual_seed(3)
    spec = ModelSpec("lenet", {"input_shape": (3, 16, 16), "num_classes": 4})
    checkpoint = tmp_path / "oracle.safetensors"
    save_checkpoint(checkpoint, spec.build(), CheckpointInfo(spec=spec))
    out = tmp_path / "run"
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "c")]
    assert main(["blackbox", "substitute", str(out), "--oracle", str(checkpoint),
                 "--epochs", "2", "--initial", "8", *common]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["blackbox", "attack", str(out), "--samples", "10", *common]) == 0
    printed = capsys.readouterr().out
    assert "attack:      fgsm-0.3 on test samples 8 to 17" in printed
    assert "(the transfer rate)" in printed
    assert "queries:                      20 new (0 unanswered)" in printed
    assert (out / "attacks" / "fgsm-0.3.json").exists()
    assert replace(TransferAttack(), epsilon=0.1).name == "fgsm-0.1"
    assert np.isfinite(json.loads((out / "attacks" / "fgsm-0.3.json").read_text())["distortion"])


def test_a_mask_confines_fgsm_and_jsma(trained: Path, tiny_dataset: Dataset) -> None:
    from jsma.campaign import FeatureMask

    allowed = np.zeros(tiny_dataset.input_shape, dtype=bool)
    allowed[..., :8, :] = True  # the top half
    mask = FeatureMask.of(allowed)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 4))
    x = torch.rand(3, *tiny_dataset.input_shape)
    crafted = fgsm(model, x, torch.tensor([0, 1, 2]), 0.2, (0.0, 1.0), mask=mask.tensor())
    assert torch.equal(crafted[..., 8:, :], x[..., 8:, :])
    assert not torch.equal(crafted[..., :8, :], x[..., :8, :])
    oracle = tiny_oracle(tiny_dataset)
    chosen = TransferAttack("jsma", samples=6, targets="random", mask=mask)
    outcome = attack_through_substitute(oracle, tiny_dataset, trained, chosen)
    assert chosen.name.startswith("jsma-random-pairs-mask")
    assert outcome.held_out == (8, 14)
    from jsma.campaign import Campaign

    assert Campaign.open(trained / "attacks" / chosen.name).manifest.spec.mask == mask
