from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jsma.errors import ConfigurationError, JSMAError
from jsma.study._database import STUDY_DATABASE
from jsma.study._store import StudyStore


def _answer_all(store: StudyStore, token: str) -> None:
    while (trial := store.next_trial(token)) is not None:
        store.answer(token, trial.position, is_digit=True, digit=3, milliseconds=900)


def test_assignment_is_even_complete_and_seeded(study: Path) -> None:
    store = StudyStore(study, trials_per_participant=8)
    attention = {i for i, s in store.stimuli.items() if s.condition == "attention"}
    sequences = []
    for _ in range(9):
        participant = store.join()
        shown = []
        while (trial := store.next_trial(participant.token)) is not None:
            assert trial.count == 8
            shown.append(trial.stimulus.id)
            store.answer(participant.token, trial.position, is_digit=False, digit=None,
                         milliseconds=500)  # fmt: skip
        assert len(shown) == len(set(shown)) == 8
        assert attention <= set(shown)  # every attention check, for everyone
        sequences.append(shown)
    assert len({tuple(s) for s in sequences}) == 9  # each their own order
    views = store.views()
    others = [count for stimulus, count in views.items() if stimulus not in attention]
    assert max(others) - min(others) <= 1  # least-viewed first: views stay even
    assert sum(others) == 9 * (8 - len(attention))


def test_answers_are_stored_once_and_reloads_resume(study: Path) -> None:
    store = StudyStore(study, trials_per_participant=6)
    participant = store.join("PROLIFIC-abc")
    first = store.next_trial(participant.token)
    assert first is not None
    stored = store.answer(participant.token, first.position, is_digit=True, digit=3,
                          milliseconds=1200)  # fmt: skip
    # A double click, or a retried request with other values: the first answer stands.
    again = store.answer(participant.token, first.position, is_digit=False, digit=None,
                         milliseconds=10)  # fmt: skip
    assert again == stored
    restarted = StudyStore(study, trials_per_participant=6)  # a restarted server
    following = restarted.next_trial(participant.token)
    assert following is not None
    assert following.position == first.position + 1
    assert restarted.finish(participant.token) is None
    _answer_all(restarted, participant.token)
    code = restarted.finish(participant.token)
    assert code is not None
    assert restarted.finish(participant.token) == code
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        rows = connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        external = connection.execute("SELECT external_id FROM participants").fetchone()[0]
    assert (rows, external) == (6, "PROLIFIC-abc")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        # The tests' data has 4 classes: the study takes their names, 0 to 3.
        ({"is_digit": True, "digit": 4, "milliseconds": 5}, "the digit must be 0 to 3"),
        ({"is_digit": True, "digit": None, "milliseconds": 5}, "the digit must be 0 to 3"),
        ({"is_digit": False, "digit": 3, "milliseconds": 5}, "no digit is given"),
        ({"is_digit": 1, "digit": 3, "milliseconds": 5}, "is_digit must be true or false"),
        ({"is_digit": True, "digit": 3, "milliseconds": -1}, "response time out of range"),
        ({"is_digit": True, "digit": 3, "milliseconds": 10**9}, "response time out of range"),
    ],
)
def test_bad_answers_are_refused(study: Path, answer: dict[str, object], message: str) -> None:
    store = StudyStore(study, trials_per_participant=6)
    participant = store.join()
    with pytest.raises(ConfigurationError, match=message):
        store.answer(participant.token, 0, **answer)  # type: ignore[arg-type]
    assert store.next_trial(participant.token).position == 0  # type: ignore[union-attr]


def test_a_participant_reaches_only_their_own_trials(study: Path) -> None:
    store = StudyStore(study, trials_per_participant=6)
    store.join()
    with pytest.raises(JSMAError, match="unknown session"):
        store.next_trial("a guessed token")
    participant = store.join()
    with pytest.raises(JSMAError, match="no trial 6 for this participant"):
        store.answer(participant.token, 6, is_digit=True, digit=1, milliseconds=5)
    with pytest.raises(ConfigurationError, match="1 to 128 characters"):
        store.join("x" * 129)
    with pytest.raises(ConfigurationError, match="trials per participant"):
        StudyStore(study, trials_per_participant=2)  # no room beside the attention checks


