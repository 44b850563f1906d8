"""Typed records: one mechanism for every JSON jsma writes, and what 0.1.0 wrote still reads."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest

from jsma._records import RecordError, dump, dumps, load, read_record, write_record
from jsma.data import Dataset
from jsma.errors import JSMAError

FIXTURE = Path(__file__).parent / "fixtures" / "v0.1.0"


@dataclass(frozen=True)
class _Point:
    x: float
    label: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class _Example:
    KIND: ClassVar[str] = "example"
    FORMAT: ClassVar[int] = 2

    count: int
    points: tuple[_Point, ...]
    pair: tuple[int, float]
    names: dict[str, int] = field(default_factory=dict)
    where: Path | None = None
    path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @classmethod
    def upgraded(cls, data: dict[str, Any], format: int) -> dict[str, Any]:
        if format == 0:  # format 0 called it `n`
            data = dict(data)
            data["count"] = data.pop("n")
        return data


def _example() -> _Example:
    points = (_Point(math.nan), _Point(math.inf, "b"), _Point(-1.5))
    return _Example(3, points, (1, 2.0), {"k": 1}, Path("/x"), np.arange(4.0).reshape(2, 2))


def test_a_record_round_trips_in_strict_json() -> None:
    record = _example()
    text = dumps(record)
    data = json.loads(text)  # strict: no NaN or Infinity tokens
    assert data["format"] == 2
    assert data["kind"] == "example"
    assert data["points"][0]["x"] is None
    assert data["points"][1]["x"] == "inf"
    again = load(_Example, data)
    assert math.isnan(again.points[0].x)
    assert again.points[1] == _Point(math.inf, "b")
    assert again.pair == (1, 2.0)
    assert again.where == Path("/x")
    assert again.path.shape == (2, 2)
    assert again.path.dtype == np.float64
    assert dumps(again) == text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "toy"}, "a 'toy' record, not a example record"),
        ({"format": 3}, "format 3, written by a newer jsma"),
        ({"format": "2"}, "format must be a whole number"),
        ({"count": True}, "count: expected a whole number, got True"),
        ({"count": None}, "count: expected a whole number"),
        ({"pair": [1]}, r"pair: expected 2 values, got 1"),
        ({"points": [{"x": "1"}]}, r"points\[0\]\.x: expected a number, got '1'"),
        ({"points": [{"x": 1, "label": "c"}]}, r"points\[0\]\.label: expected one of"),
        ({"points": [{"x": 1, "y": 2}]}, r"points\[0\]\.y: unexpected field"),
        ({"names": {"k": 1.5}}, r"names\.k: expected a whole number"),
        ({"where": 3}, "where: expected a string"),
        ({"path": [[0, "x"]]}, r"path\[0\]\[1\]: expected a number"),
        ({"extra": 1}, "extra: unexpected field"),
    ],
)
def test_a_damaged_record_names_the_field(change: dict[str, Any], message: str) -> None:
    data = {**dump(_example()), **change}
    with pytest.raises(RecordError, match=message):
        load(_Example, data)


def test_older_formats_are_upgraded_and_missing_fields_named() -> None:
    fields = {k: v for k, v in dump(_example()).items() if k not in ("format", "kind")}
    fields["n"] = fields.pop("count")
    assert load(_Example, fields).count == 3  # no header: format 0, upgraded
    with pytest.raises(RecordError, match="count: missing"):
        load(_Example, {"format": 1, "kind": "example", "points": [], "pair": [1, 2]})
    with pytest.raises(RecordError, match="no kind in the header"):
        load(_Example, {k: v for k, v in dump(_example()).items() if k != "kind"})
    with pytest.raises(RecordError, match="is a JSON object"):
        load(_Example, [1])


def test_read_record_names_the_file(tmp_path: Path) -> None:
    path = write_record(tmp_path / "example.json", _example())
    assert read_record(_Example, path, missing="-").count == 3
    with pytest.raises(JSMAError, match=r"nothing\.json: run something first"):
        read_record(_Example, tmp_path / "nothing.json", missing="run something first")
    path.write_text("[" * 100_000)
    with pytest.raises(JSMAError, match=r"example\.json: not a valid example record"):
        read_record(_Example, path, missing="-")


# --- what 0.1.0 wrote -------------------------------------------------------------


def test_the_records_of_0_1_0_read() -> None:
    from jsma.campaign import CampaignRef
    from jsma.defenses._detection import read_detection
    from jsma.defenses._evaluation import read_defense
    from jsma.gan import read_gan_run
    from jsma.study._analysis import read_analysis
    from jsma.toy import read_toy
    from jsma.transfer import read_transfer

    raw = json.loads((FIXTURE / "detection" / "detection.json").read_text())
    detection = read_detection(FIXTURE / "detection")
    assert detection is not None
    assert [r.direction for r in detection.results] == ["increasing", "decreasing"]
    first = detection.results[0]
    assert first.auc == raw["results"][0]["auc"]
    assert first.mean_benign == raw["results"][0]["mean_statistic"]["benign"]
    assert first.histogram_edges == tuple(raw["results"][0]["histogram"]["edges"])
    assert first.roc_true_positive_rate == tuple(raw["results"][0]["roc"]["true_positive_rate"])
    assert first.points[0].threshold == raw["results"][0]["operating_points"][0]["threshold"]
    assert len(detection.joint) == 2

    defense = read_defense(FIXTURE / "defense")
    assert defense.defense == "distillation"
    # Format 1 named campaigns by a path as given: read as a reference without a digest.
    assert [e.campaign for e in defense.entries] == [
        CampaignRef("increasing"), CampaignRef("decreasing"),
    ]  # fmt: skip
    assert defense.details == {"temperatures": [20.0]}

    raw = json.loads((FIXTURE / "toy" / "toy.json").read_text())
    toy = read_toy(FIXTURE / "toy")
    assert toy.crafting.points.tolist() == raw["crafted_path"]
    assert toy.crafting.features == tuple(raw["crafted_features"])
    assert toy.corner_outputs == tuple(raw["corner_outputs"])

    raw = json.loads((FIXTURE / "transfer" / "transfer.json").read_text())
    transfer = read_transfer(FIXTURE / "transfer")
    assert transfer.buckets == tuple(raw["buckets"])
    assert transfer.rows[0].crafting_model

    summary, figure = read_gan_run(FIXTURE / "gan")
    raw = json.loads((FIXTURE / "gan" / "quality.json").read_text())
    assert summary.quality.as_asked == raw["quality"]["as_asked"]
    assert summary.recipe.epochs == 1
    assert len(summary.history) == 1
    assert figure[:4] == b"\x89PNG"

    analysis = read_analysis(FIXTURE / "study" / "analysis")
    assert analysis.lines
    assert all(math.isnan(line.judged_digit.cluster_low) for line in analysis.lines)


def test_a_defense_record_of_format_1_reads_its_paths_as_written(tmp_path: Path) -> None:
    """Format 1 (jsma 0.2 and 0.3 before `CampaignRef`) named campaigns by a path as
    given on the command line; it reads as a reference without a digest, opened where
    the path leads (the digest check needs one, so none is made)."""
    from jsma.campaign import CampaignRef
    from jsma.defenses import read_defense

    campaign = shutil.copytree(FIXTURE / "increasing", tmp_path / "runs" / "increasing")
    document = {
        "format": 1, "kind": "defense", "defense": "distillation",
        "entries": [{"model": "undefended", "output": "logits", "test_accuracy": 0.99,
                     "campaign": str(campaign)}],
        "details": {"temperatures": [20.0]},
    }  # fmt: skip
    (tmp_path / "defense.json").write_text(json.dumps(document))
    entry = read_defense(tmp_path).entries[0]
    assert entry.campaign == CampaignRef(str(campaign))
    assert entry.campaign.open().manifest.spec.splits == ("test",)


@pytest.mark.slow
def test_a_report_of_0_1_0_outputs(
    tmp_path: Path, tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsma.report import write_report

    old = Path(shutil.copytree(FIXTURE, tmp_path / "old"))
    monkeypatch.chdir(old)  # the defense names its campaigns relative to this directory
    files = write_report(
        [old / "increasing", old / "decreasing"], tmp_path / "report", tiny_dataset,
        toy=old / "toy", defenses=[old / "detection", old / "defense"],
        study=old / "study", gan=old / "gan", transfer=old / "transfer",
    )  # fmt: skip
    page = files.html.read_text()
    for title in ("Detection", "Distillation", "Generated digits", "Transferability", "AND"):
        assert title in page


def test_checkpoints_carry_a_header_and_those_of_0_2_0_still_load(tmp_path: Path) -> None:
    import safetensors

    from jsma.models import CheckpointInfo, ModelSpec, load_checkpoint, pretrained, save_checkpoint
    from jsma.models._training import packaged_model_path

    spec = ModelSpec("mlp", {"input_shape": (1, 4, 4), "num_classes": 3, "hidden": (5,)})
    save_checkpoint(tmp_path / "m.safetensors", spec.build(), CheckpointInfo(spec=spec))
    with safetensors.safe_open(str(tmp_path / "m.safetensors"), framework="pt") as handle:
        stored = json.loads((handle.metadata() or {})["jsma"])
    assert (stored["format"], stored["kind"]) == (1, "checkpoint")
    assert load_checkpoint(tmp_path / "m.safetensors").info.spec == spec  # tuples again
    shipped = packaged_model_path("paper")
    with safetensors.safe_open(str(shipped), framework="pt") as handle:
        assert "format" not in json.loads((handle.metadata() or {})["jsma"])  # 0.2.0 wrote it
    assert pretrained("paper").info.spec.architecture == "lenet"


def test_a_gan_of_0_1_0_loads_and_its_training_state_reads(
    tmp_path: Path, tiny_dataset: Dataset
) -> None:
    import safetensors

    from jsma.errors import CheckpointError
    from jsma.gan import GanRecipe, GanSpec, load_generator, train_gan
    from jsma.gan._training import _STATE_KEY, _StoredState
    from tests.conftest import NUM_CLASSES, SIDE

    old = Path(shutil.copytree(FIXTURE / "gan", tmp_path / "gan"))
    loaded = load_generator(old)
    assert loaded.spec == GanSpec((1, SIDE, SIDE), NUM_CLASSES, width=4)
    assert loaded.info.recipe.epochs == 1
    assert len(loaded.info.history) == 1
    with safetensors.safe_open(str(old / "training.safetensors"), framework="pt") as handle:
        state = load(_StoredState, json.loads((handle.metadata() or {})[_STATE_KEY]))
    assert state.history == loaded.info.history
    # Continuing it on other data is refused by name, not by a parse error.
    with pytest.raises(CheckpointError, match=r"other settings or data \(data\.source"):
        train_gan(
            tiny_dataset, GanRecipe(epochs=2, batch_size=16), spec=loaded.spec,
            state=old / "training.safetensors",
        )  # fmt: skip
