"""A study's stored form: its stimuli and settings in SQLite beside the images, read
and written here (the answers are the store's, `jsma.study._store`)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

from jsma._records import loads_json
from jsma.errors import ConfigurationError, JSMAError
from jsma.settings import DISTORTION_BUCKETS

logger = logging.getLogger(__name__)

__all__ = ["ConsentText", "Stimulus", "read_consent", "read_stimuli", "update_consent"]

Condition = Literal["benign", "increasing", "decreasing", "attention", "practice"]

STUDY_DATABASE = "study.sqlite"
# 1: 0.1.0 (session tokens in plain text); 2: token digests, consent settings;
# 3: `class_names`, the names the pages ask about (absent: digits, as every earlier study).
STUDY_FORMAT = 3
# The distortion buckets stimuli are balanced over, stored in each study's settings
# (studies made before that key used these `_EARLIER_EDGES`).
DISTORTION_EDGES = DISTORTION_BUCKETS
_EARLIER_EDGES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 14.5)
_CONSENT_PREFIX = "consent."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stimuli (
    id INTEGER PRIMARY KEY,
    condition TEXT NOT NULL,
    image TEXT NOT NULL,
    campaign TEXT,
    split TEXT,
    sample INTEGER,
    source INTEGER,
    target INTEGER,
    distortion REAL,
    prediction INTEGER,
    prompt TEXT,
    expected_is_digit INTEGER,
    expected_digit INTEGER
);
"""


@dataclass(frozen=True)
class Stimulus:
    """One image a participant judges, and everything known about it.

    For `benign` images `target` is None and `distortion` 0; `prediction` is the
    network's class for the image (the target, for a successful adversarial
    sample). `attention` checks carry a prompt and the answers it asks for;
    `practice` images (training-split originals) come before the trials and are
    not analysed.
    """

    id: int
    condition: Condition
    image: str  # file name in the study's images/ folder
    campaign: str | None = None
    split: str | None = None
    sample: int | None = None
    source: int | None = None
    target: int | None = None
    distortion: float | None = None
    prediction: int | None = None
    prompt: str | None = None
    expected_is_digit: bool | None = None
    expected_digit: int | None = None


@dataclass(frozen=True)
class ConsentText:
    """What the consent page tells participants beside the task itself.

    Every field is the researcher's to fill in (`jsma study create` or `jsma
    study settings` options); one left empty shows on the page as a plain
    "not filled in" notice, and `jsma study serve` warns about it.
    """

    minutes: int | None = None  # how long the study takes
    contact: str | None = None  # who runs it, and how to reach them
    ethics: str | None = None  # the approval (board, reference number)
    payment: str | None = None  # what participants are paid
    withdrawal: str | None = None  # how to withdraw, and what happens to the answers

    def __post_init__(self) -> None:
        if self.minutes is not None and not 0 < self.minutes <= 600:
            raise ConfigurationError(f"the study's length is 1 to 600 minutes, got {self.minutes}")
        for field in fields(self)[1:]:
            text = getattr(self, field.name)
            if text is not None and not 0 < len(text) <= 2000:
                raise ConfigurationError(
                    f"the consent page's {field.name} has 1 to 2000 characters"
                )

    def missing(self) -> list[str]:
        """The fields not filled in."""
        return [field.name for field in fields(self) if getattr(self, field.name) is None]

    def to_settings(self) -> dict[str, str]:
        return {
            f"{_CONSENT_PREFIX}{field.name}": str(getattr(self, field.name))
            for field in fields(self)
            if getattr(self, field.name) is not None
        }

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> ConsentText:
        values: dict[str, object] = {
            field.name: settings.get(f"{_CONSENT_PREFIX}{field.name}") for field in fields(cls)
        }
        if values["minutes"] is not None:
            values["minutes"] = int(str(values["minutes"]))
        return cls(**values)  # type: ignore[arg-type]


