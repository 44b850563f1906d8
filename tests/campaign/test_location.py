"""Campaigns in object storage: the `pyarrow.fs` path, on pyarrow's in-memory and local
file systems (the same code that talks to s3:// and gs://)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from jsma.campaign import Campaign, CampaignSpec, LocalPool
from jsma.campaign.location import LOCK_NAME, ArrowFolder, LocalFolder, folder_at
from jsma.data import Dataset
from jsma.errors import CampaignError, ConfigurationError, StorageError
from tests.campaign.conftest import Recording, _comparable, _model

SPEC = CampaignSpec(splits=("test",), samples=6, unit_size=2)  # 3 units


def _memory(root: str = "bucket/run", **lease: float) -> ArrowFolder:
    """A folder of a fresh in-memory file system (each `mock://` URI opens a new one)."""
    folder = folder_at(f"mock:///{root}")
    assert isinstance(folder, ArrowFolder)
    return ArrowFolder(folder.filesystem, folder.root, uri=folder.uri, settle_seconds=0.01, **lease)


@pytest.fixture
def reference(tiny_dataset: Dataset, tmp_path: Path) -> list[dict[str, object]]:
    Campaign.run(tmp_path / "reference", SPEC, _model(), tiny_dataset)
    return _comparable(Campaign.open(tmp_path / "reference").results())


def test_locations() -> None:
    assert folder_at("runs/a") == LocalFolder(Path("runs/a"))
    assert folder_at(Path("/x")) == LocalFolder(Path("/x"))
    uri = folder_at("file:///tmp/some/run/")
    assert isinstance(uri, ArrowFolder)
    assert uri.root == "/tmp/some/run"
    assert (str(uri), uri.name) == ("file:///tmp/some/run", "run")
    with pytest.raises(ConfigurationError, match="nope://x: not a storage URI"):
        folder_at("nope://x")


def test_in_memory_campaign_has_the_rows_of_a_directory(
    tiny_dataset: Dataset, reference: list[dict[str, object]], recording: Recording
) -> None:
    folder = _memory()
    status = Campaign.run(folder, SPEC, _model(), tiny_dataset)
    assert status.complete
    assert str(status.directory) == "mock:///bucket/run"
    assert _comparable(Campaign.open(folder).results()) == reference
    assert Campaign.open(folder).status().attacks_done == status.attacks_done
    assert Campaign.open(folder).manifest.spec == SPEC
    stored = folder.filesystem.get_file_info(pafs.FileSelector("bucket/run", recursive=True))
    names = sorted(info.path for info in stored if info.type == pafs.FileType.File)
    assert names == [
        "bucket/run/campaign.json",
        *(f"bucket/run/units/test-00000{i}-00000{i + 2}.parquet" for i in (0, 2, 4)),
    ]  # no temporary objects, no lease left behind

    # A lost object and a damaged one are redone; the others are not touched.
    folder.filesystem.delete_file("bucket/run/units/test-000000-000002.parquet")
    with folder.filesystem.open_output_stream("bucket/run/units/test-000004-000006.parquet") as out:
        out.write(b"PAR1 not a parquet file")
    with folder.filesystem.open_output_stream("bucket/run/units/.test-000002.x.tmp") as out:
        out.write(b"half an upload")
    assert Campaign.open(folder).status().units_done == 1
    Campaign.run(folder, SPEC, _model(), tiny_dataset, engine=recording)
    assert recording.units == ["test-000000-000002", "test-000004-000006"]
    assert _comparable(Campaign.open(folder).results()) == reference
    assert folder.temporaries("units") == []


@pytest.mark.slow
def test_a_pool_writes_to_a_uri(
    tiny_dataset: Dataset, reference: list[dict[str, object]], tmp_path: Path
) -> None:
    # file:// goes through pyarrow.fs like s3:// does, and pickles to the workers.
    uri = f"file://{tmp_path}/bucket/run"
    status = Campaign.run(uri, SPEC, _model(), tiny_dataset, engine=LocalPool(2))
    assert status.complete
    assert _comparable(Campaign.open(uri).results()) == reference
    assert sorted(p.name for p in (tmp_path / "bucket" / "run" / "units").iterdir()) == [
        "test-000000-000002.parquet", "test-000002-000004.parquet", "test-000004-000006.parquet",
    ]  # fmt: skip
    with folder_at(uri).lock():  # given back
        pass


def test_a_directory_and_its_file_uri_share_one_lock(tmp_path: Path) -> None:
    plain, uri = tmp_path / "run", f"file://{tmp_path}/run"
    for first, second in ((plain, uri), (uri, plain)):
        refused = pytest.raises(CampaignError, match="another run is using")
        with folder_at(first).lock(), refused, folder_at(second).lock():
            pass


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("file:///tmp/x#y", "no '#' part"),
        ("s3://bucket/run#1", "no '#' part"),
        ("file:///tmp/x?mode=ro", "takes no '?' options"),
    ],
)
def test_a_uri_is_taken_exactly_or_refused(uri: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        folder_at(uri)


def test_uri_forms_pyarrow_reads(tmp_path: Path) -> None:
    short = folder_at(f"file:{tmp_path}/x")  # no `//`: still a URI, not a folder `file:`
    assert isinstance(short, ArrowFolder)
    assert short.root == f"{tmp_path}/x"
    escaped = folder_at(f"file://{tmp_path}/x%23y")
    assert isinstance(escaped, ArrowFolder)
    assert escaped.root == f"{tmp_path}/x#y"
    assert folder_at("runs/file-like:name") == LocalFolder(Path("runs/file-like:name"))


def test_the_command_line_refuses_a_store_that_keeps_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from jsma.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["campaign", "status", "mock://bucket/run"])
    assert exited.value.code == 2
    assert "an in-memory file system keeps nothing" in capsys.readouterr().err


def test_a_second_driver_is_refused_while_the_lease_is_renewed(
    tiny_dataset: Dataset,
) -> None:
    first = _memory(lease_seconds=0.3)
    second = ArrowFolder(first.filesystem, first.root, uri=first.uri, settle_seconds=0.01)
    with first.lock():
        time.sleep(1.0)  # three leases long: only renewal keeps it
        lease = json.loads(first.read(LOCK_NAME) or b"{}")
        assert lease["expires"] > time.time()
        busy = r"another run is using .*\(pid \d+ on .*lease ends"
        with pytest.raises(CampaignError, match=busy):
            Campaign.run(second, SPEC, _model(), tiny_dataset)
    assert not first.exists(LOCK_NAME)  # given back on exit
    assert Campaign.run(second, SPEC, _model(), tiny_dataset).complete


def test_an_expired_lease_is_taken_over() -> None:
    folder = _memory()
    killed = {"holder": "pid 1 on elsewhere", "token": "dead", "expires": time.time() - 1}
    folder.write(LOCK_NAME, json.dumps(killed).encode())
    with folder.lock():
        assert json.loads(folder.read(LOCK_NAME) or b"{}")["token"] != "dead"
    for damaged in (b"not json", b"[]", b'{"holder": "x", "token": "y", "expires": "soon"}'):
        folder.write(LOCK_NAME, damaged)  # a damaged lease does not block forever
        with folder.lock():
            pass


def test_of_two_drivers_starting_together_one_wins() -> None:
    first = _memory()
    folders = [
        ArrowFolder(first.filesystem, first.root, uri=first.uri, settle_seconds=0.3)
        for _ in range(2)
    ]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def drive(folder: ArrowFolder) -> None:
        start.wait()
        try:
            with folder.lock():
                outcomes.append("held")
                time.sleep(0.5)
        except CampaignError:
            outcomes.append("refused")

    threads = [threading.Thread(target=drive, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["held", "refused"]


def test_storage_that_fails_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(CampaignError, match="exists and is a file"):
        folder_at(f"file://{tmp_path}/file").check()
    with pytest.raises(CampaignError, match="no campaign here"):
        Campaign.open(f"file://{tmp_path}/empty")
    blocked = folder_at(f"file://{tmp_path}/file/under")
    with pytest.raises(StorageError, match="results cannot be written there"):
        blocked.ensure_writable("units")


@pytest.mark.slow
def test_cli_runs_and_reports_a_uri(
    cli_setup: tuple[list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from jsma.cli import main

    options, tmp_path = cli_setup
    uri = f"file://{tmp_path}/bucket/run"
    assert main(["campaign", "run", uri, *options, "--samples", "4", "--unit-size", "2"]) == 0
    assert main(["campaign", "status", uri]) == 0
    out = capsys.readouterr().out
    assert f"campaign:   {uri}" in out
    assert "state:      complete" in out
    assert main(["report", uri, "--no-samples"]) == 2
    assert "needs --out DIR" in capsys.readouterr().err
    assert main(["report", uri, "--no-samples", "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.html").is_file()


def test_storage_workers_cannot_reach_is_refused_at_once(tiny_dataset: Dataset) -> None:
    # pyarrow's in-memory file system lives in this process only.
    with pytest.raises(ConfigurationError, match="cannot be sent to worker processes"):
        Campaign.run(_memory(), SPEC, _model(), tiny_dataset, engine=LocalPool(2))
