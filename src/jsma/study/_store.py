"""The study's participants, their trials and their answers, in the study's SQLite file.

What the study server (next) and the analysis stand on, tested without HTTP:

- `join` admits a participant in one transaction: an unguessable session
  token (only its digest is stored), and their trials: every attention check plus the least-viewed
  stimuli of the other conditions (ties broken by a seeded draw, so views stay
  even across participants), in a seeded random order of their own.
- `answer` is idempotent per (participant, trial): a double click or a retried
  request stores nothing twice and cannot change a stored answer.
- `next_trial` is the first trial without an answer, so a reload resumes where
  the participant was, and a restarted server continues every participant.
- `finish` gives the completion code once every trial is answered.

A participant is one row per recruiting-site id: an id that joins again (a
new browser, a lost cookie, the cross-site arrival from Prolific that a
`SameSite=Strict` cookie does not survive) resumes that participant with a new
session token, which ends the old one. The trade-off: whoever knows a
participant's recruiting-site id can continue their session; such ids are not
public, and refusing them instead would strand every participant whose browser
lost its cookie.

Every write is one transaction in WAL mode: a server killed at any moment
loses nothing it has acknowledged. SQL only with parameters.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jsma.errors import ConfigurationError, JSMAError
from jsma.study._database import STUDY_DATABASE, Stimulus, read_stimuli, restrict_to_owner

__all__: list[str] = []

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    external_id TEXT NOT NULL,
    joined TEXT NOT NULL,
    completion_code TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    participant INTEGER NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    stimulus INTEGER NOT NULL REFERENCES stimuli(id),
    PRIMARY KEY (participant, position)
);
CREATE TABLE IF NOT EXISTS answers (
    participant INTEGER NOT NULL,
    position INTEGER NOT NULL,
    is_digit INTEGER NOT NULL,
    digit INTEGER,
    milliseconds INTEGER NOT NULL,
    answered TEXT NOT NULL,
    PRIMARY KEY (participant, position),
    FOREIGN KEY (participant, position) REFERENCES trials(participant, position)
);
CREATE TABLE IF NOT EXISTS joins (
    key TEXT PRIMARY KEY,
    participant INTEGER NOT NULL REFERENCES participants(id)
);
"""

_MAX_MILLISECONDS = 3_600_000  # an hour on one image is not a response time


def _digest(token: str) -> str:
    """What the database keeps of a session token: a stolen copy opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Participant:
    """A participant: the row id, the secret session token (only its digest is stored),
    the id they came with."""

    id: int
    token: str
    external_id: str


@dataclass(frozen=True)
class Trial:
    """One position of a participant's sequence and the stimulus shown there."""

    position: int
    count: int  # trials in the participant's sequence
    stimulus: Stimulus


class AnswerRow(NamedTuple):
    """One exported answer: who, which trial and stimulus, what it was, the answer."""

    participant: int
    external_id: str
    position: int
    stimulus: int
    condition: str
    source: int | None
    target: int | None
    distortion: float | None
    prediction: int | None
    is_digit: bool
    digit: int | None
    milliseconds: int
    answered: str


@dataclass(frozen=True)
class Answer:
    """A stored answer: "is this a digit?", which digit (None when not a digit), time."""

    is_digit: bool
    digit: int | None
    milliseconds: int


