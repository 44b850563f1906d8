from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from jsma.campaign import Campaign
from jsma.cli import main
from jsma.data import Dataset
from jsma.defenses import evaluate_detection
from jsma.defenses._detection import write_detection
from jsma.errors import JSMAError, StorageError
from jsma.metrics import CampaignArrays, results_by_split, success_matrix
from jsma.report import write_report
from jsma.toy import run_toy
from tests.conftest import NUM_CLASSES, increasing_and_decreasing


@pytest.fixture
def campaigns(tiny_dataset: Dataset, tmp_path: Path) -> list[Path]:
    return increasing_and_decreasing(tiny_dataset, tmp_path, samples=8, unit_size=4)


def _strict(value: str) -> object:
    raise ValueError(f"not strict JSON: {value}")


@pytest.mark.slow
def test_report_files(campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path) -> None:
    files = write_report(campaigns, tmp_path / "report", tiny_dataset)
    page = files.html.read_text()
    # Self-contained: every figure is embedded, nothing is fetched.
    images = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(images) == len(files.figures) == 2 * 5 + 2
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", page)
    for path in files.figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Each campaign's measured line, then the paper's line beside it.
    for directory, paper in zip(campaigns, ("97.10%", "64.70%"), strict=True):
        (line,) = results_by_split(CampaignArrays.from_table(Campaign.open(directory).results()))
        ours = f"<td class='name'>test</td><td>{line.attacks}</td><td>{line.success_rate:.2%}</td>"
        paper_row = rf"{re.escape(ours)}.*?</tr>\s*<tr class='paper'>.*?<td>{paper}</td>"
        assert re.search(paper_row, page, re.S)
    # What was attacked, in words, and where the paper's setting is.
    assert "Attacked: a lenet given as a module (fingerprint " in page
    assert "attacked on its logits." in page
    assert "closest to the paper's figures is what <code>jsma replicate</code>" in page
    # Every figure drawn here is also a vector PDF; stored PNGs stay PNGs.
    for path in files.figures:
        assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    # The configuration: what differs between the two campaigns, then what they share.
    differs = page[page.index("What differs between the campaigns") : page.index("What they share")]
    assert "<td>spec.attack.theta</td><td>1.0</td><td>-1.0</td>" in differs
    assert "spec.unit_size" not in differs

    summary = json.loads(files.summary.read_text(), parse_constant=_strict)["campaigns"]
    assert [entry["direction"] for entry in summary] == ["increasing", "decreasing"]
    for entry, directory in zip(summary, campaigns, strict=True):
        arrays = CampaignArrays.from_table(Campaign.open(directory).results())
        (line,) = results_by_split(arrays)
        assert entry["results"][0]["success_rate"] == pytest.approx(line.success_rate)
        expected = success_matrix(arrays, NUM_CLASSES)
        for row, values in zip(entry["matrices"]["success"], expected, strict=True):
            assert row == [None if v != v else pytest.approx(v) for v in values]
        assert len(entry["success_rate_by_budget"]) == len(entry["budgets"])


@pytest.mark.slow
def test_report_without_data(campaigns: list[Path], tmp_path: Path) -> None:
    files = write_report(campaigns[:1], tmp_path / "report")
    assert len(files.figures) == 4 + 2  # no grid of samples without the data


@pytest.mark.slow
def test_dollar_signs_in_names_stay_text(campaigns: list[Path], tmp_path: Path) -> None:
    # matplotlib would read `$\\frac$` as an (invalid) formula and fail the whole report.
    named = campaigns[0].rename(campaigns[0].parent / "theta $\\frac$ one")
    files = write_report([named, campaigns[1]], tmp_path / "report")
    assert "theta $\\frac$ one" in files.html.read_text()


