"""The inference-server oracle against a real model server: MLServer 1.7.1 (Seldon's
implementation of the Open Inference Protocol, the KServe v2 REST API) serving the model
jsma exported to ONNX, on 127.0.0.1, counting on its side what it receives."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jsma.blackbox import HttpOracle, OracleRef, QueryLedger
from jsma.blackbox._oracles import query_digests
from tests.blackbox.conftest import queries
from tests.blackbox.test_ledger import ask_until_done
from tests.servers.model_server import Served

pytestmark = pytest.mark.slow


def test_the_server_answers_as_the_exported_model(model_server: Served, onnx_file: Path) -> None:
    oracle = OracleRef.parse(model_server.url).open(max_batch=16)
    assert isinstance(oracle, HttpOracle)
    inputs = queries(50, seed=7)
    before = len(model_server.received())
    answer = oracle.answer(inputs)
    local = OracleRef.parse(onnx_file).open().answer(inputs)
    assert answer.labels.tolist() == local.labels.tolist()
    np.testing.assert_allclose(answer.scores, local.scores, atol=1e-6)  # type: ignore[arg-type]
    assert len(model_server.received()) - before == 50


def test_a_ledger_through_the_server_sends_each_input_once(
    model_server: Served, tmp_path: Path
) -> None:
    inputs = queries(30, seed=8)
    with QueryLedger(OracleRef.parse(model_server.url).open(), tmp_path / "q", budget=40) as ledger:
        ledger.answer(inputs[:20])
        ledger.answer(inputs)
    received = Counter(model_server.received())
    assert [received[d.hex()] for d in query_digests(inputs)] == [1] * 30


def test_kill_9_and_resume_never_exceed_the_budget_on_the_servers_side(
    model_server: Served, tmp_path: Path
) -> None:
    last = ask_until_done(tmp_path / "q.jqlog", model_server.url, 100, kills=3, seed=3)
    inputs = np.random.default_rng(0).random((120, 1, 16, 16), dtype=np.float32)
    received = Counter(model_server.received())
    counts = [received[d.hex()] for d in query_digests(inputs)]
    assert max(counts) == 1, "the server received an input twice"
    _, spent, _ = last.split()
    assert sum(counts) <= int(spent) <= 100, (sum(counts), spent)
    assert sum(counts) >= 90  # it got on: the budget was spent, not wasted