class StudyStore:
    """The participants' side of a study created by `create_study` in `directory`."""

    def __init__(self, directory: Path, *, trials_per_participant: int | None = 40) -> None:
        self.path = directory / STUDY_DATABASE
        self.stimuli = {stimulus.id: stimulus for stimulus in read_stimuli(directory)}
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            connection.executescript(_SCHEMA)  # its own transaction (executescript commits)
            settings = dict(connection.execute("SELECT key, value FROM study").fetchall())
        finally:
            connection.close()
        if settings.get("tokens") != "sha256":
            self._hash_tokens()  # a study of 0.1.0 kept its session tokens in plain text
        restrict_to_owner(directory)
        self.seed = int(settings.get("seed", "0"))
        self.completion_url = settings.get("completion_url") or None
        # The classes an answer may name: the data's (studies before this key: MNIST's 10).
        self.classes = int(settings.get("classes", "10"))
        # The images' channels; 0: a study made before the key (told from the PNGs).
        self.channels = int(settings.get("channels", "0"))
        names = settings.get("class_names")
        # The names the pages ask about; None: digits (every study before this key).
        self.class_names: tuple[str, ...] | None = (
            None if names is None else tuple(str(n) for n in json.loads(names))
        )
        attention = sum(1 for s in self.stimuli.values() if s.condition == "attention")
        assignable = sum(1 for s in self.stimuli.values() if s.condition != "practice")
        if trials_per_participant is not None and not (
            attention < trials_per_participant <= assignable
        ):
            raise ConfigurationError(
                f"trials per participant must exceed the {attention} attention checks and not "
                f"exceed the {assignable} stimuli, got {trials_per_participant}"
            )
        self.trials_per_participant = trials_per_participant

    def _hash_tokens(self) -> None:
        """Replace plain session tokens by their digests, once: sessions stay valid."""
        with self._transaction() as connection:
            stored = connection.execute("SELECT id, token FROM participants").fetchall()
            connection.executemany(
                "UPDATE participants SET token = ? WHERE id = ?",
                [(_digest(token), participant) for participant, token in stored],
            )
            connection.execute("INSERT OR REPLACE INTO study VALUES ('tokens', 'sha256')")

    @classmethod
    def open(cls, directory: Path) -> StudyStore:
        """The store for reading answers (analysis, export): it admits nobody."""
        return cls(directory, trials_per_participant=None)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One connection, one IMMEDIATE transaction: writers queue, nothing half-done."""
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def join(self, external_id: str | None = None, *, join_key: str | None = None) -> Participant:
        """Admit a participant (with the id their recruiting site gave, else a new one)
        and assign their trials; or resume the participant who came with that id.

        An id seen before gets its participant back with a new session token (the
        old one ends): one row per id, however often it arrives. Without an id,
        `join_key` makes the join idempotent: a join repeated with the same key (a
        retried request whose reply was lost) gets the same participant back. Only
        digests of keys and tokens are stored.
        """
        if self.trials_per_participant is None:
            raise ConfigurationError("this store was opened for reading; it admits nobody")
        if external_id is not None and not (0 < len(external_id) <= 128):
            raise ConfigurationError("a participant id has 1 to 128 characters")
        token = secrets.token_urlsafe(32)
        external = external_id if external_id is not None else secrets.token_hex(8)
        now = datetime.datetime.now(datetime.UTC).isoformat()
        key = None
        if join_key is not None:
            key = hashlib.sha256(f"{join_key}|{external_id or ''}".encode()).hexdigest()
        with self._transaction() as connection:
            if external_id is not None:
                earlier = connection.execute(
                    "SELECT id FROM participants WHERE external_id = ? ORDER BY id LIMIT 1",
                    (external_id,),
                ).fetchone()
            elif key is not None:
                earlier = connection.execute(
                    "SELECT participant FROM joins WHERE key = ?", (key,)
                ).fetchone()
            else:
                earlier = None
            if earlier is not None:
                connection.execute(
                    "UPDATE participants SET token = ? WHERE id = ?", (_digest(token), earlier[0])
                )
                stored = connection.execute(
                    "SELECT external_id FROM participants WHERE id = ?", (earlier[0],)
                ).fetchone()[0]
                return Participant(int(earlier[0]), token, str(stored))
            cursor = connection.execute(
                "INSERT INTO participants (token, external_id, joined) VALUES (?, ?, ?)",
                (_digest(token), external, now),
            )
            participant = int(cursor.lastrowid or 0)
            views = dict(
                connection.execute("SELECT stimulus, COUNT(*) FROM trials GROUP BY stimulus")
            )
            chosen = self._assign(participant, views)
            connection.executemany(
                "INSERT INTO trials (participant, position, stimulus) VALUES (?, ?, ?)",
                [(participant, position, stimulus) for position, stimulus in enumerate(chosen)],
            )
            if key is not None:
                connection.execute(
                    "INSERT INTO joins (key, participant) VALUES (?, ?)", (key, participant)
                )
        return Participant(participant, token, external)

    def _assign(self, participant: int, views: dict[int, int]) -> list[int]:
        """Every attention check and the least-viewed other stimuli, in a seeded order."""
        rng = np.random.default_rng([self.seed, participant])
        attention = [i for i, s in self.stimuli.items() if s.condition == "attention"]
        others = [
            i for i, s in self.stimuli.items() if s.condition not in ("attention", "practice")
        ]
        tie_break = rng.permutation(len(others))
        ranked = sorted(range(len(others)), key=lambda k: (views.get(others[k], 0), tie_break[k]))
        wanted = (self.trials_per_participant or 0) - len(attention)
        chosen = [others[k] for k in ranked[:wanted]] + attention
        return [chosen[k] for k in rng.permutation(len(chosen))]

    def participant(self, token: str) -> Participant:
        """The participant holding `token`; a `JSMAError` for any other token."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT id, external_id FROM participants WHERE token = ?", (_digest(token),)
            ).fetchone()
        if row is None:
            raise JSMAError("unknown session")
        return Participant(int(row[0]), token, str(row[1]))

    def next_trial(self, token: str) -> Trial | None:
        """The participant's first unanswered trial, or None when all are answered."""
        participant = self.participant(token)
        with self._transaction() as connection:
            count = connection.execute(
                "SELECT COUNT(*) FROM trials WHERE participant = ?", (participant.id,)
            ).fetchone()[0]
            row = connection.execute(
                "SELECT t.position, t.stimulus FROM trials t LEFT JOIN answers a "
                "ON a.participant = t.participant AND a.position = t.position "
                "WHERE t.participant = ? AND a.position IS NULL ORDER BY t.position LIMIT 1",
                (participant.id,),
            ).fetchone()
        if row is None:
            return None
        return Trial(int(row[0]), int(count), self.stimuli[int(row[1])])

    def answer(
        self, token: str, position: int, *, is_digit: bool, digit: int | None, milliseconds: int
    ) -> Answer:
        """Store the answer to trial `position`, once: a repeat returns the stored answer
        unchanged. The digit is a class (0 to `classes` - 1) when the image is judged a
        digit, else None."""
        if not isinstance(is_digit, bool):
            raise ConfigurationError("is_digit must be true or false")
        if is_digit and (isinstance(digit, bool) or digit not in range(self.classes)):
            raise ConfigurationError(f"the digit must be 0 to {self.classes - 1}, got {digit!r}")
        if not is_digit and digit is not None:
            raise ConfigurationError("no digit is given for an image that is not a digit")
        if isinstance(milliseconds, bool) or not 0 <= milliseconds <= _MAX_MILLISECONDS:
            raise ConfigurationError(f"response time out of range: {milliseconds!r} ms")
        participant = self.participant(token)
        now = datetime.datetime.now(datetime.UTC).isoformat()
        with self._transaction() as connection:
            exists = connection.execute(
                "SELECT 1 FROM trials WHERE participant = ? AND position = ?",
                (participant.id, position),
            ).fetchone()
            if exists is None:
                raise JSMAError(f"no trial {position} for this participant")
            connection.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                (participant.id, position, int(is_digit), digit, milliseconds, now),
            )
            row = connection.execute(
                "SELECT is_digit, digit, milliseconds FROM answers "
                "WHERE participant = ? AND position = ?",
                (participant.id, position),
            ).fetchone()
        return Answer(bool(row[0]), None if row[1] is None else int(row[1]), int(row[2]))

    def finish(self, token: str) -> str | None:
        """The participant's completion code once every trial is answered (the same code
        on every call), else None."""
        if self.next_trial(token) is not None:
            return None
        participant = self.participant(token)
        with self._transaction() as connection:
            code = secrets.token_hex(4).upper()
            connection.execute(
                "UPDATE participants SET completion_code = ? "
                "WHERE id = ? AND completion_code IS NULL",
                (code, participant.id),
            )
            stored = connection.execute(
                "SELECT completion_code FROM participants WHERE id = ?", (participant.id,)
            ).fetchone()[0]
        return str(stored)

    def trial_stimulus(self, token: str, position: int) -> Stimulus | None:
        """The stimulus of the participant's trial `position` (None if they have none)."""
        participant = self.participant(token)
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT stimulus FROM trials WHERE participant = ? AND position = ?",
                (participant.id, position),
            ).fetchone()
        return None if row is None else self.stimuli[int(row[0])]

    def progress(self) -> dict[str, Any]:
        """Participants (joined, finished), and answers per condition: what the admin sees."""
        with self._transaction() as connection:
            joined, finished = connection.execute(
                "SELECT COUNT(*), COUNT(completion_code) FROM participants"
            ).fetchone()
            rows = connection.execute(
                "SELECT t.stimulus FROM answers a JOIN trials t "
                "ON a.participant = t.participant AND a.position = t.position"
            ).fetchall()
        answered: dict[str, int] = {}
        for (stimulus,) in rows:
            condition = self.stimuli[int(stimulus)].condition
            answered[condition] = answered.get(condition, 0) + 1
        return {"joined": int(joined), "finished": int(finished), "answers": answered}

    def answers(self) -> list[AnswerRow]:
        """Every stored answer with its participant and stimulus, for export and analysis."""
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT p.id, p.external_id, a.position, t.stimulus, a.is_digit, a.digit, "
                "a.milliseconds, a.answered FROM answers a "
                "JOIN trials t ON a.participant = t.participant AND a.position = t.position "
                "JOIN participants p ON p.id = a.participant ORDER BY p.id, a.position"
            ).fetchall()
        result = []
        for participant, external, position, stimulus, is_digit, digit, ms, answered in rows:
            about = self.stimuli[int(stimulus)]
            result.append(
                AnswerRow(
                    int(participant), str(external), int(position), int(stimulus),
                    about.condition, about.source, about.target, about.distortion,
                    about.prediction, bool(is_digit), digit, int(ms), str(answered),
                )
            )  # fmt: skip
        return result

    def views(self) -> dict[int, int]:
        """How many participants were assigned each stimulus."""
        with self._transaction() as connection:
            counted = dict(
                connection.execute("SELECT stimulus, COUNT(*) FROM trials GROUP BY stimulus")
            )
        return {
            stimulus: int(counted.get(stimulus, 0))
            for stimulus, about in self.stimuli.items()
            if about.condition != "practice"
        }
