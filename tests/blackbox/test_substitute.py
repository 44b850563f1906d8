"""The substitute attack's training (Papernot et al. 2017, Algorithm 1): queries as the
algorithm says, resumable exactly, within the budget, and its command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.blackbox import ModelOracle, QueryLedger
from jsma.blackbox._substitute import SubstituteSettings, train_substitute
from jsma.cli import main
from jsma.data import Dataset
from jsma.errors import OracleError
from jsma.models import CheckpointInfo, ModelRef, ModelSpec, save_checkpoint
from tests.userdata import write_npz

FAST = SubstituteSettings(initial=8, epochs=3, training_epochs=2, batch_size=8)


def tiny_oracle(dataset: Dataset) -> ModelOracle:
    torch.manual_seed(3)
    spec = ModelSpec("lenet", {"input_shape": dataset.input_shape, "num_classes": 4})
    return ModelOracle(spec.build(), identity="model:tiny")


def test_each_round_doubles_the_set_and_reservoir_sampling_adds_kappa(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    record = train_substitute(tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "a", FAST)
    assert [e.points for e in record.epochs] == [8, 16, 32]
    assert [e.queries for e in record.epochs] == [8, 16, 32]
    assert record.held_out == (8, len(tiny_dataset.test))
    assert all(0 <= e.accuracy <= 1 for e in record.epochs)
    reservoir = replace(FAST, epochs=5, reservoir=3, full_epochs=2)
    grown = train_substitute(tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "b", reservoir)
    assert [e.queries for e in grown.epochs] == [8, 16, 32, 35, 38]
    model, _ = ModelRef.parse(tmp_path / "b" / "substitute.safetensors").load()
    assert model(torch.zeros(1, *tiny_dataset.input_shape)).shape == (1, 4)
    stored = json.loads((tmp_path / "b" / "substitute.json").read_text())
    assert stored["kind"] == "blackbox-substitute"
    assert stored["format"] == 1
    assert stored["oracle"] == "model:tiny"


def test_the_step_flips_every_tau_rounds() -> None:
    settings = SubstituteSettings(step=0.1, flip_every=3)
    assert [settings.step_at(e) for e in range(7)] == [0.1] * 3 + [-0.1] * 3 + [0.1]
    assert SubstituteSettings(flip_every=None).step_at(5) == 0.1


def test_an_interrupted_or_extended_run_ends_as_an_uninterrupted_one(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    whole = train_substitute(tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "whole", FAST)

    def stop_after_first(epoch: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_substitute(
            tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "cut", FAST,
            on_epoch=stop_after_first,
        )  # fmt: skip
    train_substitute(
        tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "cut", replace(FAST, epochs=2)
    )
    counting = tiny_oracle(tiny_dataset)
    resumed = train_substitute(counting, tiny_dataset, tmp_path / "cut", FAST)
    assert [e.accuracy for e in resumed.epochs] == [e.accuracy for e in whole.epochs]
    assert [e.queries for e in resumed.epochs] == [e.queries for e in whole.epochs]
    a = ModelRef.parse(tmp_path / "whole" / "substitute.safetensors").load().model
    b = ModelRef.parse(tmp_path / "cut" / "substitute.safetensors").load().model
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    with QueryLedger(counting, tmp_path / "cut" / "queries.jqlog") as ledger:
        assert ledger.spent == 32


def test_the_budget_holds_and_other_settings_are_refused(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    record = train_substitute(
        tiny_oracle(tiny_dataset), tiny_dataset, tmp_path, replace(FAST, query_budget=20)
    )
    assert [e.queries for e in record.epochs] == [8, 16, 20]
    assert record.epochs[-1].points == 20
    with pytest.raises(OracleError, match="other settings, oracle or data"):
        train_substitute(tiny_oracle(tiny_dataset), tiny_dataset, tmp_path, replace(FAST, step=0.2))
    other = ModelOracle(tiny_oracle(tiny_dataset)._model, identity="model:other")
    with pytest.raises(OracleError, match="other settings, oracle or data"):
        train_substitute(other, tiny_dataset, tmp_path, replace(FAST, query_budget=20))


@pytest.fixture
def user_data(tmp_path: Path) -> Path:
    return write_npz(tmp_path / "data.npz", test=40)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(3)
    spec = ModelSpec("lenet", {"input_shape": (3, 16, 16), "num_classes": 4})
    path = tmp_path / "oracle.safetensors"
    save_checkpoint(path, spec.build(), CheckpointInfo(spec=spec))
    return path


def test_the_command_trains_goes_on_and_refuses_a_received_runs_code(
    tiny_checkpoint: Path, user_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    common = ["--data", str(user_data), "--initial", "8", "--cache-dir", str(tmp_path / "c")]
    assert main(["blackbox", "substitute", str(out), "--oracle", str(tiny_checkpoint),
                 "--epochs", "2", *common]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "     2       16       16" in printed
    assert "16 sent to the oracle in all" in printed
    assert main(["blackbox", "substitute", str(out), "--epochs", "3", *common]) == 0
    assert "     3       32       32" in capsys.readouterr().out
    # A received run whose record names code as its oracle: nothing is run.
    record = json.loads((out / "substitute.json").read_text())
    record["oracle"] = "fn:os:system"
    (out / "substitute.json").write_text(json.dumps(record))
    assert main(["blackbox", "substitute", str(out), "--epochs", "4", *common]) != 0
    assert "runs code or sends queries off this machine; give it again" in capsys.readouterr().err


def test_export_writes_an_onnx_file_an_oracle_answers_as_the_model(
    tiny_checkpoint: Path, user_data: Path, tmp_path: Path
) -> None:
    from jsma.blackbox import OracleRef
    from jsma.data import DataRef

    target = tmp_path / "tiny.onnx"
    arguments = ["--model", str(tiny_checkpoint), "--data", str(user_data)]
    assert main(["blackbox", "export", str(target), *arguments]) == 0
    inputs = DataRef.parse(str(user_data)).load().test.tensors()[0].numpy()
    exported = OracleRef.parse(target).open().answer(inputs)
    local = OracleRef.parse(tiny_checkpoint).open().answer(inputs)
    assert exported.labels.tolist() == local.labels.tolist()
    assert np.allclose(exported.scores, local.scores, atol=1e-5)  # type: ignore[arg-type]


def test_a_builders_substitute_is_built_only_when_named(
    user_data: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from jsma.blackbox import OracleRef, TransferAttack, attack_through_substitute
    from jsma.data import DataRef

    data = DataRef.parse(str(user_data)).load(cache_dir=tmp_path / "c")
    oracle = OracleRef.parse(tiny_checkpoint).open()
    builder = "tests.blackbox.substitutes:small_mlp(features=768)"
    settings = replace(FAST, architecture=builder)
    out = tmp_path / "run"
    first = train_substitute(oracle, data, out, replace(settings, epochs=2))
    resumed = train_substitute(oracle, data, out, settings)  # goes on from its weights
    assert [e.points for e in resumed.epochs] == [8, 16, 32]
    assert resumed.epochs[:2] == first.epochs
    with pytest.raises(OracleError, match="name it again"):
        attack_through_substitute(oracle, data, out, TransferAttack(samples=5))
    outcome = attack_through_substitute(
        oracle, data, out, TransferAttack(samples=5), substitute=builder
    )
    assert outcome.held_out == (8, 13)
