from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from jsma.attacks import attack
from jsma.campaign import AttackSettings, Campaign, CampaignSpec
from jsma.data import Dataset
from jsma.errors import CampaignError
from tests.campaign.conftest import Recording, _comparable, _model
from tests.conftest import NUM_CLASSES

SPEC = CampaignSpec(splits=("test",), samples=6, unit_size=2)


def test_spec_units_and_round_trip(tiny_dataset: Dataset) -> None:
    spec = CampaignSpec(splits=("validation", "test"), samples=5, unit_size=2)
    names = [unit.name for unit in spec.units(tiny_dataset)]
    assert names == [
        "validation-000000-000002", "validation-000002-000004", "validation-000004-000005",
        "test-000000-000002", "test-000002-000004", "test-000004-000005",
    ]  # fmt: skip
    again = CampaignSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec
    assert again.digest() == spec.digest()
    assert dataclasses.replace(spec, seed=1).digest() != spec.digest()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"splits": ("dev",)}, "splits must be distinct names"),
        ({"targets": "nearest"}, "unknown target rule 'nearest'"),
        ({"unit_size": 0}, "unit_size must be positive"),
    ],
)
def test_spec_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CampaignSpec(**changes)  # type: ignore[arg-type]


def test_attack_settings_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="theta must be a non-zero"):
        AttackSettings(theta=0.0)
    with pytest.raises(ValueError, match="theta must be a non-zero"):
        CampaignSpec.from_json({**SPEC.to_json(), "attack": {"theta": 0.0}})
    # One description: the attack a campaign runs is its settings plus the data's bounds.
    attack = AttackSettings(theta=-1.0, variant="single").attack((0.0, 1.0))
    assert attack.settings == AttackSettings(theta=-1.0, variant="single")
    assert (attack.direction, attack.features_per_step) == ("decreasing", 1)


def test_campaign_rows_match_direct_attacks(tiny_dataset: Dataset, tmp_path: Path) -> None:
    model = _model()
    status = Campaign.run(tmp_path / "run", SPEC, model, tiny_dataset)
    assert status.complete
    assert (status.units_done, status.attacks_done) == (3, 6 * (NUM_CLASSES - 1))
    table = Campaign.open(tmp_path / "run").results()
    assert table.num_rows == 6 * (NUM_CLASSES - 1)
    rows = table.to_pylist()
    # The reference: the same attacks made directly, one (sample, target) at a time.
    x, labels = tiny_dataset.test.tensors(slice(0, 6))
    for row in rows[:: NUM_CLASSES - 2]:
        i = row["index"]
        assert row["source"] == int(labels[i])
        assert row["target"] != row["source"]
        single = attack(
            model, x[i : i + 1], torch.tensor([row["target"]]), sources=labels[i : i + 1]
        )[0]
        assert row["success"] == single.success
        assert row["iterations"] == single.iterations
        assert row["stop_reason"] == single.stop_reason.name.lower()
        assert row["distortion"] == pytest.approx(single.distortion, rel=1e-6)
        assert list(zip(row["trajectory_features"], row["trajectory_values"], strict=True)) == [
            pytest.approx(step) for step in single.trajectory
        ]
        assert 0 <= row["adversarial_distance"] <= 1


def test_files_are_plain_parquet(tiny_dataset: Dataset, tmp_path: Path) -> None:
    Campaign.run(tmp_path / "run", SPEC, _model(), tiny_dataset)
    table = pq.read_table(tmp_path / "run" / "units")  # pyarrow alone, no jsma code
    assert table.num_rows == 6 * (NUM_CLASSES - 1)
    manifest = json.loads((tmp_path / "run" / "campaign.json").read_text())
    assert manifest["spec"]["attack"]["max_distortion"] == 0.145
    assert {"jsma", "torch", "python"} <= set(manifest["versions"])


