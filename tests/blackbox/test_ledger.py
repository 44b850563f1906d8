"""The query ledger: no input sent twice, the budget held, the log durable and safe."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jsma.blackbox import ModelOracle, Oracle, OracleAnswer, QueryLedger, read_query_log
from jsma.blackbox._ledger import _ANSWERED, _PREFIX, _frame
from jsma.errors import OracleError, QueryBudgetError
from tests.blackbox.conftest import ROOT, queries, small_model


class Counting(Oracle):
    """The small model, counting what it is sent (the server's side); it fails on demand."""

    def __init__(self, max_batch: int = 8) -> None:
        self.inner = ModelOracle(small_model(), identity="model:small")
        self.max_batch = max_batch
        self.sent: list[int] = []
        self.fail: BaseException | None = None

    @property
    def identity(self) -> str:
        return "model:small"

    def _answer_batch(self, inputs: np.ndarray) -> OracleAnswer:
        if self.fail is not None:
            raise self.fail
        self.sent.append(len(inputs))
        return self.inner._answer_batch(inputs)


def test_an_input_is_sent_once_and_answered_from_the_log_after(tmp_path: Path) -> None:
    oracle = Counting()
    inputs = queries(30)
    with QueryLedger(oracle, tmp_path / "q.jqlog", budget=40) as ledger:
        twice = np.concatenate([inputs[:20], inputs[:5]])
        first = ledger.answer(twice)
        assert sum(oracle.sent) == 20
        assert oracle.sent == [8, 8, 4]
        assert ledger.spent == 20
        assert first.labels[20:].tolist() == first.labels[:5].tolist()
        second = ledger.answer(inputs)
        assert sum(oracle.sent) == 30
        assert ledger.spent == 30
        assert ledger.remaining == 10
        expected = oracle.inner.answer(inputs)
        assert second.labels.tolist() == expected.labels.tolist()
        np.testing.assert_allclose(second.scores, expected.scores, atol=1e-6)  # type: ignore[arg-type]
    with QueryLedger(Counting(), tmp_path / "q.jqlog", budget=40) as again:
        assert again.spent == 30
        assert again.answered == 30
        assert again.lost == 0
        assert again.answer(inputs).labels.tolist() == expected.labels.tolist()
        assert again.oracle.sent == []  # type: ignore[attr-defined]
    logged, labels, scores = read_query_log(tmp_path / "q.jqlog")
    assert np.array_equal(logged, inputs)
    assert labels.tolist() == expected.labels.tolist()
    assert scores is not None
    assert scores.shape == (30, 5)


def test_a_request_over_the_budget_sends_nothing(tmp_path: Path) -> None:
    oracle = Counting()
    with QueryLedger(oracle, tmp_path / "q.jqlog", budget=10) as ledger:
        ledger.answer(queries(6))
        with pytest.raises(
            QueryBudgetError, match="5 new queries asked, 4 left of the budget of 10"
        ):
            ledger.answer(queries(5, seed=1))
        assert sum(oracle.sent) == 6
        assert ledger.spent == 6
        ledger.answer(queries(6))  # all answered already: free
        assert ledger.unasked(queries(5, seed=1)) == 5
    with QueryLedger(Counting(), tmp_path / "q.jqlog", budget=8) as smaller:
        assert smaller.remaining == 2


def test_a_refused_chunk_is_withdrawn_and_an_interrupted_one_lost(tmp_path: Path) -> None:
    oracle = Counting(max_batch=4)
    path = tmp_path / "q.jqlog"
    with QueryLedger(oracle, path, budget=100) as ledger:
        oracle.fail = OracleError("503 after retries")
        with pytest.raises(OracleError, match="503"):
            ledger.answer(queries(4))
        assert ledger.spent == 0  # refused: not counted, may be asked again
        oracle.fail = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            ledger.answer(queries(4, seed=1))
        assert ledger.spent == 4
        assert ledger.lost == 4
    with QueryLedger(Counting(max_batch=4), path, budget=100) as resumed:
        assert resumed.spent == 4
        assert resumed.lost == 4
        answer = resumed.answer(np.concatenate([queries(4), queries(4, seed=1)]))
        assert resumed.oracle.sent == [4]  # type: ignore[attr-defined]
        assert answer.answered.tolist() == [True] * 4 + [False] * 4
        assert answer.labels[4:].tolist() == [-1] * 4
        assert answer.scores is not None
        assert np.isnan(answer.scores[4:]).all()


def test_a_torn_last_frame_is_cut_and_a_damaged_one_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "q.jqlog"
    with QueryLedger(Counting(max_batch=5), path) as ledger:
        ledger.answer(queries(15))
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # killed while writing the last answers
    with caplog.at_level(logging.WARNING), QueryLedger(Counting(max_batch=5), path) as ledger:
        assert ledger.spent == 15
        assert ledger.answered == 10
        assert ledger.lost == 5
    assert "torn write" in caplog.text
    cut = path.read_bytes()
    assert whole.startswith(cut)
    assert len(cut) < len(whole) - 7
    # Flip a byte inside the first answers: those are lost, the rest reads on.
    data = bytearray(cut)
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING), QueryLedger(Counting(max_batch=5), path) as ledger:
        assert ledger.spent == 15
        assert ledger.answered + ledger.lost == 15
        assert ledger.lost >= 5
    assert "damaged frame" in caplog.text


