"""Transferability: rates against a plain loop, the matrix against one model at a time,
and the edges (no successes, other shapes, the command line)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from jsma._records import dump, encode
from jsma.campaign import Campaign, CampaignSpec
from jsma.campaign._store import UnitStamp, read_unit, write_unit
from jsma.campaign.location import LocalFolder
from jsma.data import Dataset
from jsma.errors import ConfigurationError, JSMAError
from jsma.models import ModelSpec, save_checkpoint, train
from jsma.models._checkpoint import CheckpointInfo
from jsma.transfer import read_transfer, transfer, write_transfer
from jsma.transfer._transfer import predict, transfer_rates
from tests.conftest import NUM_CLASSES, SIDE

SPEC = CampaignSpec(splits=("test",), samples=8, unit_size=4)
LENET = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
MLP = ModelSpec("mlp", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})


def _model(spec: ModelSpec, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return spec.build().eval()


@pytest.fixture
def campaign(tiny_dataset: Dataset, tmp_path: Path) -> Path:
    directory = tmp_path / "crafted"
    Campaign.run(directory, SPEC, _model(LENET, 0), tiny_dataset)
    return directory


def test_rates_match_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    n, edges = 500, (0.0, 2.0, 5.0, 14.5)
    sources = rng.integers(0, 4, n)
    targets = np.where(rng.random(n) < 0.2, -1, rng.integers(0, 4, n))
    predictions = rng.integers(0, 4, n)
    distortion = rng.choice([0.0, 0.5, 2.0, 3.0, 5.0, 9.0], n)  # edges themselves included
    as_target, wrong, counts = transfer_rates(predictions, sources, targets, distortion, edges)
    for b in range(len(edges)):
        members = [
            i for i in range(n)
            if b == len(edges) - 1
            or edges[b] < distortion[i] <= edges[b + 1]
            or (b == 0 and distortion[i] == edges[0])
        ]  # fmt: skip
        if b < len(edges) - 1:
            assert counts[b] == len(members)
        targeted = [i for i in members if targets[i] >= 0]
        hits = [predictions[i] == targets[i] for i in targeted]
        assert as_target[b] == pytest.approx(np.mean(hits) if hits else np.nan, nan_ok=True)
        assert wrong[b] == pytest.approx(np.mean([predictions[i] != sources[i] for i in members]))
    assert counts[-1] == n


def test_the_matrix_is_a_loop_over_the_models(tiny_dataset: Dataset, campaign: Path) -> None:
    models = {
        "crafted on": _model(LENET, 0),
        "other lenet": _model(LENET, 1),
        "mlp": _model(MLP, 2),
    }
    result = transfer({"lenet": campaign}, models, tiny_dataset)
    samples = Campaign.open(campaign).samples(tiny_dataset)
    for (name, model), row in zip(models.items(), result.rows, strict=True):
        alone = transfer({"lenet": campaign}, {name: model}, tiny_dataset).rows[0]
        assert encode(row) == encode(alone)  # NaN (an empty bucket) != NaN: as written
        predictions = predict(model, samples.adversarial).numpy()
        assert row.as_target[-1] == pytest.approx(np.mean(predictions == samples.targets.numpy()))
        assert row.misclassified[-1] == pytest.approx(
            np.mean(predictions != samples.sources.numpy())
        )
    # The samples fool the model they were crafted on, every one: they are its successes.
    assert result.matrix("as_target")[0, 0] == 1.0
    assert [row.crafting_model for row in result.rows] == [True, False, False]
    assert result.counts["lenet"][-1] == len(samples.sources)
    assert result.matrix().shape == (1, 3)


def test_samples_are_the_campaigns_successes(tiny_dataset: Dataset, campaign: Path) -> None:
    samples = Campaign.open(campaign).samples(tiny_dataset)
    changed = (samples.adversarial != samples.originals).flatten(1).sum(1).numpy()
    features = SIDE * SIDE
    assert np.allclose(changed / features * 100, samples.distortion, atol=100 / features)
    assert (samples.targets != samples.sources).all()


def test_a_campaign_without_successes_is_refused(tiny_dataset: Dataset, campaign: Path) -> None:
    manifest = Campaign.open(campaign).manifest
    folder = LocalFolder(campaign)
    for unit in manifest.units:
        stamp = UnitStamp(unit, manifest.spec.digest(), manifest.model.fingerprint)
        table = read_unit(folder, stamp)
        assert table is not None
        failed = table.set_column(
            table.schema.get_field_index("success"), "success",
            pa.array([False] * table.num_rows),
        )  # fmt: skip
        write_unit(folder, stamp, failed.replace_schema_metadata(None), seconds=1.0)
    with pytest.raises(JSMAError, match="no attack succeeded, so it holds no adversarial sample"):
        transfer({"lenet": campaign}, {"mlp": _model(MLP, 2)}, tiny_dataset)


def test_settings_are_checked(tiny_dataset: Dataset, campaign: Path) -> None:
    with pytest.raises(ConfigurationError, match="bucket edges"):
        transfer({"c": campaign}, {"m": _model(LENET, 0)}, tiny_dataset, buckets=(0, 5, 5))
    with pytest.raises(ConfigurationError, match="at least one campaign and one model"):
        transfer({"c": campaign}, {}, tiny_dataset)


def test_stored_result_round_trips(tiny_dataset: Dataset, campaign: Path, tmp_path: Path) -> None:
    result = transfer({"lenet": campaign}, {"mlp": _model(MLP, 2)}, tiny_dataset)
    write_transfer(tmp_path, result)
    again = read_transfer(tmp_path)
    assert dump(again) == dump(result)
    assert json.loads((tmp_path / "transfer.json").read_text())["rows"][0]["evaluated_on"] == "mlp"
    with pytest.raises(JSMAError, match="no transfer result here"):
        read_transfer(tmp_path / "elsewhere")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jsma.cli import main
    from tests.conftest import write_idx_directory

    data = write_idx_directory(tmp_path / "idx", train=10_010 + 40)
    options = ["--data", f"idx:{data}", "--cache-dir", str(tmp_path / "c")]
    lenet, mlp = tmp_path / "lenet.safetensors", tmp_path / "mlp.safetensors"
    save_checkpoint(lenet, _model(LENET, 0), CheckpointInfo(spec=LENET))
    save_checkpoint(mlp, _model(MLP, 2), CheckpointInfo(spec=MLP))
    run = ["campaign", "run", str(tmp_path / "run"), *options, "--model", str(lenet)]
    run.append("--allow-weak-model")  # an untrained LeNet
    assert main([*run, "--samples", "6", "--workers", "1"]) == 0
    out = tmp_path / "transfer"
    command = ["transfer", str(tmp_path / "run"), *options, "--out", str(out)]
    assert main([*command, "--models", f"self={lenet}", str(mlp)]) == 0
    printed = capsys.readouterr().out
    assert "classified as the target" in printed
    assert "run (lenet)" in printed  # the campaign, named after its model
    assert "self" in printed
    assert "mlp" in printed
    assert {p.name for p in out.iterdir()} == {"transfer.json", "transfer.png"}
    assert main([*command, "--models", str(tmp_path / "missing.safetensors")]) == 2
    assert "not a recipe (paper, default), a file or directory" in capsys.readouterr().err
    assert main([*command, "--models", str(mlp), f"{mlp}"]) == 2
    assert "two models have the same name" in capsys.readouterr().err


def test_trained_models_measure(tiny_dataset: Dataset, campaign: Path) -> None:
    # Trained models agree on benign samples: the accuracy column means something.
    trained = train(tiny_dataset, "default", epochs=10).model
    result = transfer({"lenet": campaign}, {"trained": trained}, tiny_dataset)
    assert result.rows[0].benign_accuracy == 1.0


def test_model_names_and_paths_with_equals_signs(tmp_path: Path) -> None:
    from jsma.cli.transfer import _named

    checkpoint = tmp_path / "theta=1" / "model.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    assert _named(str(checkpoint)) == ("", str(checkpoint))
    assert _named(f"T=100={checkpoint}") == ("T=100", str(checkpoint))
    assert _named("paper") == ("", "paper")
    assert _named("mine=default") == ("mine", "default")
    assert _named("x=missing.safetensors") == ("x", "missing.safetensors")


def test_the_figure_plots_both_measures_in_percent(tiny_dataset: Dataset, campaign: Path) -> None:
    from jsma.transfer import transfer_figure

    models = {"lenet": _model(LENET, 0), "mlp": _model(MLP, 2)}
    result = transfer({"lenet": campaign}, models, tiny_dataset)
    figure = transfer_figure(result)
    (target_map, wrong_map), (target_lines, wrong_lines) = (
        [a for a in figure.axes if a.get_label() != "<colorbar>"][i : i + 2] for i in (0, 2)
    )
    for panel, lines, measure in (
        (target_map, target_lines, "as_target"),
        (wrong_map, wrong_lines, "misclassified"),
    ):
        (image,) = panel.images
        assert image.get_clim() == (0, 100)
        plotted = np.ma.masked_invalid(np.asarray(image.get_array())).filled(np.nan)
        assert plotted == pytest.approx(result.matrix(measure) * 100, nan_ok=True)
        assert lines.get_ylim() == (0, 100)
        others = [row for row in result.rows if not row.crafting_model]  # 100% by construction
        assert len(lines.lines) == len(others) == 1
        expected = np.array(getattr(others[0], measure)[:-1]) * 100
        assert lines.lines[0].get_ydata() == pytest.approx(expected, nan_ok=True)
    assert len(figure.legends) == 1  # below the panels, not over them