def test_concurrent_joins_and_repeated_answers(study: Path) -> None:
    store = StudyStore(study, trials_per_participant=8)
    tokens: list[str] = []
    lock = threading.Lock()

    def join() -> None:
        participant = store.join()
        with lock:
            tokens.append(participant.token)

    threads = [threading.Thread(target=join) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(tokens) == 12
    attention = {i for i, s in store.stimuli.items() if s.condition == "attention"}
    others = [n for stimulus, n in store.views().items() if stimulus not in attention]
    assert max(others) - min(others) <= 1  # one transaction per join: no lost update
    # The same answer sent by eight clients at once is stored once.
    senders = [
        threading.Thread(
            target=store.answer, args=(tokens[0], 0),
            kwargs={"is_digit": True, "digit": 2, "milliseconds": 700},
        )
        for _ in range(8)
    ]  # fmt: skip
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=60)
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1


_ANSWERING = """
import sys
from pathlib import Path
from jsma.study._store import StudyStore

store = StudyStore(Path(sys.argv[1]), trials_per_participant=8)
while True:
    participant = store.join()
    while (trial := store.next_trial(participant.token)) is not None:
        store.answer(participant.token, trial.position, is_digit=True, digit=1, milliseconds=9)
        print(participant.id, trial.position, flush=True)  # acknowledged
"""


@pytest.mark.slow
def test_a_killed_writer_loses_nothing_it_acknowledged(study: Path) -> None:
    StudyStore(study, trials_per_participant=8)  # the tables exist before the race
    acknowledged: list[tuple[int, int]] = []
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-c", _ANSWERING, str(study)], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        target = 10 + len(acknowledged) % 7
        lines = 0
        while lines < target and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            participant, position = map(int, line.split())
            acknowledged.append((participant, position))
            lines += 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert lines == target, "the writer stopped before it was killed"
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        stored = set(connection.execute("SELECT participant, position FROM answers").fetchall())
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert set(acknowledged) <= stored


def test_a_join_repeated_with_its_key_admits_once(study: Path) -> None:
    store = StudyStore(study, trials_per_participant=8)
    first = store.join(join_key="browser-a")  # anonymous: the key is all there is
    assert store.join(join_key="browser-a").id == first.id  # the retry: same participant
    assert store.join(join_key="browser-b").id != first.id  # another browser
    assert store.join().id != first.id  # no key, no id: a new participant
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 3
        keys = [row[0] for row in connection.execute("SELECT key FROM joins")]
    assert len(keys) == 2
    assert not any("browser" in key for key in keys)  # only digests are stored


def test_an_id_that_comes_again_resumes_its_participant(study: Path) -> None:
    store = StudyStore(study, trials_per_participant=8)
    first = store.join("PROLIFIC-1", join_key="browser-a")
    trial = store.next_trial(first.token)
    assert trial is not None
    store.answer(first.token, trial.position, is_digit=True, digit=3, milliseconds=900)
    # Back from Prolific in another browser (or without the SameSite=Strict cookie).
    again = store.join("PROLIFIC-1", join_key="browser-b")
    assert again.id == first.id
    resumed = store.next_trial(again.token)
    assert resumed is not None
    assert resumed.position == trial.position + 1
    with pytest.raises(JSMAError, match="unknown session"):
        store.next_trial(first.token)  # the earlier session ended
    assert store.join("PROLIFIC-1").id == first.id  # and without any key
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        rows = connection.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
        stored_tokens = {row[0] for row in connection.execute("SELECT token FROM participants")}
    assert rows == 1
    assert again.token not in stored_tokens  # only its digest is kept
