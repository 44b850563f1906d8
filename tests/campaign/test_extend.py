"""A campaign grows to more samples without redoing what it holds, and the campaigns
0.1.0 wrote open, report, resume and extend."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from jsma.campaign import AttackSettings, Campaign, CampaignSpec
from jsma.data import Dataset
from jsma.errors import CampaignError
from jsma.metrics import results_by_split
from tests.campaign.conftest import Recording, _comparable, _model

SPEC = CampaignSpec(splits=("test",), samples=8, unit_size=4)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "v0.1.0"


@pytest.mark.slow
def test_more_samples_add_only_the_missing_units(
    tiny_dataset: Dataset, tmp_path: Path, recording: Recording
) -> None:
    Campaign.run(tmp_path / "run", SPEC, _model(), tiny_dataset)
    before = _comparable(Campaign.open(tmp_path / "run").results())
    more = dataclasses.replace(SPEC, samples=14)
    status = Campaign.run(tmp_path / "run", more, _model(), tiny_dataset, engine=recording)
    assert recording.units == ["test-000008-000012", "test-000012-000014"]  # only these
    assert status.complete
    campaign = Campaign.open(tmp_path / "run")
    assert campaign.manifest.spec.samples == 14
    rows = _comparable(campaign.results())
    assert rows[: len(before)] == before  # the first units kept as they were
    Campaign.run(tmp_path / "fresh", more, _model(), tiny_dataset)
    assert rows == _comparable(Campaign.open(tmp_path / "fresh").results())
    recording.units.clear()
    Campaign.run(tmp_path / "run", more, _model(), tiny_dataset, engine=recording)
    assert recording.units == []  # and resuming the extended campaign redoes nothing


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"samples": 4}, "samples: stored 8, asked 4"),
        ({"samples": 12, "unit_size": 2}, "unit_size: stored 4, asked 2"),
        ({"attack": AttackSettings(theta=-1.0)}, "attack.theta: stored 1.0, asked -1.0"),
    ],
)
def test_anything_but_more_samples_is_still_refused(
    tiny_dataset: Dataset, tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    Campaign.run(tmp_path / "run", SPEC, _model(), tiny_dataset)
    with pytest.raises(CampaignError, match="only the sample count may grow") as raised:
        Campaign.run(tmp_path / "run", dataclasses.replace(SPEC, **change), _model(), tiny_dataset)
    assert named in str(raised.value)
    assert Campaign.open(tmp_path / "run").manifest.spec == SPEC  # nothing rewritten


@pytest.fixture
def old_campaign(tmp_path: Path) -> Path:
    """The increasing campaign 0.1.0 wrote: 24 samples of the tests' synthetic data in
    units of 12, against the seeded untrained LeNet (manifest format 2, no digests)."""
    return Path(shutil.copytree(FIXTURE / "increasing", tmp_path / "old"))


@pytest.mark.slow
def test_a_campaign_of_0_1_0_opens_resumes_reports_and_extends(
    old_campaign: Path, tiny_dataset: Dataset, tmp_path: Path, recording: Recording
) -> None:
    from jsma.report import write_report

    assert json.loads((old_campaign / "campaign.json").read_text())["format"] == 2
    campaign = Campaign.open(old_campaign)
    assert campaign.status().complete
    spec = campaign.manifest.spec
    kept = _comparable(campaign.results())
    assert len(kept) == 24 * 3
    Campaign.run(old_campaign, spec, _model(), tiny_dataset, engine=recording)
    assert recording.units == []  # its units are trusted as they are
    files = write_report([old_campaign], tmp_path / "report", tiny_dataset)
    (line,) = results_by_split(campaign.arrays())
    assert f"<td>{line.attacks}</td><td>{line.success_rate:.2%}</td>" in files.html.read_text()
    Campaign.run(
        old_campaign, dataclasses.replace(spec, samples=30), _model(), tiny_dataset,
        engine=recording,
    )  # fmt: skip
    assert recording.units == ["test-000024-000030"]
    extended = Campaign.open(old_campaign)
    assert json.loads((old_campaign / "campaign.json").read_text())["format"] == 6
    assert _comparable(extended.results())[: len(kept)] == kept
    assert extended.status().attacks_done == 30 * 3
    # The old units read with every pick moved, beside the new unit's own column.
    table = extended.results()
    moved = table.column("trajectory_moved").combine_chunks()
    features = table.column("trajectory_features").combine_chunks()
    assert len(moved.flatten()) == len(features.flatten())
    assert all(moved.flatten().to_pylist())
