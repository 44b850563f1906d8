"""Campaigns on a user's data and models: the same network as a `.pt2` program, as
TorchScript and as a builder with weights gives the same rows, which equal
`jsma.attack` called directly; worker processes rebuild it from its source; a
normalisation option equals a model that normalises itself; the campaign resumes,
exports and reports from what its manifest stored."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import jsma
from jsma.attacks import all_other_targets
from jsma.campaign import AttackSettings, Campaign, CampaignSpec, FeatureMask, LocalPool
from jsma.data import Dataset, load_data
from jsma.errors import ConfigurationError
from jsma.metrics._core import in_pixels, pixels_changed
from jsma.models import ModelRef
from jsma.models._external import Normalization
from jsma.report import write_report
from tests.campaign.conftest import _comparable
from tests.userdata import (
    CLASS_NAMES,
    binary_features,
    load_model,
    outside_source,
    write_npz,
)

SPEC = CampaignSpec(splits=("test",), samples=8, unit_size=4)


def _sources(forms: dict[str, Path]) -> list[ModelRef]:
    sources = [
        ModelRef.parse(forms["exported"]),
        ModelRef.parse(forms["torchscript"]),
        ModelRef.parse(f"tests.userdata:build_small_cnn@{forms['weights']}"),
    ]
    return sources


@pytest.mark.slow
def test_three_forms_give_the_same_rows_as_the_attack_itself(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    rows = []
    for number, source in enumerate(_sources(forms)):
        model = load_model(source)
        Campaign.run(tmp_path / f"c{number}", SPEC, model, user_data)
        rows.append(_comparable(Campaign.open(tmp_path / f"c{number}").results()))
    assert len(rows[0]) == 8 * 3  # 8 samples x 3 other classes
    assert rows[0] == rows[1] == rows[2]

    campaign = Campaign.open(tmp_path / "c0")
    manifest = campaign.manifest
    assert manifest.model.source == _sources(forms)[0]
    assert manifest.data.location == user_data.location
    assert manifest.data.class_names == CLASS_NAMES
    assert manifest.data.input_shape == (3, 16, 16)

    # The attack called directly, on the same inputs and targets.
    x, y = user_data.test.tensors(np.arange(8))
    images, _, targets = all_other_targets(x, y, user_data.num_classes)
    direct = jsma.attack(load_model(_sources(forms)[0]), images, targets)
    assert [r["success"] for r in rows[0]] == direct.success.tolist()
    assert [r["iterations"] for r in rows[0]] == direct.iterations.tolist()
    assert [r["target"] for r in rows[0]] == targets.tolist()
    exported = tmp_path / "adversarial.npz"
    assert campaign.export(user_data, exported) == 24
    with np.load(exported) as stored:
        assert np.array_equal(stored["adversarial"], direct.adversarial.numpy())
        assert np.array_equal(stored["original"], images.numpy())
        assert stored["class_names"].tolist() == list(CLASS_NAMES)
        assert stored["success"].tolist() == direct.success.tolist()


@pytest.mark.slow
def test_worker_processes_rebuild_the_model_from_its_source(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    source = _sources(forms)[0]
    Campaign.run(tmp_path / "here", SPEC, load_model(source), user_data)
    Campaign.run(tmp_path / "pool", SPEC, load_model(source), user_data, engine=LocalPool(2))
    here = _comparable(Campaign.open(tmp_path / "here").results())
    assert _comparable(Campaign.open(tmp_path / "pool").results()) == here


@pytest.mark.slow
def test_normalisation_equals_a_model_that_normalises_itself(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    mean, std = (0.3, 0.4, 0.5), (0.2, 0.3, 0.25)
    cnn = load_model(outside_source("tests.userdata:build_small_cnn", weights=forms["weights"]))
    network = cnn.network
    assert isinstance(network, nn.Module)
    itself = nn.Sequential(Normalization(mean, std), network).eval()
    example = torch.zeros(2, 3, 16, 16)
    program = torch.export.export(
        itself, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, tmp_path / "normalised.pt2")

    outside = ModelRef.parse(forms["exported"], mean=mean, std=std)
    written = ModelRef.parse(tmp_path / "normalised.pt2")
    Campaign.run(tmp_path / "outside", SPEC, load_model(outside), user_data)
    Campaign.run(tmp_path / "written", SPEC, load_model(written), user_data)
    rows = _comparable(Campaign.open(tmp_path / "outside").results())
    assert rows == _comparable(Campaign.open(tmp_path / "written").results())
    assert any(row["success"] for row in rows)


@pytest.mark.slow
def test_the_report_names_the_classes_and_checks_the_data(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Campaign.run(tmp_path / "c", SPEC, load_model(_sources(forms)[0]), user_data)
    files = write_report([tmp_path / "c"], tmp_path / "report", user_data)
    assert (tmp_path / "report" / "figures" / "0-c-samples.png").is_file()
    assert "cat" in files.html.read_text()  # the configuration lists the class names

    other = load_data(write_npz(tmp_path / "other.npz", test=20))  # other test samples
    with caplog.at_level(logging.WARNING):
        write_report([tmp_path / "c"], tmp_path / "report-other", other)
    assert "attacked other data" in caplog.text
    assert not (tmp_path / "report-other" / "figures" / "0-c-samples.png").exists()
    with pytest.raises(ConfigurationError, match="is not the data this campaign attacked"):
        Campaign.open(tmp_path / "c").export(other, tmp_path / "x.npz")


def test_binary_feature_vectors(tmp_path: Path) -> None:
    vectors, labels = binary_features(48, 0)
    np.savez(tmp_path / "f.npz", x_train=vectors, y_train=labels, x_test=vectors, y_test=labels)
    data = load_data(tmp_path / "f.npz")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    spec = CampaignSpec(splits=("test",), samples=6, unit_size=3)  # the other class
    status = Campaign.run(tmp_path / "c", spec, model, data)
    assert status.complete
    arrays = Campaign.open(tmp_path / "c").arrays()
    assert len(arrays.success) == 6
    files = write_report([tmp_path / "c"], tmp_path / "report", data)
    assert files.html.is_file()
    assert not (tmp_path / "report" / "figures" / "0-c-samples.png").exists()  # not images


@pytest.mark.slow
def test_pixels_counted_once_across_channels(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    Campaign.run(tmp_path / "c", SPEC, load_model(_sources(forms)[0]), user_data)
    campaign = Campaign.open(tmp_path / "c")
    arrays = campaign.arrays()
    campaign.export(user_data, tmp_path / "all.npz")
    with np.load(tmp_path / "all.npz") as stored:
        moved = (stored["adversarial"] != stored["original"]).any(axis=1)  # (n, H, W)
    expected = moved.reshape(len(moved), -1).sum(axis=1)
    assert np.array_equal(pixels_changed(arrays, (3, 16, 16)), expected)
    assert (expected <= arrays.features_changed).all()
    assert (expected < arrays.features_changed).any()  # some pixels moved in two channels
    as_pixels = in_pixels(arrays, (3, 16, 16))
    assert np.allclose(as_pixels.distortion, expected / 256 * 100)

    files = write_report([tmp_path / "c"], tmp_path / "report", user_data, l0="pixels")
    assert "256 pixels (16 x 16) changed in any of their 3 channels" in files.html.read_text()
    summary = json.loads(files.summary.read_text())["campaigns"][0]
    assert (summary["l0"], summary["l0_per_input"]) == ("pixels", 256)
    won = arrays.success
    assert summary["results"][0]["mean_distortion_success"] == pytest.approx(
        float((expected[won] / 256 * 100).mean())
    )
    with pytest.raises(ConfigurationError, match="pixels are counted in images"):
        pixels_changed(arrays, (768,))


@pytest.mark.browser
def test_the_report_of_a_users_campaign_renders_in_chromium(
    user_data: Dataset, forms: dict[str, Path], tmp_path: Path
) -> None:
    from tests.report.test_report import render_in_chromium

    Campaign.run(tmp_path / "c", SPEC, load_model(_sources(forms)[0]), user_data)
    files = write_report([tmp_path / "c"], tmp_path / "report", user_data)
    assert heatmap_labels(tmp_path / "c") == list(CLASS_NAMES)  # 4 x 4 matrices, by name
    page = render_in_chromium(files.html)
    assert page.images == len(files.figures)
    assert page.broken == 0
    assert page.problems == []
    assert all(name in page.text for name in CLASS_NAMES)
    assert "768 features (3 x 16 x 16)" in page.text


def heatmap_labels(campaign: Path) -> list[str]:
    """The class labels on the report's success matrix of `campaign`."""
    from jsma.report._sections.campaigns import campaign_section
    from jsma.report._summary import summarise

    limits = {name: (0.0, 1.0) for name in ("distortion", "hardness", "distance")}
    section = campaign_section(0, summarise(campaign), None, limits)
    success = next(p for p in section.pictures if p.stem.endswith("-success")).figure
    assert isinstance(success, Figure)
    axes = success.axes[0]
    return [label.get_text() for label in axes.get_xticklabels()]


