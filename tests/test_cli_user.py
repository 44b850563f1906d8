"""The commands on a user's data and model: `attack`, `campaign run|resume|export`,
`report` and `eval` with `--data` and `--model` in each form, and the clear errors of
what they refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import jsma
from jsma.cli import main
from jsma.data import load_data
from tests.userdata import (
    CLASS_NAMES,
    build_small_cnn,
    load_model,
    outside_source,
    save_model_forms,
    trained_small_cnn,
    write_npz,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user")
    data = write_npz(root / "small.npz")
    model = trained_small_cnn(*load_data(data).train.tensors())
    return {"data": data, **save_model_forms(model, root / "models")}


@pytest.mark.slow
def test_attack_one_sample_and_save_it(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["attack", "--data", str(files["data"]), "--model", str(files["exported"])]
    saved = tmp_path / "adv.npy"
    figure = tmp_path / "adv.png"
    assert (
        main([*common, "--index", "3", "--target", "0", "--save", str(saved), "--out", str(figure)])
        == 0
    )
    out = capsys.readouterr().out
    assert "inputs:  images of shape (3, 16, 16) (768 features), uint8" in out
    assert "classes: 4 (cat, dog, frog, ship)" in out
    assert "8-bit values k read as k / 255" in out
    assert "source ship -> target cat:" in out  # sample 3 is a ship; classes by name
    assert figure.read_bytes()[:4] == b"\x89PNG"
    data = load_data(files["data"])
    x, _ = data.test.tensors(np.array([3]))
    model = load_model(outside_source(str(files["exported"])))
    direct = jsma.attack(model, x, torch.tensor([0]))
    assert np.array_equal(np.load(saved), direct.adversarial.numpy())

    assert main([*common, "--index", "3", "--all-targets", "--out", str(tmp_path / "all.png")]) == 0
    assert capsys.readouterr().out.count("source ship -> target") == len(CLASS_NAMES) - 1


@pytest.mark.slow
def test_campaign_run_resume_export_report_with_a_builder(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    model = ["--model", f"tests.userdata:build_small_cnn(width=8)@{files['weights']}"]
    common = ["--data", str(files["data"]), *model]
    assert main(["campaign", "run", str(run), *common, "--samples", "4", "--unit-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "model:   tests.userdata:build_small_cnn(width=8) with weights" in out
    assert "attacks:    12 / 12" in out
    (run / "units" / "test-000002-000004.parquet").unlink()  # lose a unit
    # A builder is code: jsma never runs it because the manifest names it.
    assert main(["campaign", "resume", str(run)]) == 2
    refused = capsys.readouterr().err
    assert "jsma never loads a model that a campaign directory names" in refused
    assert f"--model 'tests.userdata:build_small_cnn(width=8)@{files['weights']}'" in refused
    assert main(["campaign", "resume", str(run), *model]) == 0
    assert "state:      complete" in capsys.readouterr().out  # data from the manifest
    exported = tmp_path / "adversarial.npz"
    assert main(["campaign", "export", str(run), "--out", str(exported)]) == 0
    assert "exported 12 attacks" in capsys.readouterr().out
    with np.load(exported) as stored:
        assert stored["adversarial"].shape == (12, 3, 16, 16)
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    assert (tmp_path / "report" / "figures" / "0-run-samples.png").is_file()

    assert main(["eval", "--data", str(files["data"]), *model, "--split", "test"]) == 0
    assert "test: accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "{whole}"], "never unpickles"),
        (["--model", "{exported}", "--normalize", "0.5"], "--normalize and --std go together"),
        (["--model", "{exported}@{weights}"], "not a recipe (paper, default), a file"),
        (["--model", "{exported}", "--device", "cuda"], "no CUDA device"),
        (["--model", "tests.userdata:build_small_cnn(classes=10)"],
         "gives 10 class scores, the data has 4 classes"),
        (["--model", "{exported}", "--bounds", "0", "2"], "8-bit data takes --bounds 0 1"),
    ],
)  # fmt: skip
def test_what_the_commands_refuse(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    if torch.cuda.is_available() and "cuda" in options:
        pytest.skip("this machine has a CUDA device")
    torch.save(build_small_cnn(), tmp_path / "whole.pt")
    paths = {**{k: str(v) for k, v in files.items()}, "whole": str(tmp_path / "whole.pt")}
    filled = [option.format(**paths) for option in options]
    assert main(["attack", "--data", str(files["data"]), *filled, "--index", "0"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--weights", "w.pt"], "--weights is gone: give --model package.module:callable@WEIGHTS"),
     (["--model-arg", "k=1"], "give --model 'package.module:callable(KEY=VALUE, ...)'"),
     (["--recipe", "paper"], "--recipe is gone: give --model RECIPE"),
     (["--retrain"], "give `jsma train --recipe RECIPE` first")],
)  # fmt: skip
def test_the_model_options_that_went_say_what_replaced_them(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["attack", *options])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def campaign(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("campaign") / "run"
    options = ["--data", str(files["data"]), "--model", str(files["exported"])]
    assert main(["-q", "campaign", "run", str(run), *options, "--samples", "8"]) == 0
    return run


@pytest.mark.slow
def test_detect_transfer_and_study_on_a_users_campaign(
    files: dict[str, Path], campaign: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detect = ["defend", "detect", str(campaign), "--out", str(tmp_path / "detect")]
    assert main(detect) == 2  # the .npz has no validation split
    assert "no validation images to calibrate the thresholds on" in capsys.readouterr().err
    assert main([*detect, "--calibration-split", "train"]) == 0
    assert "AUC" in capsys.readouterr().out

    models = [
        f"pt2={files['exported']}", f"script={files['torchscript']}",
        f"built=tests.userdata:build_small_cnn@{files['weights']}",
    ]  # fmt: skip
    transfer = ["transfer", str(campaign), "--models", *models, "--out", str(tmp_path / "t")]
    assert main([*transfer, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "classified as the target" in out
    # The same network three ways: the same share classified as the target by each.
    line = next(row for row in out.splitlines() if row.startswith("run ("))
    assert len(set(line.split()[-3:])) == 1
    assert (tmp_path / "t" / "transfer.json").is_file()

    study = ["study", "create", str(campaign), "--out", str(tmp_path / "study")]
    assert main(["-q", *study, "--per-condition", "2", "--allow-short"]) == 0
    capsys.readouterr()
    _named_classes_are_asked(tmp_path / "study")

    # Machine observers on the campaign's own data (it was MNIST, and a crash), with a
    # model in any form; the pictures are the colour images.
    simulate = ["study", "simulate", str(tmp_path / "study"), "--participants", "1"]
    for observer, kind in (("knn", "knn"), (str(files["exported"]), "model-model.pt2")):
        assert main(["-q", *simulate, "--trials", "3", "--observer", observer]) == 0
        assert f"observers:  1 x {kind}" in capsys.readouterr().out
    # The analysis and the report speak of classes, and quote the cluster bootstrap.
    assert main(["-q", "study", "analyze", str(tmp_path / "study")]) == 0
    assert "digit" not in capsys.readouterr().out
    report = ["report", str(campaign), "--study", str(tmp_path / "study")]
    assert main(["-q", *report, "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<th>judged one of the classes</th>" in page
    assert "does it show one of the classes, and which" in page
    assert "Wilson " in page


def _named_classes_are_asked(study: Path) -> None:
    """A study of named classes: colour images, its pages ask about the names, and an
    answer is stored as the class's index."""
    import json
    import sqlite3

    from PIL import Image

    from jsma.study import read_stimuli
    from jsma.study.simulate import serving
    from tests.study.test_server import _answer, _client, _join

    connection = sqlite3.connect(study / "study.sqlite")
    settings = dict(connection.execute("SELECT key, value FROM study").fetchall())
    connection.close()
    assert settings["format"] == "3"
    assert json.loads(settings["class_names"]) == list(CLASS_NAMES)
    stimuli = read_stimuli(study)
    picture = next(s for s in stimuli if s.condition == "benign")
    with Image.open(study / "images" / picture.image) as shown:
        assert (shown.size, shown.mode in ("RGB", "RGBA")) == ((16, 16), True)
    attention = [s.prompt for s in stimuli if s.condition == "attention"]
    assert all("digit" not in (prompt or "") for prompt in attention)
    with serving(study, trials_per_participant=3, secret=b"k" * 32) as url:
        client = _client(url)
        assert "A short study on images</h1>" in client.get("/").text
        _join(client)
        assert (
            "Does it show one of these: cat, dog, frog, ship?" in client.get("/instructions").text
        )
        page = client.get("/practice/1").text
        assert "Which one is it?" in page
        assert all(f"</kbd> {name}</label>" in page for name in CLASS_NAMES)
        refused = _answer(client, page, is_digit="yes", digit="7")
        assert refused.status_code == 400
        assert "Choose which class it is (cat, dog, frog, ship)" in refused.text
        assert _answer(client, page, is_digit="yes", digit="2").status_code == 303


