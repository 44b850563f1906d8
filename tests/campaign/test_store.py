"""Damaged, edited and contended campaign directories: each a clear error or a repair."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from jsma.campaign import Campaign, CampaignSpec
from jsma.campaign._store import SCHEMA, UnitStamp, read_unit, unit_name
from jsma.campaign.location import LocalFolder, folder_at
from jsma.data import Dataset
from jsma.errors import CampaignError, StorageError
from jsma.models import ModelSpec
from tests.campaign.conftest import Recording
from tests.conftest import NUM_CLASSES, SIDE

SPEC = CampaignSpec(splits=("test",), samples=6, unit_size=2)
ATTACKS = 6 * (NUM_CLASSES - 1)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    return spec.build().eval()


@pytest.fixture
def campaign(tiny_dataset: Dataset, tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    Campaign.run(directory, SPEC, _model(), tiny_dataset)
    return directory


def _first_unit(directory: Path) -> tuple[Path, UnitStamp]:
    manifest = Campaign.open(directory).manifest
    unit = manifest.units[0]
    stamp = UnitStamp(unit, manifest.spec.digest(), manifest.model.fingerprint)
    return directory / unit_name(unit), stamp


def _read(path: Path, stamp: UnitStamp) -> Any:
    """`read_unit` of the campaign that holds the unit file at `path`."""
    return read_unit(LocalFolder(path.parents[1]), stamp)


# --- 1. `key=value` folders on the path ----------------------------------------------


def test_equals_sign_in_path(tiny_dataset: Dataset, tmp_path: Path, recording: Recording) -> None:
    directory = tmp_path / "theta=1" / "quick"
    status = Campaign.run(directory, SPEC, _model(), tiny_dataset)
    assert (status.units_done, status.attacks_done) == (3, ATTACKS)
    assert Campaign.open(directory).status().attacks_done == ATTACKS
    assert Campaign.open(directory).results().column_names == SCHEMA.names
    Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=recording)
    assert recording.units == []  # nothing recomputed


def test_readme_reader_skips_strays(tiny_dataset: Dataset, tmp_path: Path) -> None:
    directory = tmp_path / "theta=1" / "run"
    Campaign.run(directory, SPEC, _model(), tiny_dataset)
    (directory / "units" / ".test-000000-000002.parquet.x1y2.tmp").write_bytes(b"half a fi")
    (directory / "units" / "notes.txt").write_text("not parquet")
    # The snippet of docs/campaigns.md, as written there.
    import pyarrow.dataset as ds

    units = ds.dataset(
        directory / "units", format="parquet", partitioning=None, exclude_invalid_files=True
    )
    table = units.to_table()
    assert table.num_rows == ATTACKS
    assert table.column_names == SCHEMA.names


def test_a_run_removes_temporaries_of_killed_runs(tiny_dataset: Dataset, campaign: Path) -> None:
    stray = campaign / "units" / ".test-000000-000002.parquet.abc.tmp"
    stray.write_bytes(b"partial")
    Campaign.run(campaign, SPEC, _model(), tiny_dataset)
    assert not stray.exists()


# --- 2. damaged footers and bytes ---------------------------------------------------


def _rewrite_footer(path: Path, change: dict[bytes, bytes | None]) -> None:
    table = pq.ParquetFile(path).read()
    metadata = dict(table.schema.metadata)
    for key, value in change.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    pq.write_table(table.replace_schema_metadata(metadata), path)


@pytest.mark.parametrize(
    "change",
    [
        {b"jsma.rows": None, b"jsma.rowz": b"6"},  # a renamed key
        {b"jsma.seconds": b"a while"},  # not a float
        {b"jsma.rows": b"\xff\xfe"},  # not UTF-8
        {b"jsma.unit": b"\xff\xfe"},
        {b"jsma.rows": b"-3"},
        {b"jsma.seconds": b"nan"},
    ],
)
def test_damaged_footer_is_redone(
    tiny_dataset: Dataset,
    campaign: Path,
    change: dict[bytes, bytes | None],
    recording: Recording,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, stamp = _first_unit(campaign)
    reference = pq.ParquetFile(path).read().to_pylist()
    _rewrite_footer(path, change)
    assert _read(path, stamp) is None
    assert Campaign.open(campaign).status().units_done == 2
    assert path.name in caplog.text
    assert Campaign.run(campaign, SPEC, _model(), tiny_dataset, engine=recording).complete
    assert recording.units == [stamp.unit.name]
    rows = pq.ParquetFile(path).read().drop_columns(["seconds"]).to_pylist()
    assert rows == [{k: v for k, v in r.items() if k != "seconds"} for r in reference]


@pytest.mark.slow
def test_bit_flips_never_raise_and_never_change_rows(campaign: Path) -> None:
    path, stamp = _first_unit(campaign)
    data = path.read_bytes()
    reference = _read(path, stamp)
    assert reference is not None
    outcomes = {"redo": 0, "same": 0}
    for bit in random.Random(0).sample(range(len(data) * 8), 1500):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        table = _read(path, stamp)  # must not raise, whatever the flip
        if table is None:
            outcomes["redo"] += 1
        else:  # the flip hit bytes that do not decide the rows (statistics, padding)
            assert table.equals(reference)
            outcomes["same"] += 1
    assert outcomes["redo"] > 500


# --- 5. an edited manifest -------------------------------------------------------------


def _edit_manifest(directory: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    path = directory / "campaign.json"
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["spec"]["attack"].update(theta=-1.0), "the spec was edited"),
        (lambda m: m.update(units=m["units"][:2]), "unit list is not the spec's plan"),
        (lambda m: m.pop("units"), "missing field 'units'"),
        (lambda m: m["data"].update(num_classes="4"), "data.num_classes: expected a whole number"),
        (lambda m: m["model"].update(recipe=3), "model.recipe: expected a string, got 3"),
        (lambda m: m.update(kind="toy"), "not a campaign manifest"),
        (lambda m: m["data"].update(source="elsewhere"), "edited after it was written"),
        (lambda m: m.update(attacks_total=3), "attacks_total no longer what the spec implies"),
        (lambda m: m.update(format=1), "manifest format 1"),
        (lambda m: m.clear(), "manifest format None"),
    ],
)
def test_edited_manifest_is_refused_by_every_reader(
    tiny_dataset: Dataset, campaign: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    _edit_manifest(campaign, edit)
    with pytest.raises(CampaignError, match=message):
        Campaign.open(campaign)
    with pytest.raises(CampaignError, match=message):
        Campaign.run(campaign, SPEC, _model(), tiny_dataset)


def test_manifest_not_json(campaign: Path) -> None:
    (campaign / "campaign.json").write_bytes(b"\xff{")
    with pytest.raises(CampaignError, match="unreadable campaign manifest"):
        Campaign.open(campaign)


def test_changed_configuration_names_the_fields(tiny_dataset: Dataset, campaign: Path) -> None:
    other = dataclasses.replace(SPEC, samples=4, unit_size=3)
    with pytest.raises(CampaignError) as error:
        Campaign.run(campaign, other, _model(), tiny_dataset)
    message = str(error.value)
    assert "samples: stored 6, asked 4" in message
    assert "unit_size: stored 2, asked 3" in message
    assert "theta" not in message  # the same in both: not listed


# --- 6. two drivers, other models -------------------------------------------------


def test_second_driver_is_refused(tiny_dataset: Dataset, tmp_path: Path) -> None:
    directory = tmp_path / "run"
    busy = r"another run is using this campaign \(pid \d+"
    with folder_at(directory).lock(), pytest.raises(CampaignError, match=busy):
        Campaign.run(directory, SPEC, _model(), tiny_dataset)
    # Released with its holder: the next run goes ahead.
    assert Campaign.run(directory, SPEC, _model(), tiny_dataset).complete


def test_units_of_another_model_are_redone(
    tiny_dataset: Dataset, tmp_path: Path, recording: Recording
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    Campaign.run(mine, SPEC, _model(0), tiny_dataset)
    Campaign.run(theirs, SPEC, _model(1), tiny_dataset)
    path, stamp = _first_unit(mine)
    path.write_bytes((theirs / unit_name(stamp.unit)).read_bytes())  # same spec, other weights
    assert _read(path, stamp) is None
    Campaign.run(mine, SPEC, _model(0), tiny_dataset, engine=recording)
    assert recording.units == [stamp.unit.name]


# --- the directory itself ----------------------------------------------------------------


def test_directory_that_is_a_file(tiny_dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.write_text("hello")
    with pytest.raises(CampaignError, match="exists and is not a directory"):
        Campaign.run(path, SPEC, _model(), tiny_dataset)
    with pytest.raises(CampaignError, match="not a directory"):
        Campaign.open(path).status()
    assert path.read_text() == "hello"


def test_unwritable_units_fail_before_any_attack(
    tiny_dataset: Dataset, tmp_path: Path, recording: Recording
) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "units").write_text("in the way")  # not writable, even for root
    with pytest.raises(StorageError, match="units: results cannot be written there"):
        Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=recording)
    assert recording.units == []


def test_unit_file_schema_mismatch(campaign: Path) -> None:
    path, stamp = _first_unit(campaign)
    table = pq.ParquetFile(path).read()
    narrower = table.drop_columns(["l2"]).replace_schema_metadata(table.schema.metadata)
    pq.write_table(narrower, path)
    assert _read(path, stamp) is None


class _InMemoryUnit:
    """The one file `read_unit` opens, held in memory: a sweep of every bit reads it
    tens of thousands of times."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open(self, name: str) -> pa.NativeFile:
        return pa.BufferReader(self.data)


