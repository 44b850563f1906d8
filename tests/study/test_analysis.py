from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from jsma.cli import main
from jsma.study import analyze
from jsma.study._analysis import Rate, fleiss_kappa, observer_kind
from jsma.study._store import StudyStore


def test_fleiss_kappa_of_the_textbook_example() -> None:
    # Fleiss (1971), as tabulated on Wikipedia: 10 subjects, 14 raters, 5 categories.
    counts = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])  # fmt: skip
    assert fleiss_kappa(counts) == pytest.approx(0.20993, abs=1e-5)
    # Perfect agreement on different categories is 1; an item rated once carries nothing.
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [1, 0]])) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(np.array([[1, 0]])))


def test_wilson_interval() -> None:
    rate, z = Rate.of(8, 10), 1.959963984540054
    centre = (0.8 + z**2 / 20) / (1 + z**2 / 10)
    half = z / (1 + z**2 / 10) * math.sqrt(0.8 * 0.2 / 10 + z**2 / 400)
    assert (rate.low, rate.high) == pytest.approx((centre - half, centre + half))
    assert math.isnan(Rate.of(0, 0).share)


def test_observer_kinds() -> None:
    assert observer_kind("PROLIFIC-1") == "human"
    assert observer_kind("machine:oracle:3") == "oracle"
    assert observer_kind("machine:knn:1") == "knn"


def _answer_everything(store: StudyStore, external: str, *, fail_attention: bool) -> None:
    """See the source digit in every image; follow the attention checks, or not."""
    participant = store.join(external)
    while (trial := store.next_trial(participant.token)) is not None:
        stimulus = trial.stimulus
        if stimulus.condition == "attention":
            is_digit = bool(stimulus.expected_is_digit) != fail_attention
            fallback = 3 if stimulus.expected_digit is None else stimulus.expected_digit
            digit = fallback if is_digit else None
        else:
            is_digit, digit = True, stimulus.source
        store.answer(participant.token, trial.position, is_digit=is_digit, digit=digit,
                     milliseconds=1000 + trial.position)  # fmt: skip