@pytest.mark.slow
def test_feature_vectors_are_refused_where_images_are_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.userdata import binary_features

    vectors, labels = binary_features(24, 0)
    data = tmp_path / "features.npz"
    np.savez(
        data,
        x_train=vectors,
        y_train=labels,
        x_val=vectors,
        y_val=labels,
        x_test=vectors,
        y_test=labels,
    )
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(64, 2))
    program = torch.export.export(
        network.eval(), (torch.zeros(2, 64),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, tmp_path / "linear.pt2")
    run = tmp_path / "run"
    options = ["--data", str(data), "--model", str(tmp_path / "linear.pt2")]
    untrained = ["--allow-weak-model"]  # an untrained linear model
    assert main(["-q", "campaign", "run", str(run), *options, "--samples", "6", *untrained]) == 0
    assert main(["attack", *options, "--index", "1", "--save", str(tmp_path / "a.npy")]) == 0
    assert "figure:" not in capsys.readouterr().out  # feature vectors: nothing to draw
    assert main(["defend", "detect", str(run), "--out", str(tmp_path / "d")]) == 2
    assert "detection compares neighbouring pixels, so it needs images" in capsys.readouterr().err
    assert main(["study", "create", str(run), "--out", str(tmp_path / "s")]) == 2
    assert "people are shown images in a study" in capsys.readouterr().err


@pytest.mark.slow
def test_a_mask_file_keeps_the_attack_in_a_patch(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = np.zeros((1, 16, 16), dtype=np.uint8)  # 0/1 integers read as bools
    patch[0, 4:12, 4:12] = 1  # a pixel's three channels freed together
    np.save(tmp_path / "patch.npy", patch)
    common = ["--data", str(files["data"]), "--model", str(files["exported"])]
    saved = tmp_path / "adv.npy"
    masked = ["--mask", str(tmp_path / "patch.npy")]
    assert main(["attack", *common, *masked, "--index", "3", "--target", "0", "--save",
                 str(saved), "--out", str(tmp_path / "a.png")]) == 0  # fmt: skip
    x, _ = load_data(files["data"]).test.tensors(np.array([3]))
    moved = (np.load(saved) != x.numpy())[0].any(axis=0)
    assert moved.any()
    assert not moved[~patch[0].astype(bool)].any()

    run = tmp_path / "run"
    assert main(["campaign", "run", str(run), *common, *masked, "--samples", "2"]) == 0
    assert "attacks:    6 / 6" in capsys.readouterr().out
    stored = jsma.Campaign.open(run).manifest.spec.mask
    assert stored is not None
    assert np.array_equal(stored.array(), patch == 1)

    np.save(tmp_path / "wrong.npy", np.ones((16, 15), dtype=bool))
    np.save(tmp_path / "levels.npy", np.full((16, 16), 0.5))
    np.savez(tmp_path / "two.npz", a=patch)
    for name, message in [
        ("wrong.npy", "shape (16, 15) does not fit inputs of shape (3, 16, 16)"),
        ("levels.npy", "expected bools (or only 0 and 1), got float64"),
        ("two.npz", "an .npz archive"),
        ("absent.npy", "not a readable .npy array"),
    ]:
        assert main(["attack", *common, "--mask", str(tmp_path / name)]) == 2
        assert message in capsys.readouterr().err


def test_transfer_normalises_each_model_as_named(
    files: dict[str, Path], campaign: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = ["--models", f"plain={files['exported']}", f"shifted={files['exported']}"]
    # The same program fed inputs normalised as it was never trained: far worse, said.
    shifted = ["--normalize", "shifted=0.9", "--std", "shifted=0.05"]
    assert main(["transfer", str(campaign), *models, *shifted]) == 0
    out = capsys.readouterr().out
    assert "warning: shifted classifies" in out
    assert "(--normalize shifted=... --std shifted=...)" in out
    assert "warning: plain" not in out
    assert main(["transfer", str(campaign), *models, "--normalize", "other=0.5", "--std",
                 "other=0.2"]) == 2  # fmt: skip
    assert "--normalize names other, not a model of --models" in capsys.readouterr().err
    assert main(["transfer", str(campaign), *models, "--normalize", "plain=0.5"]) == 2
    assert "needs its --std NAME=" in capsys.readouterr().err