def restrict_to_owner(directory: Path) -> None:
    """The study directory, its images folder and every file in them readable and
    writable by their owner only: the database holds who took part and their answers."""
    for path in (directory, directory / "images"):
        if not path.is_dir():
            continue
        try:
            os.chmod(path, 0o700)
            for child in path.iterdir():
                if child.is_file() and not child.is_symlink():
                    os.chmod(child, 0o600)
        except PermissionError as error:
            logger.warning("%s: cannot restrict to its owner (%s)", path, error.strerror)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)  # explicit transactions
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def write_design(
    directory: Path,
    stimuli: Sequence[Stimulus],
    *,
    seed: int,
    per_condition: int,
    completion_url: str | None,
    consent: ConsentText,
    classes: int,
    class_names: Sequence[str] | None = None,
    channels: int = 1,
) -> None:
    connection = _connect(directory / STUDY_DATABASE)
    try:
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN")
        settings = {
            "format": str(STUDY_FORMAT),
            "tokens": "sha256",  # session tokens are stored as digests only
            "seed": str(seed),
            "per_condition": str(per_condition),
            "completion_url": completion_url or "",
            "distortion_edges": json.dumps(DISTORTION_EDGES),
            "classes": str(classes),
            "channels": str(channels),  # of the images (absent before: told from the PNGs)
            # The names the pages ask about (absent: digits, the paper's questions).
            **({} if class_names is None else {"class_names": json.dumps(list(class_names))}),
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            **consent.to_settings(),
        }
        connection.executemany("INSERT INTO study VALUES (?, ?)", sorted(settings.items()))
        columns = [name for name in asdict(stimuli[0])]
        placeholders = ", ".join("?" for _ in columns)
        connection.executemany(
            f"INSERT INTO stimuli ({', '.join(columns)}) VALUES ({placeholders})",
            [tuple(asdict(stimulus).values()) for stimulus in stimuli],
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def connect_read_only(directory: Path) -> sqlite3.Connection:
    """The study database of `directory`, opened read-only.

    The URI is built by `Path.as_uri`, which escapes what a URI would read
    otherwise: `runs/y%41` must not open `runs/yA`, nor `new#study` a file `new`.
    """
    path = directory / STUDY_DATABASE
    if not path.is_file():
        raise JSMAError(f"{directory}: no study here (no {STUDY_DATABASE})")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def read_stimuli(directory: Path) -> list[Stimulus]:
    """The stimuli of the study in `directory`, in id order."""
    path = directory / STUDY_DATABASE
    connection = connect_read_only(directory)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM stimuli ORDER BY id").fetchall()
    except sqlite3.DatabaseError as error:
        raise JSMAError(f"{path}: not a study database ({error})") from None
    finally:
        connection.close()
    stimuli = []
    for row in rows:
        values = dict(row)
        for key in ("expected_is_digit",):
            if values[key] is not None:
                values[key] = bool(values[key])
        stimuli.append(Stimulus(**values))
    return stimuli


def read_distortion_edges(directory: Path) -> tuple[float, ...]:
    """The distortion buckets the study in `directory` balanced its stimuli over."""
    connection = connect_read_only(directory)
    try:
        row = connection.execute(
            "SELECT value FROM study WHERE key = 'distortion_edges'"
        ).fetchone()
    finally:
        connection.close()
    if row is None:
        return _EARLIER_EDGES
    try:
        edges = tuple(float(v) for v in loads_json(row[0]))
    except (ValueError, TypeError) as error:
        raise JSMAError(
            f"{directory / STUDY_DATABASE}: damaged distortion_edges ({error})"
        ) from None
    return edges


def read_consent(directory: Path) -> ConsentText:
    """What the consent page of the study in `directory` says (see `ConsentText`)."""
    connection = connect_read_only(directory)
    try:
        settings = dict(connection.execute("SELECT key, value FROM study").fetchall())
    except sqlite3.DatabaseError as error:
        raise JSMAError(f"{directory / STUDY_DATABASE}: not a study database ({error})") from None
    finally:
        connection.close()
    try:
        return ConsentText.from_settings(settings)
    except ValueError as error:
        raise JSMAError(
            f"{directory / STUDY_DATABASE}: damaged consent settings ({error})"
        ) from None


def update_consent(directory: Path, **changes: object) -> ConsentText:
    """Set some of the consent page's fields (see `ConsentText`) of the study in
    `directory`; return them all. A running server shows them on its next page."""
    consent = replace(read_consent(directory), **changes)  # type: ignore[arg-type]
    connection = _connect(directory / STUDY_DATABASE)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT OR REPLACE INTO study VALUES (?, ?)", sorted(consent.to_settings().items())
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return consent
