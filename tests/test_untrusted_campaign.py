"""A campaign directory someone sent runs no code (issue 34, item 15): its manifest may
name any builder and recompute its own digest (an unkeyed SHA-256), yet `campaign
resume` and `study create` load no model it names unless the command names it too."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from jsma.cli import main
from jsma.data import Dataset


@pytest.fixture(scope="module")
def received(
    user_data: Dataset, forms: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A campaign on the session's `.pt2` (tests/conftest.py): its directory, the model."""
    run = tmp_path_factory.mktemp("received") / "run"
    options = ["--data", str(user_data.location), "--model", str(forms["exported"])]
    assert main(["-q", "campaign", "run", str(run), *options, "--samples", "4",
                 "--unit-size", "2", "--targets", "random"]) == 0  # fmt: skip
    return run, forms["exported"]


def _tampered(run: Path, marker: Path) -> None:
    """Make the manifest name a builder that creates `marker`, digest recomputed."""
    _stored_source(run, {
        "form": "builder", "location": "subprocess:run", "weights": None,
        "arguments": {"args": ["touch", str(marker)]}, "mean": [], "std": [],
    })  # fmt: skip


def _stored_source(run: Path, source: dict[str, object]) -> None:
    """Make the manifest's model source `source`, its digest recomputed."""
    path = run / "campaign.json"
    content = json.loads(path.read_text())
    content["model"]["source"] = source
    content.pop("digest")
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps({**content, "digest": digest}))


@pytest.mark.slow
def test_resume_and_study_run_no_builder_a_manifest_names(
    received: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(received[0], run)
    marker = tmp_path / "ran"
    _tampered(run, marker)

    study = ["study", "create", str(run), "--out", str(tmp_path / "study")]
    assert main(["-q", *study, "--per-condition", "1", "--allow-short"]) == 0
    assert "never loads a model" in capsys.readouterr().err
    assert not marker.exists()

    (next((run / "units").iterdir())).unlink()  # work left to do
    assert main(["campaign", "resume", str(run)]) == 2
    error = capsys.readouterr().err
    assert "subprocess:run(args=" in error
    assert "never loads a model" in error
    assert not marker.exists()


@pytest.mark.slow
def test_the_model_named_on_the_command_line_resumes_and_must_be_the_same(
    received: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    original, exported = received
    run = tmp_path / "run"
    shutil.copytree(original, run)
    study = ["study", "create", str(run), "--out", str(tmp_path / "study"), "--allow-short"]
    assert main(["-q", *study, "--per-condition", "1", "--model", str(exported)]) == 0
    other = ["--model", "tests.userdata:build_small_cnn"]
    assert main(["-q", "study", "create", str(run), "--out", str(tmp_path / "s2"), *other]) == 2
    assert "is not the model" in capsys.readouterr().err

    (next((run / "units").iterdir())).unlink()
    assert main(["campaign", "resume", str(run), "--model", str(exported)]) == 0
    assert "state:      complete" in capsys.readouterr().out


@pytest.mark.slow
def test_a_stored_reference_that_calls_a_program_a_checkpoint_is_read_as_data(
    received: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A manifest whose `source` says `checkpoint` (a form `ModelRef` has, which a source
    never stores) while naming the `.pt2`: the file is opened as safetensors, never
    given to torch's program loader."""
    import shutil

    import jsma.models._external as external

    def refused(*args: object) -> None:
        raise AssertionError("a program named by a manifest was loaded")

    monkeypatch.setattr(external, "load_exported", refused)
    run = tmp_path / "run"
    shutil.copytree(received[0], run)
    _stored_source(run, {
        "form": "checkpoint", "location": str(received[1]), "weights": None,
        "arguments": {}, "mean": [], "std": [],
    })  # fmt: skip
    (next((run / "units").iterdir())).unlink()
    assert main(["campaign", "resume", str(run)]) == 2
    assert "not a readable safetensors checkpoint" in capsys.readouterr().err
