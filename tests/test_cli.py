from __future__ import annotations

import re
from pathlib import Path

import pytest

from jsma.campaign import Campaign
from jsma.cli import main
from jsma.data import Dataset
from tests.conftest import write_idx_directory


def test_data_info(idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 120 training images cannot give 10,000 validation ones: a clear error.
    code = main(["data", "info", "--data", f"idx:{idx_dir}"])
    assert code == 2
    assert "cannot hold out 10000 validation images" in capsys.readouterr().err


@pytest.mark.slow
def test_train_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import NUM_CLASSES, write_idx_directory

    # 10,000 validation images are held out, so make just over that many.
    data = write_idx_directory(tmp_path / "idx", train=10_100, test=50)
    common = ["--data", f"idx:{data}", "--cache-dir", str(tmp_path / "cache")]
    assert main(["data", "info", *common]) == 0
    out = capsys.readouterr().out
    assert "train     100" in out
    assert "validation   10000" in out
    checkpoint = tmp_path / "model.safetensors"
    assert main(["-q", "train", *common, "--epochs", "1", "--out", str(checkpoint)]) == 0
    assert checkpoint.is_file()
    assert f"checkpoint: {checkpoint}" in capsys.readouterr().out
    assert main(["eval", *common, "--model", str(checkpoint), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "test: accuracy" in out
    assert "confusion matrix on test" in out

    model = ["--model", str(checkpoint)]
    single = tmp_path / "single.png"
    target = "2"  # sample 0 of the synthetic test split has label 0
    assert (
        main(["attack", *common, *model, "--index", "0", "--target", target, "--out", str(single)])
        == 0
    )
    out = capsys.readouterr().out
    assert "source 0 -> target 2:" in out
    assert single.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = tmp_path / "grid.png"
    assert main(["attack", *common, *model, "--all-targets", "--out", str(grid)]) == 0
    assert capsys.readouterr().out.count("source 0 -> target") == NUM_CLASSES - 1
    assert grid.is_file()
    assert main(["attack", *common, *model, "--target", "0"]) == 2
    assert "equals the source class" in capsys.readouterr().err
    assert main(["attack", *common, *model, "--index", "99"]) == 2
    assert "--index 99 is outside the test split" in capsys.readouterr().err
    assert main(["attack", *common, *model, "--target", "11"]) == 2
    assert f"--target 11 is not a class of the data (0 to {NUM_CLASSES - 1})" in (
        capsys.readouterr().err
    )


def test_model_errors_exit_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "eval",
            "--model",
            str(tmp_path / "absent.safetensors"),
            "--data",
            f"idx:{tmp_path}",
        ]
    )
    assert code == 2
    assert "file not found" in capsys.readouterr().err


def test_the_data_options_that_went_say_what_replaced_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for options, replaced in (
        (["--data-dir", "/somewhere"], "--data-dir is gone: give --data idx:DIR"),
        (["--source", "download"], "--source is gone: give --data mnist:download"),
    ):
        with pytest.raises(SystemExit):
            main(["data", "info", *options])
        assert replaced in capsys.readouterr().err
    assert main(["data", "info", "--data", "idx:/nowhere"]) == 2
    assert "/nowhere is not a directory of IDX files" in capsys.readouterr().err
    assert main(["replicate", "--data", "images.npz"]) == 2
    assert "this command works on MNIST only" in capsys.readouterr().err


def _replicate_command(tmp_path: Path) -> tuple[list[str], Path]:
    """`jsma replicate` on synthetic data (10,000 validation images held out) with an
    untrained checkpoint, and the output directory."""
    import torch

    from jsma.models import CheckpointInfo, ModelSpec, save_checkpoint
    from tests.conftest import NUM_CLASSES, write_idx_directory

    data = write_idx_directory(tmp_path / "idx", train=10_010, test=20)
    spec = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": NUM_CLASSES})
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, spec.build(), CheckpointInfo(spec=spec, recipe={"name": "test"}))
    out = tmp_path / "replicate"
    args = ["replicate", "--data", f"idx:{data}", "--model", str(checkpoint)]
    return args, out