def test_a_log_is_one_oracles_and_one_runs(tmp_path: Path) -> None:
    path = tmp_path / "q.jqlog"
    with (
        QueryLedger(Counting(), path),
        pytest.raises(OracleError, match="another run is using this query log"),
    ):
        QueryLedger(Counting(), path)
    other = ModelOracle(small_model(), identity="model:other")
    with pytest.raises(OracleError, match="holds the answers of model:small, not of model:other"):
        QueryLedger(other, path)
    (tmp_path / "text").write_text("hello")
    with pytest.raises(OracleError, match="not a query log"):
        QueryLedger(Counting(), tmp_path / "text")


def test_a_tampered_log_is_read_as_numbers_only(tmp_path: Path) -> None:
    """A frame that checks but declares an object dtype, or arrays past its end, is
    skipped: nothing in a log is ever unpickled or evaluated."""
    path = tmp_path / "q.jqlog"
    with QueryLedger(Counting(), path) as ledger:
        ledger.answer(queries(3))
    hostile = _frame(_ANSWERED, {"batch": 9, "spent": 3}, digests=np.zeros((1, 32), np.uint8))
    body = hostile[_PREFIX.size :].replace(b"|u1", b"|O8")
    import hashlib

    forged = _PREFIX.pack(b"JQLG", len(body), hashlib.sha256(body).digest()) + body
    with path.open("ab") as handle:
        handle.write(forged)
    with QueryLedger(Counting(), path) as reopened:
        assert reopened.answered == 3


_ASK_LOOP = """
import sys, numpy as np
from jsma.blackbox import OracleRef, QueryLedger
oracle = OracleRef.parse(sys.argv[2]).open(max_batch=4)
inputs = np.random.default_rng(0).random((120, 1, 16, 16), dtype=np.float32)
with QueryLedger(oracle, sys.argv[1], budget=int(sys.argv[3])) as ledger:
    for start in range(0, 120, 6):
        if ledger.unasked(inputs[start : start + 6]) > ledger.remaining:
            break  # the budget is spent
        ledger.answer(inputs[start : start + 6])
        print(ledger.spent, flush=True)
print("done", ledger.spent, ledger.lost, flush=True)
"""


def ask_until_done(log: Path, oracle: str, budget: int, kills: int, seed: int) -> str:
    """Run the asking loop, kill -9 it at random moments `kills` times, then let it end."""
    rng = np.random.default_rng(seed)
    command = [sys.executable, "-c", _ASK_LOOP, str(log), oracle, str(budget)]
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    for _ in range(kills):
        process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        process.stdout.readline()  # it is asking
        time.sleep(float(rng.uniform(0, 0.05)))
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.splitlines()[-1]


@pytest.mark.slow
def test_kill_9_at_any_moment_never_repeats_a_query_nor_exceeds_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = tmp_path / "received.txt"
    monkeypatch.setenv("JSMA_TEST_RECEIVED", str(received))
    last = ask_until_done(
        tmp_path / "q.jqlog", "fn:tests.blackbox.oracle_functions:recording", 120, 4, seed=1
    )
    seen = received.read_text().split()
    assert len(seen) == len(set(seen)), "an input reached the oracle twice"
    _, spent, lost = last.split()
    assert len(seen) <= int(spent) <= 120
    logged, _, _ = read_query_log(tmp_path / "q.jqlog")
    assert len(logged) + int(lost) == int(spent)
