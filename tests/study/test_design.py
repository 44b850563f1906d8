from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import image as mpimage

from jsma.campaign import Campaign
from jsma.cli import main
from jsma.data import Dataset
from jsma.errors import ConfigurationError, JSMAError
from jsma.metrics import CampaignArrays
from jsma.metrics._core import adversarial_samples
from jsma.models import ModelSpec, predict
from jsma.study import create_study, read_stimuli
from jsma.study._database import STUDY_DATABASE
from jsma.study._design import ATTENTION_CHECKS, choose_stimuli
from tests.conftest import NUM_CLASSES, SIDE, increasing_and_decreasing


def _arrays(rows: list[tuple[str, int, int, int, float]], success: bool = True) -> CampaignArrays:
    """Campaign rows (split, index, source, target, distortion) with one-step trajectories."""
    count = len(rows)
    split, index, source, target, distortion = (
        np.array(column) for column in zip(*rows, strict=True)
    )
    return CampaignArrays(
        split=split.astype(str), index=index.astype(np.int64), source=source.astype(np.int64),
        target=target.astype(np.int64), success=np.full(count, success),
        iterations=np.ones(count, dtype=np.int64), features_changed=np.full(count, 2),
        distortion=distortion.astype(np.float64), adversarial_distance=np.zeros(count),
        trajectory_offsets=np.arange(count + 1, dtype=np.int64) * 2,
        trajectory_features=np.tile([0, 1], count).astype(np.int64),
        trajectory_values=np.ones(2 * count), trajectory_moved=np.ones(2 * count, dtype=bool),
    )  # fmt: skip


def _all_pairs(samples: int, classes: int = 4) -> CampaignArrays:
    rows = []
    for sample in range(samples):
        source = sample % classes
        for target in range(classes):
            if target != source:
                rows.append(("test", sample, source, target, float(1 + (sample * 7 + target) % 12)))
    return _arrays(rows)


def test_choice_is_balanced_distinct_and_seeded() -> None:
    increasing, decreasing = _all_pairs(80), _all_pairs(80)
    chosen = choose_stimuli([increasing, decreasing], ["increasing", "decreasing"],
                            per_condition=24, seed=3)  # fmt: skip
    assert {k: len(v) for k, v in chosen.items()} == {
        "increasing": 24,
        "decreasing": 24,
        "benign": 24,
    }
    for condition, picks in chosen.items():
        arrays = [increasing, decreasing]
        sources = Counter(int(arrays[p.campaign].source[p.row]) for p in picks)
        # 4 source classes, 24 picks: exactly 6 each for the benign originals; the
        # adversarial ones cycle over (source, target, bucket) strata, so no class
        # takes more than its share plus one round.
        assert max(sources.values()) - min(sources.values()) <= (0 if condition == "benign" else 3)
        if condition != "benign":
            pairs = Counter(
                (int(arrays[p.campaign].source[p.row]), int(arrays[p.campaign].target[p.row]))
                for p in picks
            )
            assert len(pairs) == 12  # all 4 x 3 class pairs appear
            assert all(arrays[p.campaign].success[p.row] for p in picks)
    # No source image twice, across every condition.
    images = [
        (str([increasing, decreasing][p.campaign].split[p.row]),
         int([increasing, decreasing][p.campaign].index[p.row]))
        for picks in chosen.values() for p in picks
    ]  # fmt: skip
    assert len(images) == len(set(images))
    again = choose_stimuli([increasing, decreasing], ["increasing", "decreasing"],
                           per_condition=24, seed=3)  # fmt: skip
    assert again == chosen
    other = choose_stimuli([increasing, decreasing], ["increasing", "decreasing"],
                           per_condition=24, seed=4)  # fmt: skip
    assert other != chosen


def test_failed_attacks_are_never_stimuli() -> None:
    failed = _arrays([("test", i, i % 4, (i + 1) % 4, 5.0) for i in range(20)], success=False)
    chosen = choose_stimuli([failed], ["increasing"], per_condition=5)
    assert "increasing" not in chosen
    assert len(chosen["benign"]) == 5
    with pytest.raises(ValueError, match="per_condition must be positive"):
        choose_stimuli([failed], ["increasing"], per_condition=0)


@pytest.fixture
def campaigns(tiny_dataset: Dataset, tmp_path: Path) -> list[Path]:
    return increasing_and_decreasing(tiny_dataset, tmp_path / "runs", samples=24, unit_size=12)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # the model increasing_and_decreasing attacked
    return ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES}).build()


def _gray(path: Path) -> np.ndarray:
    return mpimage.imread(path)[..., 0]  # R = G = B for the gray colour map