@pytest.mark.slow
def test_replicate_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, out = _replicate_command(tmp_path)
    assert main(["-q", *args, "--samples", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "increasing (theta = +1" in printed
    assert "decreasing (theta = -1" in printed
    # Our measured line, then the paper's beside it, for each direction.
    from jsma.campaign import Campaign
    from jsma.metrics import CampaignArrays, results_by_split

    campaigns = (
        ("increasing", "97.10%"), ("decreasing", "64.70%"), ("decreasing-paper-domain", "64.70%")
    )  # fmt: skip
    for name, paper in campaigns:
        (line,) = results_by_split(CampaignArrays.from_table(Campaign.open(out / name).results()))
        ours = f"{'test':>12} {line.attacks:>8} {line.success_rate:>9.2%}"
        assert re.search(rf"{re.escape(ours)}.*\n\s+paper\s+{paper}", printed), printed
    assert "the paper's search domain as written" in printed
    assert f"results: {out}" in printed
    domains = {
        name: Campaign.open(out / name).manifest.spec.attack.search_domain for name, _ in campaigns
    }
    assert domains == {
        "increasing": "unsaturated", "decreasing": "unsaturated", "decreasing-paper-domain": "all"
    }  # fmt: skip


@pytest.mark.slow
def test_replicate_without_the_paper_domain(tmp_path: Path) -> None:
    args, out = _replicate_command(tmp_path)
    assert main(["-q", *args, "--samples", "2", "--no-paper-domain", "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["decreasing", "increasing", "report"]


def test_threads_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    with pytest.raises(SystemExit):
        main(["--threads", "0", "data", "info"])
    assert "--threads: must be at least 1" in capsys.readouterr().err
    chosen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    data = write_idx_directory(tmp_path / "idx", train=10_010)
    assert main(["--threads", "1", "data", "info", "--data", f"idx:{data}"]) == 0
    assert chosen == [1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "output"), [([], "probabilities"), (["--output", "logits"], "logits")]
)
def test_replicate_output(tmp_path: Path, extra: list[str], output: str) -> None:
    import json

    args, out = _replicate_command(tmp_path)
    assert main(["-q", *args, "--samples", "2", *extra, "--out", str(out)]) == 0
    for variant in ("increasing", "decreasing"):
        manifest = json.loads((out / variant / "campaign.json").read_text())
        assert manifest["spec"]["attack"]["output"] == output


def test_replicate_defaults_to_the_setting_closest_to_the_paper() -> None:
    from jsma.cli import build_parser
    from jsma.cli._common import model_reference

    args = build_parser().parse_args(["replicate"])
    assert (args.model, args.output) == (None, "probabilities")
    assert str(model_reference(args)) == "paper"
    # Other commands keep the fast default model.
    assert str(model_reference(build_parser().parse_args(["eval"]))) == "default"


def test_library_errors_are_one_line_and_bugs_are_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import jsma.cli.campaign as campaign_commands

    # A campaign directory that is a file: one line naming it, exit code 2.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file")
    assert main(["campaign", "status", str(blocked)]) == 2
    err = capsys.readouterr().err
    assert err == f"jsma: error: {blocked}: not a directory, so not a campaign\n"

    # A bug (any exception that is not a JSMAError) is not dressed up as a user error.
    def broken(args):  # type: ignore[no-untyped-def]
        raise ValueError("a bug")

    monkeypatch.setattr(campaign_commands, "_status", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["campaign", "status", str(blocked)])


def test_help_and_version_import_no_heavy_library() -> None:
    import subprocess
    import sys

    heavy = ("torch", "numpy", "matplotlib", "scipy", "pyarrow", "safetensors")
    script = (
        "import sys\n"
        "from jsma.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    for flag in ("--help", "--version"):
        out = subprocess.run(
            [sys.executable, "-c", script, flag], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().splitlines()[-1] == "[]", out


def test_full_is_the_papers_campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--full`: 10,000 samples of each of the three sets (270,000 attacks on MNIST), not
    every sample (the training set has 50,000)."""
    import jsma.replicate as replicate_module

    asked: dict[str, object] = {}

    def capture(*args, **kwargs):  # type: ignore[no-untyped-def]
        asked.update(kwargs, directory=args[2])
        raise _Stop

    monkeypatch.setattr(replicate_module, "replicate", capture)
    args, _ = _replicate_command(tmp_path)
    with pytest.raises(_Stop):
        main(["-q", *args, "--full", "--cache-dir", str(tmp_path / "cache")])
    assert (asked["splits"], asked["samples"]) == (("train", "validation", "test"), 10_000)
    # Named after the model: a checkpoint's run never mixes with the paper recipe's.
    directory = asked["directory"]
    assert isinstance(directory, Path)
    assert directory.parent == tmp_path / "cache" / "runs"
    assert re.fullmatch(r"replicate-model-[0-9a-f]{12}-full-probabilities", directory.name)


class _Stop(Exception):
    pass


def test_a_closed_pipe_ends_quietly(tiny_dataset: Dataset, tmp_path: Path) -> None:
    # `jsma campaign status DIR | head -1`: the reader leaves early; no traceback.
    import subprocess
    import sys

    import torch

    from jsma.campaign import Campaign, CampaignSpec
    from jsma.models import ModelSpec
    from tests.conftest import NUM_CLASSES, SIDE

    spec = ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES})
    torch.manual_seed(0)
    Campaign.run(tmp_path / "run", CampaignSpec(samples=2), spec.build(), tiny_dataset)
    process = subprocess.Popen(
        [sys.executable, "-m", "jsma.cli", "campaign", "status", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()  # before jsma writes a byte
    _, error = process.communicate(timeout=60)
    assert error == b""
    assert process.returncode == 1


def test_every_option_says_what_it_is_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from jsma.cli._main import _commands, build_parser

    parser = build_parser()
    problems = []
    for command in [parser, *_commands(parser)]:
        formatter = command._get_formatter()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help:
                problems.append(f"{command.prog} {action.dest}: no help")
                continue
            shown = action.default not in (None, False, argparse.SUPPRESS)
            if action.option_strings and shown:
                text = formatter._format_action(action)
                if "default" not in text:
                    problems.append(f"{command.prog} {action.dest}: default not shown")
    assert not problems, problems
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = " ".join(capsys.readouterr().out.split())  # help wraps lines
    assert "create, settings, serve, simulate, analyze" in listed


def test_threads_after_the_command_and_no_abbreviations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from jsma.cli._main import build_parser

    parser = build_parser()
    assert parser.parse_args(["campaign", "status", "x", "--threads", "2"]).threads == 2
    assert parser.parse_args(["--threads", "3", "campaign", "status", "x"]).threads == 3
    assert parser.parse_args(["campaign", "status", "x"]).threads is None
    for wrong in (
        ["data", "info", "--dat", "somewhere"],  # an abbreviation of --data
        ["campaign", "status", "x", "--threads", "0"],
        ["study", "serve", "s", "--port", "70000"],
        ["replicate", "--samples", "0"],
    ):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(wrong)
        assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "unrecognized arguments: --dat somewhere" in error
    assert "--port: must be 0 to 65535, got 70000" in error
    assert "--samples: must be at least 1, got 0" in error


@pytest.mark.slow
def test_a_model_that_does_not_fit_the_data_is_named_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jsma.models import ModelSpec, save_checkpoint
    from jsma.models._checkpoint import CheckpointInfo
    from tests.conftest import NUM_CLASSES, SIDE

    data = write_idx_directory(tmp_path / "idx", train=10_010, test=8)
    common = ["--data", f"idx:{data}", "--cache-dir", str(tmp_path / "cache")]
    models = {
        "channels": ModelSpec("lenet", {"input_shape": (3, SIDE, SIDE), "num_classes": 4}),
        "classes": ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": 5}),
        "fits": ModelSpec("lenet", {"input_shape": (1, SIDE, SIDE), "num_classes": NUM_CLASSES}),
    }
    for name, spec in models.items():
        save_checkpoint(tmp_path / f"{name}.safetensors", spec.build(), CheckpointInfo(spec=spec))
    run = ["campaign", "run", str(tmp_path / "run"), *common, "--samples", "2"]
    run.append("--allow-weak-model")  # untrained LeNets
    assert main([*run, "--model", str(tmp_path / "channels.safetensors")]) == 2
    error = capsys.readouterr().err
    assert f"does not take this data's inputs, of shape (1, {SIDE}, {SIDE})" in error
    assert not (tmp_path / "run" / "campaign.json").exists()  # nothing written
    assert main([*run, "--model", str(tmp_path / "fits.safetensors")]) == 0
    capsys.readouterr()
    transfer = ["transfer", str(tmp_path / "run"), *common, "--models"]
    assert main([*transfer, f"five={tmp_path / 'classes.safetensors'}"]) == 2
    error = capsys.readouterr().err
    assert f"--models five={tmp_path / 'classes.safetensors'}: " in error
    assert "gives 5 class scores, the data has 4 classes" in error


def test_outputs_are_checked_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("not a directory")
    for command in (
        ["defend", "adv-train", "--baseline", "b", "--out", str(a_file)],
        ["transfer", "c", "--models", "paper", "--out", str(a_file)],
        ["transfer", "c", "--models", "paper", "--cache-dir", str(a_file)],
        ["gan", "train", "--out", str(a_file / "under")],
        ["attack", "--out", str(tmp_path)],
    ):
        with pytest.raises(SystemExit) as exited:
            main(command)
        assert exited.value.code == 2
    errors = capsys.readouterr().err
    assert errors.count("exists and is not a directory") == 3
    assert f"cannot be made there ({a_file} is a file)" in errors
    assert "is a directory, not a file name" in errors


@pytest.mark.slow
def test_campaigns_take_and_record_the_saliency_and_search_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, _ = _replicate_command(tmp_path)
    data_and_model = args[1:]
    run = ["-q", "campaign", "run", str(tmp_path / "run"), *data_and_model, "--samples", "2"]
    run.append("--allow-weak-model")  # an untrained LeNet
    family = ["--theta", "-1", "--saliency", "tjsma", "--search-domain", "all"]
    assert main([*run, *family]) == 0
    settings = Campaign.open(tmp_path / "run").manifest.spec.attack
    assert (settings.saliency, settings.search_domain, settings.theta) == ("tjsma", "all", -1.0)
    capsys.readouterr()
    # Asking the same directory for another saliency names the difference.
    assert main([*run, "--theta", "-1", "--saliency", "wjsma", "--search-domain", "all"]) == 2
    assert "saliency" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*run, "--saliency", "xjsma"])
    assert "invalid choice: 'xjsma'" in capsys.readouterr().err