@pytest.mark.parametrize("rule", ["random", "least-likely", "untargeted"])
def test_target_rules(tiny_dataset: Dataset, tmp_path: Path, rule: str) -> None:
    model = _model()
    spec = dataclasses.replace(SPEC, targets=rule)  # type: ignore[arg-type]
    Campaign.run(tmp_path / "run", spec, model, tiny_dataset)
    table = Campaign.open(tmp_path / "run").results()
    assert table.num_rows == 6
    targets = table.column("target").to_pylist()
    sources = table.column("source").to_pylist()
    if rule == "untargeted":
        assert targets == [None] * 6
        return
    assert all(t != s for t, s in zip(targets, sources, strict=True))
    if rule == "least-likely":
        x, labels = tiny_dataset.test.tensors(slice(0, 6))
        with torch.no_grad():
            logits = model(x)
        logits[torch.arange(6), labels] = float("inf")
        assert targets == logits.argmin(1).tolist()
    else:  # random targets are seeded: the same again
        Campaign.run(tmp_path / "again", spec, model, tiny_dataset)
        assert Campaign.open(tmp_path / "again").results().column("target").to_pylist() == targets


def test_resume_redoes_only_missing_and_damaged_units(
    tiny_dataset: Dataset, tmp_path: Path, recording: Recording
) -> None:
    model = _model()
    directory = tmp_path / "run"
    Campaign.run(directory, SPEC, model, tiny_dataset)
    complete = _comparable(Campaign.open(directory).results())
    units = sorted((directory / "units").glob("*.parquet"))
    units[0].unlink()
    data = bytearray(units[1].read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped byte inside a data page
    units[1].write_bytes(bytes(data))
    with pytest.raises(CampaignError, match="2 of 3 units are missing or damaged"):
        Campaign.open(directory).results()
    status = Campaign.run(directory, SPEC, model, tiny_dataset, engine=recording)
    assert status.complete
    assert sorted(recording.units) == sorted(path.stem for path in units[:2])
    assert _comparable(Campaign.open(directory).results()) == complete


def test_resume_refuses_other_settings(tiny_dataset: Dataset, tmp_path: Path) -> None:
    directory = tmp_path / "run"
    Campaign.run(directory, SPEC, _model(), tiny_dataset)
    with pytest.raises(CampaignError, match="the configuration differs"):
        Campaign.run(directory, dataclasses.replace(SPEC, samples=4), _model(), tiny_dataset)
    with pytest.raises(CampaignError, match="the model differs"):
        Campaign.run(directory, SPEC, _model(seed=1), tiny_dataset)
    other = dataclasses.replace(
        tiny_dataset,
        test=dataclasses.replace(tiny_dataset.test, images=255 - tiny_dataset.test.images),
    )
    with pytest.raises(CampaignError, match="the data differs"):
        Campaign.run(directory, SPEC, _model(), other)


def test_status_of_nothing(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="no campaign here"):
        Campaign.open(tmp_path).status()


# --- a real process, really killed -----------------------------------------------


def _jsma(*args: str) -> list[str]:
    return [sys.executable, "-m", "jsma.cli", "-q", "--threads", "1", *args]


def _units(directory: Path) -> int:
    return len(list((directory / "units").glob("*.parquet"))) if directory.exists() else 0


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _wait_gone(pids: list[int], seconds: float = 20) -> None:
    def alive(pid: int) -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False
        return "\nState:\tZ" not in status  # a zombie has exited

    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} outlived their driver"
        time.sleep(0.1)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(cli_setup: tuple[list[str], Path]) -> None:
    # The killed runs use two worker processes of one thread; the reference and the
    # resume, this process with one thread (thread counts change the last bit of the
    # model's float outputs, whatever the engine).
    options, tmp_path = cli_setup
    settings = ["--samples", "40", "--unit-size", "2"]
    reference = tmp_path / "reference"
    one = ["--workers", "1"]
    subprocess.run(_jsma("campaign", "run", str(reference), *options, *settings, *one), check=True)
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(3):
        before = _units(killed)
        process = subprocess.Popen(
            _jsma("campaign", "run", str(killed), *options, *settings, "--workers", "2"), env=env
        )
        deadline = time.monotonic() + 120
        while _units(killed) <= before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
        _wait_gone(workers)  # the driver's workers end by themselves
    partial = Campaign.open(killed).status()
    assert 0 < partial.units_done < partial.units_total
    subprocess.run(_jsma("campaign", "resume", str(killed), *options, *one), check=True)
    assert Campaign.open(killed).status().complete
    assert _comparable(Campaign.open(killed).results()) == _comparable(
        Campaign.open(reference).results()
    )