@pytest.mark.slow
def test_create_stores_images_and_design(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    model = _model()
    stimuli = create_study(campaigns, tiny_dataset, study, per_condition=6, seed=1, model=model)
    assert stimuli == read_stimuli(study)
    conditions = Counter(s.condition for s in stimuli)
    assert conditions["attention"] == len(ATTENTION_CHECKS)
    assert conditions["practice"] == 2
    assert 0 < conditions["increasing"] <= 6
    assert conditions["benign"] == 6
    low, high = tiny_dataset.bounds
    results = {str(path): Campaign.open(path).arrays() for path in campaigns}
    for stimulus in stimuli:
        picture = _gray(study / "images" / stimulus.image)
        assert picture.shape == (SIDE, SIDE)
        if stimulus.condition == "attention":
            assert stimulus.prompt
            assert stimulus.expected_is_digit is not None
            # The instructions' rule: a digit only after Yes.
            assert (stimulus.expected_digit is not None) == stimulus.expected_is_digit
            continue
        if stimulus.condition == "practice":  # training originals no condition uses
            assert stimulus.split == "train"
            assert ("train", stimulus.sample) not in {
                (s.split, s.sample) for s in stimuli if s.condition != "practice"
            }
        assert stimulus.split is not None
        assert stimulus.sample is not None
        original = tiny_dataset.split(stimulus.split).tensors(np.array([stimulus.sample]))[0]
        if stimulus.condition in ("benign", "practice"):
            expected = original[0].numpy()
            if stimulus.condition == "practice":
                np.testing.assert_allclose(
                    picture, (expected[0] - low) / (high - low), atol=1 / 255
                )
                continue
            assert stimulus.prediction == int(predict(model, original)[0])
            assert stimulus.target is None
        else:
            arrays = results[str(stimulus.campaign)]
            (row,) = np.flatnonzero(
                (arrays.index == stimulus.sample) & (arrays.target == stimulus.target)
            )
            assert arrays.success[row]
            expected = adversarial_samples(arrays, original.numpy(), np.array([row]))[0]
            assert stimulus.prediction == stimulus.target
            assert stimulus.distortion == pytest.approx(arrays.distortion[row])
            with torch.no_grad():  # the network does see the target in the stored image
                assert (
                    int(model(torch.from_numpy(expected[None]).float()).argmax()) == stimulus.target
                )
        # The PNG holds the image itself (8 bits per pixel of the gray map).
        np.testing.assert_allclose(picture, (expected[0] - low) / (high - low), atol=1 / 255)
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        settings = dict(connection.execute("SELECT key, value FROM study"))
    assert (settings["seed"], settings["per_condition"]) == ("1", "6")
    with pytest.raises(JSMAError, match="exists and is not an empty directory"):
        create_study(campaigns, tiny_dataset, study, per_condition=6)
    before = sorted(campaigns[0].rglob("*"))
    with pytest.raises(JSMAError, match="exists and is not an empty directory"):
        create_study(campaigns, tiny_dataset, campaigns[0], per_condition=6)  # a campaign
    assert sorted(campaigns[0].rglob("*")) == before  # nothing written into it


@pytest.mark.slow
def test_a_short_condition_is_an_error_that_says_why(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    # 24 samples: far fewer successes and source images than 40 per condition.
    with pytest.raises(ConfigurationError, match="too few stimuli") as raised:
        create_study(campaigns, tiny_dataset, tmp_path / "s", per_condition=40)
    message = str(raised.value)
    for condition in ("increasing", "decreasing", "benign"):
        assert f"{condition} " in message
    assert "successful samples" in message
    assert "source images" in message
    assert "--allow-short" in message
    assert not (tmp_path / "s").exists()  # checked before anything is written
    stimuli = create_study(
        campaigns, tiny_dataset, tmp_path / "s", per_condition=40, allow_short=True
    )
    assert {s.condition for s in stimuli} >= {"increasing", "attention"}
    with pytest.raises(ConfigurationError, match="completion-url must be an http"):
        create_study(
            campaigns, tiny_dataset, tmp_path / "t", per_condition=2,
            completion_url="javascript:alert(1)",
        )  # fmt: skip


def test_a_campaign_with_no_success_gives_a_short_condition(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    from jsma.campaign import AttackSettings, Campaign, CampaignSpec

    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES}).build()
    # A budget of one feature, less than a pair: no attack changes anything.
    spec = CampaignSpec(samples=12, unit_size=12, attack=AttackSettings(max_distortion=0.004))
    Campaign.run(tmp_path / "failed", spec, model, tiny_dataset)
    with pytest.raises(
        ConfigurationError, match="increasing 0 of 4: the increasing campaigns hold 0"
    ):
        create_study([tmp_path / "failed"], tiny_dataset, tmp_path / "s", per_condition=4)


@pytest.mark.slow
def test_paths_are_never_read_as_uris(study: Path, tmp_path: Path) -> None:
    import shutil

    # A sibling whose name is what `y%41` means in a URI: `yA`, with other stimuli.
    encoded = Path(shutil.copytree(study, tmp_path / "y%41"))
    sibling = Path(shutil.copytree(study, tmp_path / "yA"))
    with sqlite3.connect(sibling / STUDY_DATABASE) as connection:
        connection.execute("DELETE FROM stimuli WHERE condition = 'benign'")
    assert read_stimuli(encoded) == read_stimuli(study)
    hashed = Path(shutil.copytree(study, tmp_path / "new#study?x=1"))
    assert read_stimuli(hashed) == read_stimuli(study)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new#study?x=1", "study", "y%41", "yA"]


@pytest.mark.slow
def test_campaigns_of_other_models_are_refused(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    from jsma.campaign import Campaign, CampaignSpec

    torch.manual_seed(1)
    other = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES}).build()
    Campaign.run(tmp_path / "other", CampaignSpec(samples=4, unit_size=4), other, tiny_dataset)
    with pytest.raises(JSMAError, match="same model on the same data"):
        create_study(
            [campaigns[0], tmp_path / "other"], tiny_dataset, tmp_path / "s", per_condition=2
        )
    with pytest.raises(JSMAError, match="no study here"):
        read_stimuli(tmp_path)