def _flipped_reads(path: Path, stamp: UnitStamp) -> tuple[int, int, int]:
    """Flip each bit of the unit file at `path` in turn; return how many reads were
    refused, gave the original rows, and gave other rows."""
    import logging

    original = path.read_bytes()
    expected = _read(path, stamp)
    assert expected is not None
    outcomes = [0, 0, 0]
    logging.disable(logging.WARNING)  # a warning per refused read
    try:
        for bit in range(8 * len(original)):
            damaged = bytearray(original)
            damaged[bit // 8] ^= 1 << (bit % 8)
            table = read_unit(_InMemoryUnit(bytes(damaged)), stamp)  # type: ignore[arg-type]
            outcomes[0 if table is None else 1 if table.equals(expected) else 2] += 1
    finally:
        logging.disable(logging.NOTSET)
    refused, same, different = outcomes
    return refused, same, different


@pytest.mark.slow
def test_no_single_bit_flip_of_a_unit_file_is_trusted_with_other_rows(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    # One sample, its 3 targets: the smallest real unit file (a few KB, every page kind).
    spec = CampaignSpec(splits=("test",), samples=1, unit_size=1)
    Campaign.run(tmp_path / "run", spec, _model(), tiny_dataset)
    path, stamp = _first_unit(tmp_path / "run")
    refused, same, different = _flipped_reads(path, stamp)
    assert different == 0  # the data pages' headers too, which page checksums miss
    assert refused > same  # most flips are caught; the rest hit bytes no row depends on


@pytest.mark.slow
def test_a_manifest_nested_to_exhaust_the_parser_is_refused(campaign: Path) -> None:
    (campaign / "campaign.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CampaignError, match=r"unreadable campaign manifest.*nested too deeply"):
        Campaign.open(campaign)


def test_a_missing_ray_extra_fails_before_anything_is_written(
    cli_setup: tuple[list[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    from jsma.cli import main

    options, tmp_path = cli_setup
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else found(name, *a)
    )
    directory = tmp_path / "run"
    assert main(["campaign", "run", str(directory), *options, "--engine", "ray"]) == 2
    captured = capsys.readouterr()
    assert "needs the `ray` extra (ray is missing)" in captured.err
    assert "campaign:" not in captured.err  # no progress bar began
    assert not directory.exists()
