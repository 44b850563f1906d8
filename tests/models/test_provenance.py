"""ModelProvenance: where an attacked model came from, resolved once and stored typed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from jsma.campaign import AttackSettings, Campaign, CampaignSpec
from jsma.data import Dataset
from jsma.errors import CampaignError, ConfigurationError
from jsma.models import (
    CheckpointInfo,
    ModelProvenance,
    ModelRef,
    ModelSpec,
    model_fingerprint,
    save_checkpoint,
)
from tests.conftest import NUM_CLASSES, SIDE

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v0.1.0"
SPEC = CampaignSpec(samples=4, unit_size=4, attack=AttackSettings(max_distortion=0.05))


def _lenet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    return spec.build().eval()


def test_provenance_of_a_module_and_of_a_checkpoint(tmp_path: Path) -> None:
    model = _lenet()
    alone = ModelProvenance.of(model)
    assert alone.fingerprint == model_fingerprint(model)
    assert alone.origin == "module"
    assert alone.architecture == "lenet"  # the class name
    assert "given as a module" in alone.describe()
    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    info = CheckpointInfo(spec=spec, recipe={"name": "paper"}, accuracies={"test": 0.5})
    save_checkpoint(tmp_path / "m.safetensors", model, info)
    _, filed = ModelRef.parse(tmp_path / "m.safetensors").load()
    assert filed.origin == "checkpoint"
    assert not filed.is_paper_setting
    assert filed.checkpoint == str((tmp_path / "m.safetensors").resolve())
    assert filed.accuracies == {"test": 0.5}
    assert filed.training == "paper"
    assert filed.fingerprint == alone.fingerprint  # the same weights, another form
    _, cached = ModelRef.parse("paper").load()
    assert cached.origin == "recipe"
    assert cached.is_paper_setting
    assert cached.describe() == "the lenet of recipe 'paper'"
    assert cached.reference == ModelRef.parse("paper")


def test_the_manifest_stores_it_typed(tiny_dataset: Dataset, tmp_path: Path) -> None:
    model = _lenet()
    provenance = ModelProvenance.of(model, recipe="paper", accuracies={"test": 0.25})
    Campaign.run(tmp_path / "c", SPEC, model, tiny_dataset, provenance=provenance)
    stored = json.loads((tmp_path / "c" / "campaign.json").read_text())
    assert stored["format"] == 6
    assert stored["kind"] == "campaign"
    assert stored["model"]["recipe"] == "paper"
    assert Campaign.open(tmp_path / "c").manifest.model == provenance
    with pytest.raises(ConfigurationError, match="another model's"):
        Campaign.run(tmp_path / "d", SPEC, _lenet(1), tiny_dataset, provenance=provenance)
    assert not (tmp_path / "d" / "campaign.json").exists()
    stored["kind"] = "toy"
    (tmp_path / "c" / "campaign.json").write_text(json.dumps(stored))
    with pytest.raises(CampaignError, match="not a campaign manifest"):
        Campaign.open(tmp_path / "c")


def test_a_description_of_0_2_0_reads_as_a_provenance(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    model = _lenet()
    about = {"checkpoint": "/m.safetensors", "architecture": "lenet", "seen": 1}
    provenance = ModelProvenance.from_description(model_fingerprint(model), about)
    Campaign.run(tmp_path / "c", SPEC, model, tiny_dataset, provenance=provenance)
    model_of = Campaign.open(tmp_path / "c").manifest.model
    assert model_of.checkpoint == "/m.safetensors"
    assert model_of.notes == {"seen": 1}


def test_manifests_of_0_1_0_give_a_provenance(tmp_path: Path) -> None:
    old = Path(shutil.copytree(FIXTURE / "increasing", tmp_path / "old"))
    stored = json.loads((old / "campaign.json").read_text())["model"]
    provenance = Campaign.open(old).manifest.model
    assert provenance.fingerprint == stored["fingerprint"]
    assert provenance.origin == "module"  # 0.1.0's Python API described nothing
