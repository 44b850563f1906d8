"""Sparse-RS against a brute-force check of its own invariants: never more than k pixels
changed, never more queries than the budget, success re-checked on the oracle; the same
searches whatever the batch, and a resume that asks nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.blackbox import (
    ModelOracle,
    QueryLedger,
    SparseRsSettings,
    run_sparse_rs,
    sparse_rs,
)
from jsma.cli import main
from jsma.data import Dataset
from jsma.errors import OracleError
from jsma.models import CheckpointInfo, ModelSpec, save_checkpoint
from tests.blackbox.conftest import CLASSES, queries, small_model
from tests.blackbox.oracle_functions import first_pixel_labels
from tests.blackbox.test_substitute import tiny_oracle
from tests.userdata import write_npz

BOUNDS = (0.0, 1.0)


def oracle() -> ModelOracle:
    return ModelOracle(small_model(), identity="model:small", max_batch=64)


def labels_of(inputs: np.ndarray) -> np.ndarray:
    return oracle().answer(inputs).labels


def check_invariants(inputs: np.ndarray, result: object, settings: SparseRsSettings,
                     goal: np.ndarray, targeted: bool) -> None:  # fmt: skip
    """Every claim of the result, checked by brute force against a fresh oracle."""
    adversarial = result.adversarial  # type: ignore[attr-defined]
    changed_pixels = (adversarial != inputs).any(axis=1).reshape(len(inputs), -1).sum(axis=1)
    assert (changed_pixels <= settings.pixels).all()
    assert np.array_equal(changed_pixels, result.pixels_changed)  # type: ignore[attr-defined]
    moved = adversarial[adversarial != inputs]
    assert np.isin(moved, BOUNDS).all()  # changed values sit on the bounds' vertices
    assert (result.queries <= settings.queries_per_sample).all()  # type: ignore[attr-defined]
    truth = oracle().answer(adversarial).labels
    fooled = truth == goal if targeted else truth != goal
    success = result.success  # type: ignore[attr-defined]
    assert np.array_equal(success, fooled & ~result.already_wrong)  # type: ignore[attr-defined]


def test_untargeted_search_keeps_its_invariants(tmp_path: Path) -> None:
    inputs = queries(12, seed=4)
    labels = labels_of(inputs)  # the oracle is right on all of them
    settings = SparseRsSettings(pixels=6, queries_per_sample=60)
    with QueryLedger(oracle(), tmp_path / "q.jqlog") as ledger:
        result = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS)
        assert ledger.spent <= 12 + 12 * 60
    assert not result.already_wrong.any()
    assert result.success.any()
    check_invariants(inputs, result, settings, labels, targeted=False)


def test_targeted_search_keeps_its_invariants(tmp_path: Path) -> None:
    inputs = queries(8, seed=5)
    labels = labels_of(inputs)
    targets = (labels + 1) % CLASSES
    settings = SparseRsSettings(pixels=10, queries_per_sample=80, alpha_init=0.1)
    with QueryLedger(oracle(), tmp_path / "q.jqlog") as ledger:
        result = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS, targets=targets)
    check_invariants(inputs, result, settings, targets, targeted=True)


def test_a_sample_searches_alike_in_any_batch_and_a_rerun_asks_nothing(tmp_path: Path) -> None:
    inputs = queries(10, seed=6)
    labels = labels_of(inputs)
    settings = SparseRsSettings(pixels=5, queries_per_sample=40)
    with QueryLedger(oracle(), tmp_path / "all.jqlog") as ledger:
        whole = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS)
        spent = ledger.spent
        again = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS)
        assert ledger.spent == spent
    assert np.array_equal(again.adversarial, whole.adversarial)
    with QueryLedger(oracle(), tmp_path / "part.jqlog") as ledger:
        part = sparse_rs(ledger, inputs[3:7], labels[3:7], settings, bounds=BOUNDS,
                         indices=np.arange(3, 7))  # fmt: skip
    assert np.array_equal(part.adversarial, whole.adversarial[3:7])
    assert np.array_equal(part.queries, whole.queries[3:7])


def test_an_interrupted_search_resumes_from_its_log(tmp_path: Path) -> None:
    inputs = queries(10, seed=7)
    labels = labels_of(inputs)
    settings = SparseRsSettings(pixels=4, queries_per_sample=50)
    with QueryLedger(oracle(), tmp_path / "whole.jqlog") as ledger:
        whole = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS)
        total = ledger.spent

    def stop(iteration: int, fooled: int) -> None:
        if iteration == 7:
            raise KeyboardInterrupt

    with QueryLedger(oracle(), tmp_path / "cut.jqlog") as ledger, pytest.raises(KeyboardInterrupt):
        sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS, on_step=stop)
    with QueryLedger(oracle(), tmp_path / "cut.jqlog") as ledger:
        resumed = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS)
        assert ledger.spent == total
    assert np.array_equal(resumed.adversarial, whole.adversarial)


def test_the_swap_schedule_is_the_authors() -> None:
    settings = SparseRsSettings(pixels=100, queries_per_sample=10_000, alpha_init=0.3)
    assert [settings.swapped(i) for i in (0, 1, 50, 51, 300, 9000)] == [30, 15, 15, 7, 6, 1]
    assert SparseRsSettings(pixels=3, queries_per_sample=100).swapped(99) == 1


def test_labels_only_and_k_too_large_are_refused(tmp_path: Path) -> None:
    from jsma.blackbox import FunctionOracle

    labels_only = FunctionOracle(first_pixel_labels, name="tests:first_pixel_labels")
    inputs = queries(3)
    with (
        QueryLedger(labels_only, tmp_path / "q.jqlog") as ledger,
        pytest.raises(OracleError, match="needs the oracle's scores"),
    ):
        sparse_rs(ledger, inputs, labels_only.answer(inputs).labels,
                  SparseRsSettings(pixels=2), bounds=BOUNDS)  # fmt: skip
    with (
        QueryLedger(oracle(), tmp_path / "r.jqlog") as ledger,
        pytest.raises(Exception, match="Sparse-RS changes fewer than all"),
    ):
        sparse_rs(ledger, inputs, labels_of(inputs), SparseRsSettings(pixels=256), bounds=BOUNDS)


def test_a_run_stores_its_samples_and_the_command_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_dataset: Dataset
) -> None:
    outcome = run_sparse_rs(
        tiny_oracle(tiny_dataset), tiny_dataset, tmp_path / "api",
        SparseRsSettings(pixels=8, queries_per_sample=30), samples=10, start=5, targeted=True,
    )  # fmt: skip
    stored = np.load(tmp_path / "api" / outcome.samples, allow_pickle=False)
    assert stored["index"].tolist() == list(range(5, 15))
    assert (stored["target"] != stored["label"]).all()
    assert outcome.most_pixels_changed <= 8
    data = write_npz(tmp_path / "data.npz", test=20)
    checkpoint = tmp_path / "oracle.safetensors"
    torch.manual_seed(3)
    spec = ModelSpec("lenet", {"input_shape": (3, 16, 16), "num_classes": 4})
    save_checkpoint(checkpoint, spec.build(), CheckpointInfo(spec=spec))
    arguments = ["blackbox", "sparse-rs", str(tmp_path / "cli"), "--pixels", "6",
                 "--queries-per-sample", "20", "--samples", "6", "--data", str(data),
                 "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert main([*arguments, "--oracle", str(checkpoint)]) == 0
    printed = capsys.readouterr().out
    assert "Sparse-RS, untargeted, at most 6 pixels, 20 queries a sample" in printed
    record = json.loads((tmp_path / "cli" / "sparse-rs-k6.json").read_text())
    assert record["kind"] == "blackbox-sparse-rs"
    spent = record["log_spent"]
    assert main(arguments) == 0  # the stored oracle (a checkpoint: no code) is used again
    capsys.readouterr()
    again = json.loads((tmp_path / "cli" / "sparse-rs-k6.json").read_text())
    assert again["log_spent"] == spent
    assert again["queries"] == record["queries"]


def test_features_count_each_channel_on_its_own(tmp_path: Path) -> None:
    """On 3-channel images, k features: at most k values change; k pixels: at most k
    pixels, any of their channels."""
    from tests.userdata import colour_images

    images, _ = colour_images(6, 3)
    inputs = images.astype(np.float32) / 255
    torch.manual_seed(1)
    model = ModelSpec("lenet", {"input_shape": (3, 16, 16), "num_classes": 4}).build()
    rgb = ModelOracle(model, identity="model:rgb")
    labels = rgb.answer(inputs).labels
    for features in (False, True):
        settings = SparseRsSettings(pixels=5, queries_per_sample=15, features=features)
        with QueryLedger(rgb, tmp_path / f"{features}.jqlog") as ledger:
            result = sparse_rs(ledger, inputs, labels, settings, bounds=BOUNDS)
        values = (result.adversarial != inputs).reshape(6, -1).sum(axis=1)
        pixels = (result.adversarial != inputs).any(axis=1).reshape(6, -1).sum(axis=1)
        assert (pixels <= 5).all()
        if features:
            assert (values <= 5).all()
            assert np.array_equal(values, result.pixels_changed)
        else:
            assert values.max() > 5  # whole pixels: up to 3 values each