@pytest.mark.slow
def test_analysis_of_scripted_answers(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = StudyStore(study, trials_per_participant=8)
    _answer_everything(store, "P-1", fail_attention=False)
    _answer_everything(store, "P-2", fail_attention=True)  # excluded
    _answer_everything(store, "machine:oracle:1", fail_attention=False)
    analysis = analyze(study)
    assert analysis.participants == {"human": 1, "oracle": 1}
    assert analysis.excluded == {"human": 1, "oracle": 0}
    assert {line.condition for line in analysis.lines} >= {"increasing", "decreasing"}
    kept = {"human": "P-1", "oracle": "machine:oracle:1"}
    shown = {
        kind: [store.stimuli[r.stimulus] for r in store.answers() if r.external_id == external]
        for kind, external in kept.items()
    }
    for line in analysis.lines:
        if line.bucket != "all":
            continue
        expected = [s for s in shown[line.kind] if s.condition == line.condition]
        assert line.answers == len(expected)
        assert line.judged_digit.share == 1.0
        assert line.saw_source.share == 1.0  # these observers always name the source
        if line.condition == "benign":
            assert line.saw_target.n == 0
        else:
            assert line.saw_target.share == 0.0
            assert line.network_target.share == 1.0  # the network sees the target
    buckets = [line for line in analysis.lines if line.kind == "human" and line.bucket != "all"]
    assert sum(line.answers for line in buckets) == sum(
        1 for s in shown["human"] if s.condition in ("increasing", "decreasing")
    )
    assert main(["study", "analyze", str(study)]) == 0
    printed = capsys.readouterr().out
    assert "human: 1 participants kept, 1 excluded" in printed
    # Every share with both intervals: 100.0% [Wilson] (cluster bootstrap).
    assert re.search(r"100\.0% \[\d+-100\] \(100-100\)", printed)
    assert "cluster bootstrap 95%" in printed
    # One participant per kind: no stimulus is rated twice, so kappa is not defined.
    assert "Fleiss' kappa human/increasing: not defined" in printed
    assert "nan" not in printed
    stored = json.loads((study / "analysis" / "analysis.json").read_text())
    assert stored["excluded"] == {"human": 1, "oracle": 0}
    assert (study / "analysis" / "analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_report_reads_the_stored_analysis(study: Path, created: Path, tmp_path: Path) -> None:
    from jsma.errors import JSMAError
    from jsma.report import write_report
    from jsma.study import read_analysis, write_analysis

    campaigns = [created.parent / "runs" / "increasing", created.parent / "runs" / "decreasing"]
    store = StudyStore(study, trials_per_participant=8)
    _answer_everything(store, "P-1", fail_attention=False)
    _answer_everything(store, "machine:oracle:1", fail_attention=False)
    with pytest.raises(JSMAError, match="run `jsma study analyze STUDY --out DIR` first"):
        write_report(campaigns, tmp_path / "early", study=study)
    analysis = analyze(study)
    from jsma.settings import DISTORTION_BUCKETS
    from jsma.study._database import read_distortion_edges

    assert read_distortion_edges(study) == DISTORTION_BUCKETS  # stored when it was made
    write_analysis(analysis, study / "analysis")
    again = read_analysis(study / "analysis")
    assert again.participants == analysis.participants
    assert [line.saw_source.share for line in again.lines] == [
        line.saw_source.share for line in analysis.lines
    ]
    files = write_report(campaigns, tmp_path / "report", study=study)
    page = files.html.read_text()
    assert "<h2>Perception study</h2>" in page
    assert "machine observer: oracle" in page
    assert "human: 1 kept" not in page  # people are called people
    assert "people: 1 kept, 0 excluded" in page
    summary = json.loads(files.summary.read_text())
    assert summary["study"]["participants"] == {"human": 1, "oracle": 1}
    (study / "analysis" / "analysis.json").write_text("{}")
    with pytest.raises(JSMAError, match="not a valid study-analysis record"):
        read_analysis(study / "analysis")

    # The figure plots each line's shares; the network's bar carries no interval, and
    # the legend sits below the panels instead of over the bars.
    from jsma.study._figures import analysis_figure

    figure = analysis_figure(analysis)
    assert len(figure.legends) == 1
    assert all(axes.get_legend() is None for axes in figure.axes)
    for axes in figure.axes:
        kind = "human" if axes.get_title().startswith("people") else "oracle"
        lines = [line for line in analysis.lines if line.kind == kind and line.bucket == "all"]
        bars = [c for c in axes.containers if hasattr(c, "errorbar")]
        assert [b.get_label() for b in bars] == [
            "judged a digit", "saw the source class", "saw the target class", "network: the target",
        ]  # fmt: skip
        for container, field in zip(
            bars, ("judged_digit", "saw_source", "saw_target"), strict=False
        ):
            heights = [patch.get_height() for patch in container]
            expected = [getattr(line, field).share * 100 for line in lines]
            assert heights == pytest.approx(expected, nan_ok=True)
            assert container.errorbar is not None
        assert bars[3].errorbar is None


def _simulated_study(
    rng: np.random.Generator, *, people: int, images: int, seen: int, mean: float, spread: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Answers of a crossed random-effects study: participant p says "source" on stimulus s
    with probability logistic(mean + u_p + v_s), u and v normal with sd `spread`; each
    participant rates `seen` stimuli drawn at random (the study's own sparse design)."""
    u = rng.normal(0, spread, people)
    v = rng.normal(0, spread, images)
    who = np.repeat(np.arange(people), seen)
    what = np.concatenate([rng.choice(images, seen, replace=False) for _ in range(people)])
    chance = 1 / (1 + np.exp(-(mean + u[who] + v[what])))
    return rng.random(len(who)) < chance, who, what


def test_the_cluster_bootstrap_covers_the_true_share_where_wilson_does_not() -> None:
    from jsma.study._analysis import crossed_bootstrap_interval

    mean, spread = 1.0, 1.0
    # The true share over new participants and new stimuli: E[logistic(mean + z)],
    # z normal with sd spread * sqrt(2), by Gauss-Hermite quadrature.
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    truth = float((weights / (1 + np.exp(-(mean + spread * np.sqrt(2) * nodes)))).sum())
    truth /= float(weights.sum())
    rng = np.random.default_rng(7)
    covered = {"cluster": 0, "wilson": 0}
    studies = 150
    for number in range(studies):
        outcomes, who, what = _simulated_study(
            rng, people=40, images=60, seen=30, mean=mean, spread=spread
        )
        low, high = crossed_bootstrap_interval(outcomes, who, what, replicates=400, seed=number)
        covered["cluster"] += low <= truth <= high
        wilson = Rate.of(int(outcomes.sum()), len(outcomes))
        covered["wilson"] += wilson.low <= truth <= wilson.high
    coverage = {name: count / studies for name, count in covered.items()}
    assert 0.90 <= coverage["cluster"] <= 0.995, coverage
    assert coverage["wilson"] < 0.75, coverage  # answers are not independent


def test_a_rate_with_clusters_keeps_the_wilson_interval() -> None:
    outcomes = np.array([True, True, False, True, False, True])
    rate = Rate.clustered(outcomes, np.array([1, 1, 2, 2, 3, 3]), np.array([5, 6, 5, 6, 5, 6]))
    wilson = Rate.of(4, 6)
    assert (rate.k, rate.n, rate.low, rate.high) == (4, 6, wilson.low, wilson.high)
    assert 0 <= rate.cluster_low <= rate.share <= rate.cluster_high <= 1
    same = Rate.clustered(outcomes, np.array([1, 1, 2, 2, 3, 3]), np.array([5, 6, 5, 6, 5, 6]))
    assert same == rate  # seeded: the analysis is the same on every run


def test_a_study_of_0_1_0_opens_migrates_and_analyses(tmp_path: Path) -> None:
    import shutil

    fixture = Path(__file__).parents[1] / "fixtures" / "v0.1.0"
    study = Path(shutil.copytree(fixture / "study", tmp_path / "study"))
    token = (fixture / "session-token.txt").read_text()
    with sqlite3.connect(study / "study.sqlite") as connection:
        assert token in {row[0] for row in connection.execute("SELECT token FROM participants")}
    store = StudyStore(study, trials_per_participant=8)
    trial = store.next_trial(token)  # the session of 0.1.0 still works
    assert trial is not None
    assert trial.position == 6
    with sqlite3.connect(study / "study.sqlite") as connection:
        stored = {row[0] for row in connection.execute("SELECT token FROM participants")}
    assert token not in stored  # and its plain token is gone
    assert study.stat().st_mode & 0o777 == 0o700
    assert (study / "study.sqlite").stat().st_mode & 0o777 == 0o600
    analysis = analyze(study)
    assert analysis.participants["human"] + analysis.excluded["human"] == 2
    assert len(store.answers()) == 9  # 3 and 6 answers, as 0.1.0 stored them
    from jsma.study._analysis import read_analysis

    old = read_analysis(study / "analysis")  # the analysis 0.1.0 wrote: no cluster intervals
    assert old.participants == analysis.participants
    # Its stimuli were balanced over the buckets of its time, and it is analysed by them.
    from jsma.study._database import read_distortion_edges

    assert read_distortion_edges(study) == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 14.5)
    assert [line.bucket for line in old.lines] == [line.bucket for line in analysis.lines]
    assert math.isnan(old.lines[0].saw_source.cluster_low)