@pytest.mark.slow
def test_study_create_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jsma.models import CheckpointInfo, save_checkpoint
    from tests.conftest import write_idx_directory

    data = write_idx_directory(tmp_path / "idx", train=10_010, test=16)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, _model(), CheckpointInfo(spec=ModelSpec(
        "lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})))  # fmt: skip
    common = ["--data", f"idx:{data}", "--cache-dir", str(tmp_path / "cache")]
    for name, theta in (("up", "1"), ("down", "-1")):
        run = ["campaign", "run", str(tmp_path / name), *common, "--model", str(checkpoint)]
        run.append("--allow-weak-model")  # an untrained LeNet
        assert main(["-q", *run, "--samples", "16", "--theta", theta]) == 0
    capsys.readouterr()
    study = tmp_path / "study"
    arguments = [
        "study",
        "create",
        str(tmp_path / "up"),
        str(tmp_path / "down"),
        "--out",
        str(study),
    ]
    assert main(["-q", *arguments, "--per-condition", "4", *common]) == 0
    printed = capsys.readouterr().out
    stimuli = read_stimuli(study)
    counts = Counter(s.condition for s in stimuli)
    assert f"stimuli: benign {counts['benign']}" in printed
    assert (counts["benign"], counts["attention"]) == (4, 2)
    # The checkpoint the campaigns name gave the benign predictions.
    assert all(s.prediction is not None for s in stimuli if s.condition == "benign")
    assert "contact:    NOT FILLED IN" in printed
    assert "fill in before going live: jsma study settings" in printed
    changed = ["study", "settings", str(study), "--minutes", "12", "--contact", "a@uni.example"]
    assert main(changed) == 0
    printed = capsys.readouterr().out
    assert "minutes:    12" in printed
    assert "contact:    a@uni.example" in printed
    assert "ethics:     NOT FILLED IN" in printed
    arguments[-1] = str(tmp_path / "other")
    bad = ["--completion-url", "ftp://x.example/done", "--per-condition", "4", *common]
    assert main(["-q", *arguments, *bad]) == 2
    assert "--completion-url must be an http(s) address" in capsys.readouterr().err


def test_colour_stimuli_are_saved_as_rgb(tmp_path: Path) -> None:
    from PIL import Image

    from jsma.study._design import _save_png

    image = np.zeros((3, 4, 5))
    image[0, 1, 2] = 1.0  # one red pixel
    _save_png(tmp_path / "red.png", image, (0.0, 1.0))
    with Image.open(tmp_path / "red.png") as saved:
        pixels = np.asarray(saved.convert("RGB"))
    assert pixels.shape == (4, 5, 3)
    assert tuple(pixels[1, 2]) == (255, 0, 0)
    assert pixels.sum() == 255


def test_maximal_campaigns_are_refused_by_name(tiny_dataset: Dataset, tmp_path: Path) -> None:
    from tests.conftest import maximal_campaign

    maximal_campaign(tiny_dataset, tmp_path / "m-jsma")
    with pytest.raises(ConfigurationError, match=r"m-jsma: M-JSMA campaigns change pixels both"):
        create_study([tmp_path / "m-jsma"], tiny_dataset, tmp_path / "s", per_condition=2)
    assert not (tmp_path / "s").exists()