@pytest.mark.slow
def test_a_masked_campaign_changes_only_the_free_features(tmp_path: Path) -> None:
    """Grosse et al.'s setting: binary features added only where the mask frees them;
    the rows are those of the attack called with the same mask, the manifest keeps
    the mask (and its digest covers it), and another mask is another campaign."""
    vectors, labels = binary_features(48, 0)
    np.savez(tmp_path / "f.npz", x_train=vectors, y_train=labels, x_test=vectors, y_test=labels)
    data = load_data(tmp_path / "f.npz")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    free = np.zeros(64, dtype=bool)
    free[::3] = True  # 22 of the 64 features may be added
    mask = FeatureMask.of(free)
    attack = AttackSettings(binary=True, variant="single", max_distortion=0.5)
    spec = CampaignSpec(splits=("test",), samples=12, unit_size=6, attack=attack, mask=mask)
    Campaign.run(tmp_path / "c", spec, model, data)

    campaign = Campaign.open(tmp_path / "c")
    assert campaign.manifest.spec.mask == mask
    assert np.array_equal(campaign.manifest.spec.mask.array(), free)
    results = campaign.results()
    changed = np.concatenate(results["trajectory_features"].to_numpy(zero_copy_only=False))
    assert len(changed) > 0
    assert free[changed].all()
    x, y = data.test.tensors(np.arange(12))
    direct = attack.attack(data.bounds)(model, x, 1 - y, sources=y, mask=torch.from_numpy(free))
    assert np.array_equal(results["success"].to_numpy(), direct.success.numpy())
    assert np.array_equal(results["features_changed"].to_numpy(), direct.features_changed.numpy())
    unmasked = CampaignSpec(splits=("test",), samples=12, unit_size=6, attack=attack)
    assert unmasked.digest() != spec.digest()
    assert "22 of its 64 features free to change" in (
        write_report([tmp_path / "c"], tmp_path / "report", data).html.read_text()
    )
    with pytest.raises(jsma.CampaignError, match="mask"):  # another mask: not this campaign
        Campaign.run(tmp_path / "c", unmasked, model, data)
    with pytest.raises(ConfigurationError, match=r"does not fit inputs of shape \(64,\)"):
        Campaign.run(tmp_path / "d", dataclasses.replace(spec, mask=FeatureMask.of(free[:8])),
                     model, data)  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "bits", "message"),
    [
        ((4,), "f", "1 bytes of bits, got 0.5"),
        ((4,), "zz", "hexadecimal"),
        ((4,), "f1", "past its last feature must be 0"),
        ((4,), "00", "lets no feature change"),
        ((0, 4), "", "positive sizes"),
    ],
)
def test_damaged_masks_are_named(shape: tuple[int, ...], bits: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FeatureMask(shape, bits)
    free = np.array([[True, False, False, True, True]])
    assert np.array_equal(FeatureMask.of(free).array(), free)
    assert FeatureMask.of(free).changeable == 3
    with pytest.raises(ConfigurationError, match="a mask is a bool array"):
        FeatureMask.of(free.astype(np.uint8))
