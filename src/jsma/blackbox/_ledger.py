"""The query ledger: a budget, a durable log and a cache in front of an oracle.

Every query an attack asks goes through `QueryLedger.answer`. An input already answered
(the same float32 values) is answered from the log, never sent again; new inputs are
sent in chunks of the oracle's batch size, each chunk first written to the log as
*asked* (with the count spent so far) and made durable, then sent, then its answers
written as *answered*, durable too. So, whenever the process is killed:
- nothing is sent that the log does not count, and the budget holds across resumes;
- an input whose answer was written is never asked again;
- an input asked whose answer was not written (killed in between) is *lost*: counted,
  never asked again (the server may have answered and counted it), and answered as
  such (`OracleAnswer.answered` False), so that nothing is asked twice.
A chunk the oracle refused or could not answer (an `OracleError`, after its own
retries) is written as *withdrawn* and not counted.

The log is one append-only file of frames, each `JQLG`, its length, the SHA-256 of its
body and the body (a kind, a JSON header and raw little-endian arrays: digests, labels,
scores, inputs). A torn last frame (a kill mid-write) is cut off; a damaged frame
elsewhere is skipped with a warning (its answers are lost; the counts of later frames
hold). Nothing in it is code: JSON and numbers, read by shape and an allowed dtype.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from jsma.blackbox._oracles import Oracle, OracleAnswer, as_queries, query_digests
from jsma.errors import ConfigurationError, OracleError, QueryBudgetError

__all__ = ["QueryLedger", "read_query_log"]

logger = logging.getLogger(__name__)

QUERY_LOG = "queries.jqlog"
FORMAT = 1
_MAGIC = b"JQLG"
_PREFIX = struct.Struct("<4sI32s")  # magic, body length, SHA-256 of the body
_HEADER, _ASKED, _ANSWERED, _WITHDRAWN = 1, 2, 3, 4
_DTYPES = frozenset({"<i8", "<f4", "|u1"})


def _frame(kind: int, header: dict[str, Any], **arrays: np.ndarray) -> bytes:
    listing = [[name, array.dtype.str, list(array.shape)] for name, array in arrays.items()]
    meta = json.dumps({"header": header, "arrays": listing}, separators=(",", ":")).encode()
    body = b"".join(
        [bytes([kind]), struct.pack("<I", len(meta)), meta]
        + [np.ascontiguousarray(array).tobytes() for array in arrays.values()]
    )
    return _PREFIX.pack(_MAGIC, len(body), hashlib.sha256(body).digest()) + body


@dataclass(frozen=True)
class _Frame:
    kind: int
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _parse_body(body: bytes) -> _Frame:
    kind = body[0]
    (meta_length,) = struct.unpack_from("<I", body, 1)
    meta = json.loads(body[5 : 5 + meta_length])
    header, listing = meta["header"], meta["arrays"]
    if kind not in (_HEADER, _ASKED, _ANSWERED, _WITHDRAWN) or not isinstance(header, dict):
        raise ValueError("unknown frame")
    arrays, offset = {}, 5 + meta_length
    for name, dtype, shape in listing:
        if dtype not in _DTYPES or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"array {name!r}: {dtype} {shape}")
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if offset + size > len(body):
            raise ValueError("arrays past the frame's end")
        arrays[str(name)] = np.frombuffer(body, dtype=dtype, count=int(np.prod(shape)),
                                          offset=offset).reshape(shape)  # fmt: skip
        offset += size
    if offset != len(body):
        raise ValueError("bytes after the arrays")
    return _Frame(kind, header, arrays)


def _frames(data: bytes, where: str) -> Iterator[tuple[int, _Frame | None]]:
    """(end, frame) for each frame of `data`, `end` where it ends; a damaged stretch
    yields (its start, None) once and reading goes on at the next frame that checks (or
    stops: a torn or damaged end of the file)."""
    offset = 0
    while offset < len(data):
        frame = None
        if len(data) - offset >= _PREFIX.size:
            magic, length, digest = _PREFIX.unpack_from(data, offset)
            body = data[offset + _PREFIX.size : offset + _PREFIX.size + length]
            if magic == _MAGIC and len(body) == length and hashlib.sha256(body).digest() == digest:
                try:
                    frame = _parse_body(body)
                except (ValueError, KeyError, TypeError, IndexError, struct.error):
                    logger.warning("%s: frame at byte %d checks but does not parse", where, offset)
        if frame is not None:
            offset += _PREFIX.size + len(body)
            yield offset, frame
            continue
        following = data.find(_MAGIC, offset + 1)
        while following != -1 and not _checks(data, following):
            following = data.find(_MAGIC, following + 1)
        yield offset, None
        if following == -1:
            return
        logger.warning("%s: damaged frame at byte %d skipped; its answers are lost", where, offset)
        offset = following


def _checks(data: bytes, offset: int) -> bool:
    if len(data) - offset < _PREFIX.size:
        return False
    _, length, digest = _PREFIX.unpack_from(data, offset)
    body = data[offset + _PREFIX.size : offset + _PREFIX.size + length]
    return len(body) == length and hashlib.sha256(body).digest() == digest


@dataclass
class _State:
    identity: str | None = None
    spent: int = 0
    batches: int = 0
    end: int = 0  # where the last whole frame ends: a torn tail is cut here


def read_query_log(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every answered query of a log, in the order asked: inputs (float32; only those
    recorded: see `QueryLedger`), labels (int64) and scores (float32, or None where the
    oracle gave labels only)."""
    data = Path(path).read_bytes()
    inputs, labels, scores = [], [], []
    complete = True
    for _, frame in _frames(data, str(path)):
        if frame is not None and frame.kind == _ANSWERED:
            if "inputs" in frame.arrays:
                inputs.append(frame.arrays["inputs"])
            labels.append(frame.arrays["labels"])
            if "scores" in frame.arrays:
                scores.append(frame.arrays["scores"])
            else:
                complete = False
    if not labels:
        return np.zeros((0,), np.float32), np.zeros(0, np.int64), None
    return (
        np.concatenate(inputs).astype(np.float32) if inputs else np.zeros((0,), np.float32),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(scores).astype(np.float32) if complete else None,
    )


