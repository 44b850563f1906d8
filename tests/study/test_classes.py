"""Studies of two and of a hundred classes through the server (issue 34, item 18): the
attention checks name a class the study offers, so oracle observers pass them and the
analysis keeps every one (a two-class study asked for class 2 and excluded everyone)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.campaign import AttackSettings, Campaign, CampaignSpec
from jsma.data import load_data
from jsma.models import ModelSpec
from jsma.report import write_report
from jsma.study import analyze, create_study, read_stimuli, write_analysis
from jsma.study._design import attention_checks
from jsma.study.simulate import oracle_observer, simulate


@pytest.mark.slow
@pytest.mark.parametrize(("classes", "names"), [(2, ("cat", "dog")), (100, None)])
def test_attention_checks_offer_the_studys_classes(
    classes: int, names: tuple[str, ...] | None, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    count = max(2 * classes, 40)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        arrays[f"x_{split}"] = rng.integers(0, 256, (count, 1, 16, 16), dtype=np.uint8)
        arrays[f"y_{split}"] = np.arange(count) % classes
    if names is not None:
        arrays["class_names"] = np.array(names)
    np.savez(tmp_path / "data.npz", **arrays)  # type: ignore[arg-type]
    data = load_data(tmp_path / "data.npz")
    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": classes}).build()
    campaigns = []
    for theta in (1.0, -1.0):
        spec = CampaignSpec(
            samples=6, unit_size=6, targets="random", attack=AttackSettings(theta=theta)
        )
        campaigns.append(tmp_path / f"theta{theta:+.0f}")
        Campaign.run(campaigns[-1], spec, model, data)
    study = tmp_path / "study"
    create_study(campaigns, data, study, per_condition=2, allow_short=True)

    checks = [s for s in read_stimuli(study) if s.condition == "attention"]
    asked = {s.expected_digit for s in checks} - {None}
    assert asked <= set(range(classes))
    prompts = [s.prompt or "" for s in checks]
    assert prompts == [prompt for prompt, _, _ in attention_checks(classes, names)]
    if names is not None:
        assert "then choose dog." in prompts[1]

    result = simulate(study, "oracle", observe=oracle_observer, participants=2,
                      concurrency=2, trials_per_participant=4)  # fmt: skip
    assert result.answers_stored == 8

    # An observer that says "class 0" to everything passes the checks only by reading them.
    def always_zero(image: np.ndarray, source: int | None) -> tuple[bool, int | None]:
        return True, 0

    simulate(study, "zero", observe=always_zero, participants=1, concurrency=1,
             trials_per_participant=4)  # fmt: skip
    analysis = analyze(study)
    assert analysis.participants == {"oracle": 2, "zero": 1}
    assert analysis.excluded == {"oracle": 0, "zero": 0}
    # The report speaks the study's words and quotes the cluster bootstrap first.
    write_analysis(analysis, study / "analysis")
    page = write_report(campaigns, tmp_path / "report", data, study=study).html.read_text()
    judged = "judged a digit" if names is None else "judged one of the classes"
    assert f"<th>{judged}</th>" in page
    assert re.search(r"\(\d+%-\d+%; Wilson \d+%-\d+%\)", page)