@pytest.mark.slow
def test_cli_status(cli_setup: tuple[list[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    from jsma.cli import main

    options, tmp_path = cli_setup
    directory = tmp_path / "run"
    assert (
        main(["campaign", "run", str(directory), *options, "--samples", "4", "--unit-size", "2"])
        == 0
    )
    assert "attacks:    12 / 12" in capsys.readouterr().out
    assert main(["campaign", "status", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "units:      2 / 2" in out
    assert "state:      complete" in out
    assert main(["campaign", "run", str(directory), *options, "--samples", "3"]) == 2
    assert "cannot resume this campaign: the configuration differs" in capsys.readouterr().err
    assert np.isfinite(Campaign.open(directory).status().throughput)


def test_fingerprints_cover_batch_norm_and_keep_their_values() -> None:
    from jsma.models import model_fingerprint

    # The value a LeNet had before 0-dim buffers were handled: stored campaigns still match.
    expected = "5df0e1d058d06d538a4d164521d1974502974d3dd921b570370ad49f48b44b43"
    assert model_fingerprint(_model()) == expected
    normed = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    before = model_fingerprint(normed)
    normed.train()(torch.randn(5, 4))  # one step: the 0-dim step count moves
    assert model_fingerprint(normed) != before


def test_create_writes_the_manifest_and_runs_nothing(
    tiny_dataset: Dataset, tmp_path: Path, recording: Recording
) -> None:
    from jsma.campaign import Campaign
    from jsma.errors import CampaignError

    created = Campaign.create(tmp_path / "c", SPEC, _model(), tiny_dataset)
    assert (tmp_path / "c" / "campaign.json").is_file()
    assert not list((tmp_path / "c" / "units").iterdir())
    status = created.status()
    assert (status.units_done, status.units_total) == (0, 3)
    assert Campaign.open(tmp_path / "c").manifest == created.manifest
    Campaign.run(tmp_path / "c", SPEC, _model(), tiny_dataset, engine=recording)
    assert len(recording.units) == 3  # the created campaign is the one that runs
    again = Campaign.create(tmp_path / "c", SPEC, _model(), tiny_dataset)
    assert again.status().complete  # the same campaign, opened
    grown = Campaign.create(
        tmp_path / "c", dataclasses.replace(SPEC, samples=8), _model(), tiny_dataset
    )
    assert grown.status().units_total == 4
    with pytest.raises(CampaignError, match="the configuration differs"):
        Campaign.create(tmp_path / "c", dataclasses.replace(SPEC, seed=1), _model(), tiny_dataset)


def test_resume_runs_what_is_left_and_a_reference_names_the_campaign(
    tiny_dataset: Dataset, tmp_path: Path, recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsma.campaign import CampaignRef

    created = Campaign.create(tmp_path / "c", SPEC, _model(), tiny_dataset)
    assert created.resume(_model(), tiny_dataset, engine=recording).complete
    assert len(recording.units) == 3
    reference = CampaignRef.of(tmp_path / "c")
    assert reference.location == str((tmp_path / "c").resolve())
    monkeypatch.chdir(tmp_path / "c" / "units")  # opened from anywhere
    assert reference.open().manifest == created.manifest
    grown = dataclasses.replace(SPEC, samples=8)
    Campaign.create(tmp_path / "c", grown, _model(), tiny_dataset)
    assert reference.open().manifest.spec == grown  # an extension is the same campaign
    Campaign.run(tmp_path / "d", dataclasses.replace(SPEC, seed=1), _model(), tiny_dataset)
    moved = CampaignRef(str(tmp_path / "d"), reference.digest)
    with pytest.raises(CampaignError, match="not the campaign this record measured"):
        moved.open()


@pytest.mark.mnist
def test_a_campaign_takes_the_model_by_its_reference(tmp_path: Path) -> None:
    from jsma.data import load_mnist
    from jsma.models import ModelRef

    spec = CampaignSpec(splits=("test",), samples=1, unit_size=1)
    data = load_mnist()
    status = Campaign.run(tmp_path / "c", spec, "paper", data)  # loaded, with its provenance
    assert status.attacks_done == 9
    stored = Campaign.open(tmp_path / "c").manifest.model
    assert stored.reference == ModelRef.parse("paper")
    assert stored.fingerprint == ModelRef.parse("paper").load().provenance.fingerprint
