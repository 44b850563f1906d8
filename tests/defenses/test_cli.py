from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jsma.cli import main
from tests.conftest import write_idx_directory


@pytest.mark.slow  # trains an adversarially trained and two distilled models
def test_defend_commands_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI holds out 10,000 validation images; 400 more train (distillation refuses
    # a model left at chance).
    data = write_idx_directory(tmp_path / "idx", train=10_400, test=12)
    common = ["--data", f"idx:{data}", "--cache-dir", str(tmp_path / "cache")]
    checkpoint = tmp_path / "model.safetensors"
    assert main(["-q", "train", *common, "--epochs", "1", "--out", str(checkpoint)]) == 0
    model = ["--model", str(checkpoint)]
    baseline = tmp_path / "baseline"
    run = ["campaign", "run", str(baseline), *common, *model, "--samples", "4", "--unit-size", "2"]
    run.append("--allow-weak-model")  # one epoch on 400 images
    assert main(["-q", *run]) == 0
    capsys.readouterr()

    detection = tmp_path / "detection"
    assert main(["defend", "detect", str(baseline), *common, "--out", str(detection)]) == 0
    printed = capsys.readouterr().out
    assert "AUC" in printed
    assert "calibrated at 1% FPR on 10000 benign images" in printed
    stored = json.loads((detection / "detection.json").read_text())
    assert stored["results"][0]["direction"] == "increasing"
    assert stored["joint"] == []  # one campaign: nothing to combine
    assert (detection / "detection.png").read_bytes()[:4] == b"\x89PNG"

    adversarial = tmp_path / "adv"
    defend = ["defend", "adv-train", "--baseline", str(baseline), *common, *model]
    assert main(["-q", *defend, "--out", str(adversarial), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"undefended\s+logits", printed)
    assert re.search(r"adversarially trained\s+logits", printed)
    assert re.search(r"training: \d+ s", printed)  # the cost beside the gain

    distilled = tmp_path / "distill"
    distill = ["defend", "distill", "--baseline", str(baseline), *common, *model]
    distill += ["--out", str(distilled), "--temperatures", "5"]
    assert main(["-q", *distill, "--epochs", "1"]) == 0  # 4 batches: above chance
    printed = capsys.readouterr().out
    assert re.search(r"distilled T=5\s+probabilities", printed)

    toy = tmp_path / "toy"
    assert main(["-q", "toy", "--out", str(toy)]) == 0
    report = tmp_path / "report"
    arguments = ["report", str(baseline), "--no-samples", "--toy", str(toy), "--out", str(report)]
    defenses = ["--defenses", str(detection), str(adversarial), str(distilled)]
    assert main([*arguments, *defenses]) == 0
    page = (report / "report.html").read_text()
    for text in ("Toy example", "Detection by the sum", "Adversarial training", "Distillation"):
        assert text in page
    assert len(re.findall(r"<img ", page)) == 4 + 2 + 1 + 3  # campaign, across, toy, defenses
    summary = json.loads((report / "summary.json").read_text())
    assert summary["toy"]["grid_accuracy"] > 0.95
    assert [d["defense"] for d in summary["defenses"]] == [
        "detection", "adversarial-training", "distillation",
    ]  # fmt: skip

    # Defenses are evaluated against the model the baseline attacked, and no other.
    other = tmp_path / "other.safetensors"
    assert main(["-q", "train", *common, "--epochs", "1", "--seed", "1", "--out", str(other)]) == 0
    wrong = ["defend", "adv-train", "--baseline", str(baseline), *common, "--model", str(other)]
    assert main([*wrong, "--out", str(tmp_path / "x")]) == 2
    assert "attacked another model" in capsys.readouterr().err
    assert main(["report", str(baseline), "--no-samples", "--defenses", str(tmp_path)]) == 2
    assert "no defense results here" in capsys.readouterr().err


def test_adv_train_takes_one_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sources = ["--from-campaign", str(tmp_path / "pool"), "--from-gan", str(tmp_path / "gan")]
    command = ["defend", "adv-train", "--baseline", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*command, *sources]) == 2
    assert "give --from-campaign or --from-gan, not both" in capsys.readouterr().err