@pytest.mark.slow
def test_blocked_report_directory_fails_before_reading(
    campaigns: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jsma.report._writer as writer

    out = tmp_path / "report"
    out.mkdir()
    (out / "figures").write_text("in the way")  # not writable, even for root
    monkeypatch.setattr(writer, "summarise", lambda _: pytest.fail("read before the check"))
    with pytest.raises(StorageError, match="figures: results cannot be written there"):
        write_report(campaigns, out)


@pytest.mark.slow
def test_report_cli(campaigns: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", *map(str, campaigns), "--no-samples"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (campaigns[0] / "report" / "report.html").is_file()


def _chromium() -> str:
    """The Chromium that scripts/test installs; failing, not skipping, when it is missing."""
    path = os.environ.get("JSMA_CHROMIUM") or shutil.which("chromium")
    if path is None:
        pytest.fail("Chromium is needed for the browser test: apt-get install chromium")
    return path


@dataclasses.dataclass(frozen=True)
class RenderedPage:
    """What Chromium saw of a page: its title, images (and how many failed to load),
    its text, and every console error or uncaught exception."""

    title: str
    images: int
    broken: int
    text: str
    problems: list[str]


def render_in_chromium(html: Path, *, screenshot: Path | None = None) -> RenderedPage:
    """Load `html` in Chromium, offline, and report what it showed."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium(),
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(html.as_uri(), wait_until="load")
        rendered = RenderedPage(
            title=page.title(),
            images=page.evaluate("document.images.length"),
            broken=page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                ".length"
            ),
            text=page.inner_text("body"),
            problems=problems,
        )
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return rendered


@pytest.mark.browser
def test_report_renders_in_chromium(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    detection = tmp_path / "detection"
    write_detection(detection, [evaluate_detection(c, tiny_dataset) for c in campaigns])
    run_toy(tmp_path / "toy")
    files = write_report(
        campaigns, tmp_path / "report", tiny_dataset, toy=tmp_path / "toy", defenses=[detection]
    )
    page = render_in_chromium(files.html, screenshot=tmp_path / "report.png")
    title, images, broken, problems = page.title, page.images, page.broken, page.problems
    assert title == "JSMA: the paper's evaluation"
    assert images == len(files.figures)
    assert broken == 0
    assert problems == []


@pytest.mark.slow
def test_gan_and_transfer_sections(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    import torch

    from jsma.gan import GanRecipe, GanSpec, run_gan
    from jsma.models import ModelSpec
    from jsma.transfer import transfer, write_transfer
    from tests.conftest import SIDE

    torch.manual_seed(0)
    spec = ModelSpec("mlp", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    judge = spec.build().eval()
    gan = run_gan(
        tiny_dataset, judge, tmp_path / "gan", GanRecipe(epochs=1, batch_size=16),
        spec=GanSpec((1, SIDE, SIDE), NUM_CLASSES, width=4), judge_name="an MLP", samples=20,
    )  # fmt: skip
    moved = transfer({"increasing": campaigns[0]}, {"mlp": judge}, tiny_dataset)
    write_transfer(tmp_path / "transfer", moved)
    files = write_report(
        campaigns[:1], tmp_path / "report", gan=tmp_path / "gan", transfer=tmp_path / "transfer"
    )
    page = files.html.read_text()
    assert "<h2>Generated digits (DCGAN)</h2>" in page
    assert f"labels {gan.quality.as_asked:.1%} of 20 generated digits" in page
    assert "<h2>Transferability</h2>" in page
    assert f"<td>{moved.rows[0].as_target[-1]:.2%}</td>" in page
    assert {p.name for p in files.figures} >= {"gan-samples.png", "transfer.png"}
    summary = json.loads(files.summary.read_text())
    assert summary["transfer"]["rows"][0]["evaluated_on"] == "mlp"
    assert summary["gan"]["quality"]["samples"] == 20
    (tmp_path / "gan" / "quality.json").unlink()
    with pytest.raises(JSMAError, match="no GAN run here"):
        write_report(campaigns[:1], tmp_path / "report", gan=tmp_path / "gan")


class _CountingFolder:
    """A campaign directory that counts what is read from it, by file name."""

    def __init__(self, path: Path) -> None:
        from collections import Counter

        from jsma.campaign.location import LocalFolder

        self.inner = LocalFolder(path)
        self.reads: Counter[str] = Counter()

    @property
    def name(self) -> str:
        return self.inner.name

    def __str__(self) -> str:
        return str(self.inner)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def read(self, name: str) -> bytes | None:
        self.reads[name] += 1
        return self.inner.read(name)

    def open(self, name: str) -> pa.NativeFile:
        self.reads[name] += 1
        return self.inner.open(name)

    def write(self, name: str, data: bytes) -> None:
        raise AssertionError(f"a report wrote {name} into a campaign")

    def temporaries(self, folder: str) -> list[str]:
        return self.inner.temporaries(folder)

    def delete(self, name: str) -> None:
        raise AssertionError(f"a report deleted {name} from a campaign")

    def check(self) -> None:
        self.inner.check()

    def ensure_writable(self, *folders: str) -> None:
        self.inner.ensure_writable(*folders)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.lock()


@pytest.mark.slow
def test_writing_a_report_reads_each_file_once(
    campaigns: list[Path], tiny_dataset: Dataset, tmp_path: Path
) -> None:
    folders = [_CountingFolder(path) for path in campaigns]
    write_report(folders, tmp_path / "report", tiny_dataset)
    for folder, path in zip(folders, campaigns, strict=True):
        units = {f"units/{p.name}" for p in (path / "units").glob("*.parquet")}
        assert len(units) == 2
        assert dict(folder.reads) == {"campaign.json": 1, **dict.fromkeys(units, 1)}


def test_compared_panels_share_one_zero_anchored_scale(campaigns: list[Path]) -> None:
    from jsma.report import summarise
    from jsma.report._sections.campaigns import campaign_sections

    summaries = [summarise(c) for c in campaigns]
    sections = campaign_sections(summaries, None)
    for measure, values in (
        ("success", [s.success * 100 for s in summaries]),
        ("distortion", [s.distortion for s in summaries]),
        ("hardness", [s.hardness for s in summaries]),
        ("distance", [s.distance for s in summaries]),
    ):
        panels = [p for section in sections for p in section.pictures if p.stem.endswith(measure)]
        assert len(panels) == 2
        images = [_image(p.figure) for p in panels]
        scales = {image.get_clim() for image in images}
        assert len(scales) == 1  # the same scale in both campaigns' panels
        ((low, high),) = scales
        assert low == 0
        top = max(float(np.nanmax(v)) for v in values)
        assert high == (100 if measure == "success" else top)
        # What each panel plots is its campaign's matrix.
        for image, matrix in zip(images, values, strict=True):
            array = image.get_array()
            assert array is not None
            plotted = np.ma.masked_invalid(array)
            assert plotted.filled(np.nan) == pytest.approx(matrix, nan_ok=True)


def _image(figure: object) -> AxesImage:
    assert isinstance(figure, Figure)  # drawn here, not a stored PNG
    (image,) = figure.axes[0].images
    return image


def test_histogram_bins_follow_the_distortion_step(campaigns: list[Path]) -> None:
    from jsma.report import summarise
    from jsma.report._figures import distortion_bins, distortion_histogram

    summaries = [summarise(c) for c in campaigns]
    unit = 100 / (16 * 16)  # one feature of the tests' 1x16x16 images, in percent
    edges = distortion_bins(summaries)
    widths = np.diff(edges) / unit
    assert widths == pytest.approx(np.full(len(widths), 2.0))  # pairs: 2 features a step
    assert edges[0] == pytest.approx(-0.5 * unit)
    for summary in summaries:
        wins = summary.arrays.distortion[summary.arrays.success]
        assert wins.max() < edges[-1]
        offsets = (wins[:, None] - edges[None, :]) / unit
        assert np.abs(offsets).min() >= 0.5 - 1e-9  # no distortion on an edge
    figure = distortion_histogram(summaries)
    (axes,) = figure.axes
    for summary, container in zip(summaries, axes.containers, strict=True):
        heights = [patch.get_height() for patch in container]
        wins = summary.arrays.distortion[summary.arrays.success]
        assert heights == np.histogram(wins, edges)[0].tolist()


def test_the_budget_figure_plots_each_campaigns_curves(campaigns: list[Path]) -> None:
    from jsma.report import summarise
    from jsma.report._figures import budget_figure

    summaries = [summarise(c) for c in campaigns]
    success, distortion = budget_figure(summaries).axes
    assert success.get_ylim() == (0, 100)
    for summary, rate, spent in zip(summaries, success.lines, distortion.lines, strict=True):
        budgets = summary.curves.budgets * 100
        assert rate.get_xdata() == pytest.approx(budgets)
        assert rate.get_ydata() == pytest.approx(summary.curves.success_rate * 100)
        assert spent.get_ydata() == pytest.approx(
            summary.curves.mean_distortion_success, nan_ok=True
        )
        assert rate.get_label() == summary.label


def test_the_sample_grid_shows_the_rebuilt_samples(
    campaigns: list[Path], tiny_dataset: Dataset
) -> None:
    from jsma.campaign._samples import rebuilt_samples
    from jsma.metrics._core import sample_keys
    from jsma.report import summarise
    from jsma.report._figures import sample_grid

    summary = summarise(campaigns[0])
    figure = sample_grid(summary, tiny_dataset)
    assert figure is not None
    arrays = summary.arrays
    grid = np.array(figure.axes).reshape(-1, NUM_CLASSES)
    for row in grid:
        source = int(row[0].get_ylabel())
        first = next(
            int(r) for r in np.flatnonzero(arrays.source == source)
            if np.sum(sample_keys(arrays) == sample_keys(arrays)[r]) == NUM_CLASSES - 1
        )  # fmt: skip
        rows = np.flatnonzero(sample_keys(arrays) == sample_keys(arrays)[first])
        crafted, originals = rebuilt_samples(arrays, rows, tiny_dataset)
        for position, r in enumerate(rows):
            shown = np.asarray(row[int(arrays.target[r])].images[0].get_array())
            assert shown == pytest.approx(np.asarray(crafted[position][0]))
        assert np.asarray(row[source].images[0].get_array()) == pytest.approx(
            np.asarray(originals[0][0])
        )


def test_an_m_jsma_campaign_reports_both_directions(tiny_dataset: Dataset, tmp_path: Path) -> None:
    from tests.conftest import maximal_campaign

    maximal_campaign(tiny_dataset, tmp_path / "m-jsma")
    files = write_report([tmp_path / "m-jsma"], tmp_path / "report", tiny_dataset)
    (entry,) = json.loads(files.summary.read_text(), parse_constant=_strict)["campaigns"]
    assert entry["direction"] == "both"
    page = files.html.read_text()
    assert "m-jsma (both, theta = +1, M-JSMA)" in page
    assert "<tr class='paper'>" not in page  # the paper has no M-JSMA figure


@pytest.mark.slow
def test_paper_rows_only_beside_the_papers_setting_and_names_that_tell_attacks_apart(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    import torch

    from jsma.campaign import AttackSettings, Campaign, CampaignSpec
    from jsma.models import ModelSpec
    from jsma.settings import TargetRule

    torch.manual_seed(0)
    model = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": NUM_CLASSES}).build()
    runs = []
    cases: tuple[tuple[str, AttackSettings, TargetRule], ...] = (
        ("a/increasing", AttackSettings(), "all-others"),
        ("b/increasing", AttackSettings(saliency="wjsma"), "all-others"),
        ("c/increasing", AttackSettings(), "random"),
    )
    for folder, settings, targets in cases:
        spec = CampaignSpec(samples=4, unit_size=4, attack=settings, targets=targets)
        Campaign.run(tmp_path / folder, spec, model, tiny_dataset)
        runs.append(tmp_path / folder)
    files = write_report(runs, tmp_path / "report", tiny_dataset)
    page = files.html.read_text()
    assert page.count("<tr class='paper'>") == 1  # the paper's setting only
    assert page.count("Attacked: a lenet given as a module") == 1  # one setting: one sentence

    # A masked campaign beside them: each campaign's setting, by its label.
    from jsma.campaign import FeatureMask

    mask = FeatureMask.of(np.arange(256).reshape(1, 16, 16) % 2 == 0)
    masked = CampaignSpec(samples=4, unit_size=4, mask=mask)
    Campaign.run(tmp_path / "d/increasing", masked, model, tiny_dataset)
    page = write_report([*runs, tmp_path / "d/increasing"], tmp_path / "r2").html.read_text()
    assert "free to change (a mask)" in page
    assert page.count("increasing (theta = +1): a lenet given as a module") == 3
    assert "increasing (theta = +1, WJSMA)" in page
    names = {path.name for path in files.figures}
    assert {"0-increasing-success.png", "1-increasing-wjsma-success.png"} <= names


@pytest.mark.slow
def test_untargeted_campaigns_get_a_grid_and_failures_are_marked_without_colour(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    from jsma.campaign import Campaign
    from jsma.report._figures import sample_grid, untargeted_grid
    from jsma.report._summary import summarise
    from tests.conftest import maximal_campaign

    maximal_campaign(tiny_dataset, tmp_path / "m-jsma")
    files = write_report([tmp_path / "m-jsma"], tmp_path / "report", tiny_dataset)
    assert "0-m-jsma-m-jsma-samples.png" in {p.name for p in files.figures}
    summary = summarise(Campaign.open(tmp_path / "m-jsma"))
    figure = untargeted_grid(summary, tiny_dataset)
    assert figure is not None
    marks = [t for ax in figure.axes for t in ax.texts if t.get_text() == "✗"]
    shown = sorted({int(s) for s in summary.arrays.source})
    failed = [r for r in (int(np.flatnonzero(summary.arrays.source == s)[0]) for s in shown)
              if not summary.arrays.success[r]]  # fmt: skip
    assert len(marks) == len(failed)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title().startswith("→ ")]
    assert len(titles) == len(shown)

    targeted = increasing_and_decreasing(tiny_dataset, tmp_path, samples=8, unit_size=4)[0]
    summary = summarise(Campaign.open(targeted))
    grid = sample_grid(summary, tiny_dataset)
    assert grid is not None
    for ax in grid.axes:
        if any(t.get_text() == "✗" for t in ax.texts):  # no colour: black and white dashes
            assert {p.get_edgecolor() for p in ax.patches} == {(0, 0, 0, 1), (1, 1, 1, 1)}