class QueryLedger:
    """An oracle with a query budget and a durable log that is also its cache.

    `path` is the log file (created if absent; one run at a time may hold it). `budget`
    is the most inputs ever sent to the oracle through this log, resumes included (None:
    no limit). `record_inputs`: the log keeps each input too (`read_query_log` gives
    them back; a search of many queries, Sparse-RS's, keeps digests and answers only,
    about 80 bytes a query on MNIST instead of 3 KB). The log holds one oracle's answers:
    opening it for another oracle is an error.

    Example:
        >>> ledger = QueryLedger(oracle, out / "queries.jqlog", budget=6400)  # doctest: +SKIP
        >>> labels = ledger.answer(images).labels  # doctest: +SKIP
    """

    def __init__(
        self,
        oracle: Oracle,
        path: str | Path,
        *,
        budget: int | None = None,
        record_inputs: bool = True,
    ) -> None:
        if budget is not None and budget < 0:
            raise ConfigurationError(f"a query budget is at least 0, got {budget}")
        self.oracle, self.path, self.budget = oracle, Path(path), budget
        self.record_inputs = record_inputs
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.path, "a+b")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise OracleError(f"{self.path}: another run is using this query log") from None
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # --- reading the log -------------------------------------------------------------

    def _load(self) -> None:
        self._labels: dict[bytes, int] = {}
        self._scores: dict[bytes, np.ndarray] = {}
        self._lost: set[bytes] = set()
        pending: dict[int, list[bytes]] = {}
        state = _State()
        self._file.seek(0)
        data = self._file.read()
        if data and not (_checks(data, 0) and data[_PREFIX.size] == _HEADER):
            # Not a log jsma wrote (or its header is gone): never cut or append to it.
            raise OracleError(f"{self.path}: not a query log (no header frame)")
        for end, frame in _frames(data, str(self.path)):
            if frame is not None:
                state.end = end
                self._apply(frame, state, pending)
        if state.end < len(data):
            logger.warning(
                "%s: the last %d bytes are a torn write (a run killed mid-write); cut off",
                self.path, len(data) - state.end,
            )  # fmt: skip
            self._file.truncate(state.end)
            os.fsync(self._file.fileno())
        for digests in pending.values():
            self._lost.update(d for d in digests if d not in self._labels)
        self.spent, self._batches = state.spent, state.batches
        if state.identity is None:
            self._append(_frame(_HEADER, {"format": FORMAT, "oracle": self.oracle.identity}))
        elif state.identity != self.oracle.identity:
            raise OracleError(
                f"{self.path}: this log holds the answers of {state.identity}, not of "
                f"{self.oracle.identity}; give another output directory"
            )

    def _apply(self, frame: _Frame, state: _State, pending: dict[int, list[bytes]]) -> None:
        header = frame.header
        if frame.kind == _HEADER:
            if int(header.get("format", 0)) > FORMAT:
                raise OracleError(f"{self.path}: written by a newer jsma (format {header})")
            state.identity = str(header["oracle"])
            return
        batch = int(header["batch"])
        state.batches = max(state.batches, batch + 1)
        digests = [bytes(row) for row in frame.arrays["digests"]]
        if frame.kind == _ASKED:
            pending[batch] = digests
        elif frame.kind == _WITHDRAWN:
            pending.pop(batch, None)
        else:
            pending.pop(batch, None)
            labels = frame.arrays["labels"]
            scores = frame.arrays.get("scores")
            for row, digest in enumerate(digests):
                self._labels[digest] = int(labels[row])
                if scores is not None:
                    self._scores[digest] = scores[row]
        state.spent = int(header["spent"])

    # --- asking ----------------------------------------------------------------------

    @property
    def remaining(self) -> int | None:
        """Queries the budget has left (None: no budget)."""
        return None if self.budget is None else max(0, self.budget - self.spent)

    @property
    def answered(self) -> int:
        """Distinct inputs the log holds an answer for."""
        return len(self._labels)

    @property
    def lost(self) -> int:
        """Inputs asked whose answer was never written (a kill in between): counted in
        `spent`, never asked again."""
        return len(self._lost)

    def unasked(self, inputs: np.ndarray) -> int:
        """How many distinct inputs of the batch would be sent (neither answered nor lost)."""
        digests = query_digests(as_queries(inputs))
        return len({d for d in digests if d not in self._labels and d not in self._lost})

    def answer(self, inputs: Any) -> OracleAnswer:
        """The oracle's answer for each input: from the log where it is there, asked
        otherwise (a `QueryBudgetError`, with nothing sent, if the new inputs are more
        than the budget has left)."""
        batch = as_queries(inputs)
        digests = query_digests(batch)
        new: dict[bytes, int] = {}
        for row, digest in enumerate(digests):
            if digest not in self._labels and digest not in self._lost and digest not in new:
                new[digest] = row
        if self.remaining is not None and len(new) > self.remaining:
            raise QueryBudgetError(
                f"{len(new)} new queries asked, {self.remaining} left of the budget of "
                f"{self.budget} ({self.spent} spent); nothing was sent"
            )
        rows = np.fromiter(new.values(), dtype=np.int64, count=len(new))
        step = max(1, self.oracle.max_batch)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            self._ask([digests[i] for i in chunk], batch[chunk])
        return self._from_log(digests)

    def _ask(self, digests: list[bytes], inputs: np.ndarray) -> None:
        batch, self._batches = self._batches, self._batches + 1
        table = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)
        self.spent += len(digests)
        self._append(_frame(_ASKED, {"batch": batch, "spent": self.spent}, digests=table))
        try:
            answer = self.oracle.answer(inputs)
        except OracleError:
            self.spent -= len(digests)
            self._append(_frame(_WITHDRAWN, {"batch": batch, "spent": self.spent}, digests=table))
            raise
        except BaseException:
            # Ctrl-C or a bug mid-request: the server may have answered; counted as lost.
            self._lost.update(digests)
            raise
        arrays = {"digests": table, "labels": answer.labels.astype("<i8")}
        if answer.scores is not None:
            arrays["scores"] = answer.scores.astype("<f4")
        if self.record_inputs:
            arrays["inputs"] = inputs.astype("<f4")
        self._append(_frame(_ANSWERED, {"batch": batch, "spent": self.spent}, **arrays))
        for row, digest in enumerate(digests):
            self._labels[digest] = int(answer.labels[row])
            if answer.scores is not None:
                self._scores[digest] = answer.scores[row]

    def _from_log(self, digests: list[bytes]) -> OracleAnswer:
        answered = np.array([d in self._labels for d in digests], dtype=bool)
        labels = np.array([self._labels.get(d, -1) for d in digests], dtype=np.int64)
        scores = None
        rows = [self._scores.get(d) for d in digests]
        width = next((len(row) for row in rows if row is not None), 0)
        if width and all(row is not None for row, ok in zip(rows, answered, strict=True) if ok):
            scores = np.full((len(digests), width), np.nan, dtype=np.float32)
            for index, row in enumerate(rows):
                if row is not None:
                    scores[index] = row
        return OracleAnswer(labels=labels, scores=scores, answered=answered)

    def _append(self, frame: bytes) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(frame)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Release the log (and the lock on it); the oracle stays open."""
        if not self._file.closed:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()

    def __enter__(self) -> QueryLedger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
