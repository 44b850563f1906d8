"""The study server through its pages: a real uvicorn server on 127.0.0.1 (a free port),
driven with httpx; every request has a timeout and every loop a bound."""

from __future__ import annotations

import csv
import io
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from jsma.errors import StorageError
from jsma.study._database import STUDY_DATABASE
from jsma.study.server import CSRF_COOKIE, SECRET_FILE, SESSION_COOKIE, study_secret
from jsma.study.simulate import serving
from tests.study.conftest import COMPLETION_URL

ADMIN = "admin-token-for-tests-0123456789"
TRIALS = 8


def _serving(study: Path) -> AbstractContextManager[str]:
    # One signing secret across "restarts", as a deployment giving one would have.
    return serving(study, trials_per_participant=TRIALS, admin_token=ADMIN, secret=b"k" * 32)


@pytest.fixture
def url(study: Path) -> Iterator[str]:
    with _serving(study) as base:
        yield base


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, follow_redirects=False, timeout=10)


def _field(page: str, name: str) -> str:
    match = re.search(rf"name=\"{name}\" value=\"([^\"]*)\"", page)
    assert match, f"no {name} field"
    return match.group(1)


def _join(client: httpx.Client, external: str = "P-1") -> None:
    page = client.get("/", params={"PROLIFIC_PID": external})
    assert page.status_code == 200
    response = client.post(
        "/join", data={"csrf": _field(page.text, "csrf"), "external_id": external, "consent": "yes"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/instructions"
    assert SESSION_COOKIE in client.cookies


def _answer(client: httpx.Client, page: str, **answer: str) -> httpx.Response:
    action = re.search(r'action="([^"]+)"', page)
    assert action
    fields = {name: _field(page, name) for name in ("csrf", "served", "served_signature")}
    return client.post(action.group(1), data={**fields, **answer})


@pytest.mark.slow
def test_a_participant_goes_through_the_whole_study(study: Path, url: str) -> None:
    client = _client(url)
    _join(client)
    instructions = client.get("/instructions")
    assert "2 practice images" in instructions.text
    for number in (1, 2):
        page = client.get(f"/practice/{number}")
        assert f"Practice {number} of 2" in page.text
        assert client.get(f"/practice/{number}/image").content[:8] == b"\x89PNG\r\n\x1a\n"
        assert _answer(client, page.text, is_digit="yes", digit="3").status_code == 303
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0  # practice
    seen = []
    for number in range(1, TRIALS + 1):
        page = client.get("/trial")
        assert page.status_code == 200
        assert f"{number} of {TRIALS}" in page.text
        image = re.search(r'src="(/trial/\d+/image)"', page.text)
        assert image
        assert client.get(image.group(1)).content[:8] == b"\x89PNG\r\n\x1a\n"
        seen.append(image.group(1))
        response = _answer(client, page.text, is_digit="no")
        assert response.status_code == 303
    assert len(set(seen)) == TRIALS
    assert client.get("/trial").headers["location"] == "/done"
    done = client.get("/done")
    code = re.search(r'id="code">([0-9A-F]+)<', done.text)
    assert code
    assert COMPLETION_URL in done.text
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == TRIALS
        assert connection.execute("SELECT external_id FROM participants").fetchone()[0] == "P-1"


def test_reloads_double_posts_and_restarts_lose_and_repeat_nothing(study: Path) -> None:
    with _serving(study) as first_server:
        client = _client(first_server)
        _join(client)
        first = client.get("/trial")
        assert "1 of" in client.get("/trial").text  # a reload shows the same trial
        assert _answer(client, first.text, is_digit="yes", digit="2").status_code == 303
        assert _answer(client, first.text, is_digit="yes", digit="1").status_code == 303  # again
    with _serving(study) as second_server:  # the server restarted on the same study
        restarted = _client(second_server)
        restarted.cookies.update(client.cookies)
        assert "2 of" in restarted.get("/trial").text
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        rows = connection.execute("SELECT position, digit FROM answers").fetchall()
    assert rows == [(0, 2)]


def test_a_retried_join_admits_the_participant_once(study: Path, url: str) -> None:
    client = _client(url)
    page = client.get("/", params={"PROLIFIC_PID": "P-9"}).text
    form = {"csrf": _field(page, "csrf"), "external_id": "P-9", "consent": "yes"}
    first = client.post("/join", data=form)
    client.cookies.delete(SESSION_COOKIE)  # the reply was lost: the browser never saw it
    again = client.post("/join", data=form)
    assert again.status_code == 303
    assert client.get("/instructions").status_code == 200  # the new session works
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 1
    stale = _client(url)
    stale.cookies.set(SESSION_COOKIE, first.cookies[SESSION_COOKIE])
    assert stale.get("/instructions").status_code == 403  # one session per participant


def test_a_page_served_before_a_restart_can_be_answered_after_it(study: Path) -> None:
    # No secret given: the study's own key, kept beside it, signs the forms of both servers.
    with serving(study, trials_per_participant=TRIALS) as first_server:
        client = _client(first_server)
        _join(client)
        page = client.get("/trial").text
    assert (study / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    with serving(study, trials_per_participant=TRIALS) as second_server:
        restarted = _client(second_server)
        restarted.cookies.update(client.cookies)
        assert _answer(restarted, page, is_digit="no").status_code == 303
        assert "2 of" in restarted.get("/trial").text


def test_the_study_key_is_made_once_and_checked(study: Path) -> None:
    key = study_secret(study)
    assert len(key) == 32
    assert study_secret(study) == key
    assert not list(study.glob(f".{SECRET_FILE}*"))  # no temporary left behind
    (study / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(StorageError, match=f"{SECRET_FILE}: a study key has 32 bytes, this one 5"):
        study_secret(study)


def test_pages_need_a_session_and_forms_need_their_token(study: Path, url: str) -> None:
    client = _client(url)
    for path in ("/instructions", "/trial", "/done", "/practice/1", "/trial/0/image"):
        assert client.get(path).status_code == 403
    # A form without the cookie's CSRF value is refused, and nothing is stored.
    client.get("/")
    assert client.post("/join", data={"csrf": "forged", "consent": "yes"}).status_code == 403
    _join(client)
    page = client.get("/trial").text
    forged = page.replace(_field(page, "csrf"), "0" * 64)
    assert _answer(client, forged, is_digit="no").status_code == 403
    # Another participant's session reaches only their own trials and images.
    other = _client(url)
    _join(other, "P-2")
    assert other.get("/trial/99/image").status_code == 404
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        ({"is_digit": "maybe"}, 400, "Answer whether the image is a digit"),
        ({"is_digit": "yes", "digit": "12"}, 400, "Choose which digit it is"),
        ({"is_digit": "yes"}, 400, "Choose which digit it is"),
        ({"is_digit": "no", "served": "soon"}, 400, "Not a valid served time"),
        ({"is_digit": "no", "served": "123"}, 403, "The form has expired"),
        ({"is_digit": "no", "note": "x" * 300}, 400, "A form field is too long"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(
    url: str, answer: dict[str, str], status: int, message: str
) -> None:
    client = _client(url)
    _join(client)
    page = client.get("/trial").text
    action = re.search(r'action="([^"]+)"', page)
    assert action
    fields = {name: _field(page, name) for name in ("csrf", "served", "served_signature")}
    response = client.post(action.group(1), data={**fields, **answer})
    assert response.status_code == status
    assert message in response.text
    assert "Traceback" not in response.text
    assert client.post("/trial/abc", data=fields).status_code == 400


def test_escaping_headers_and_admin(url: str) -> None:
    client = _client(url)
    page = client.get("/", params={"PROLIFIC_PID": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == ['<script src="/static/study.js" defer>']  # no inline script
    headers = page.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    cookie = headers["set-cookie"]
    assert CSRF_COOKIE in cookie
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    _join(client, "<script>alert(1)</script>")
    _answer(client, client.get("/trial").text, is_digit="yes", digit="2")
    assert client.get("/admin").status_code == 403
    assert client.get("/admin", params={"token": "wrong"}).status_code == 403
    admin = client.get("/admin", params={"token": ADMIN})
    assert "1 joined, 0 finished" in admin.text
    exported = client.get("/admin/answers.csv", headers={"x-admin-token": ADMIN})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 1
    assert (rows[0]["external_id"], rows[0]["digit"]) == ("<script>alert(1)</script>", "2")


@pytest.mark.slow
def test_serve_command_prints_its_urls_and_serves(study: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "jsma.cli", "study", "serve", str(study), "--port", str(port),
               "--trials", str(TRIALS), "--admin-token", ADMIN]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        printed = [process.stdout.readline() for _ in range(2)]
        assert printed[0].startswith(f"participants: http://127.0.0.1:{port}/?PROLIFIC_PID=")
        assert printed[1] == f"admin:        http://127.0.0.1:{port}/admin?token={ADMIN}\n"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.05)
        assert response.status_code == 200
        assert "A short study on images of digits" in response.text
        started = time.monotonic()
        process.terminate()  # SIGTERM, as a service manager stops it
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - started < 1.5
        assert (
            process.stdout.read() == "study server stopped; every acknowledged answer is stored\n"
        )
    finally:
        process.kill()
        process.wait(timeout=30)


def test_an_exported_cell_that_starts_like_a_formula_is_neutralised(url: str) -> None:
    hostile = "=cmd|' /C calc'!A0"
    _join(_client(url), hostile)
    exported = _client(url).get("/admin/answers.csv", headers={"x-admin-token": ADMIN})
    assert hostile not in exported.text.splitlines()[1:]  # never a bare formula
    client = _client(url)
    _join(client, "@SUM(1+1)")
    _answer(client, client.get("/trial").text, is_digit="yes", digit="2")
    exported = _client(url).get("/admin/answers.csv", headers={"x-admin-token": ADMIN})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["external_id"] for row in rows] == ["'@SUM(1+1)"]
    assert rows[0]["digit"] == "2"  # numbers stay numbers


def test_a_participant_back_from_the_recruiting_site_resumes(study: Path, url: str) -> None:
    first = _client(url)
    _join(first, "PROLIFIC-7")
    _answer(first, first.get("/trial").text, is_digit="yes", digit="3")
    # The cross-site arrival from Prolific carries no SameSite=Strict cookie: a fresh
    # client, as that browser looks to the server.
    back = _client(url)
    _join(back, "PROLIFIC-7")
    assert f"2 of {TRIALS}" in back.get("/trial").text
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 1
        assert connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == TRIALS


def test_the_study_is_its_owners_alone_and_keeps_no_token(study: Path, url: str) -> None:
    client = _client(url)
    _join(client)
    token = client.cookies[SESSION_COOKIE]
    assert study.stat().st_mode & 0o777 == 0o700
    for path in [study / STUDY_DATABASE, *(study / "images").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        stored = [row[0] for row in connection.execute("SELECT token FROM participants")]
    assert token not in stored


@pytest.mark.parametrize("position", ["²", "٣", "1²", "+1", " 1"])
def test_numbers_are_ascii_digits_only(url: str, position: str) -> None:
    client = _client(url)
    _join(client)
    page = client.get("/trial").text
    fields = {name: _field(page, name) for name in ("csrf", "served", "served_signature")}
    response = client.post(f"/trial/{position}", data={**fields, "is_digit": "no"})
    assert response.status_code == 400
    assert response.headers["x-content-type-options"] == "nosniff"
    digit = client.post(
        re.search(r'action="([^"]+)"', page).group(1),  # type: ignore[union-attr]
        data={**fields, "is_digit": "yes", "digit": position},
    )
    assert digit.status_code == 400
    assert "Choose which digit it is" in digit.text


def test_a_server_error_carries_the_security_headers(study: Path, url: str) -> None:
    client = _client(url)
    _join(client)
    for image in (study / "images").iterdir():
        image.unlink()  # a broken deployment: the images are gone
    response = client.get("/practice/1/image")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"


def test_machine_ids_are_reserved_and_links_are_encoded(study: Path) -> None:
    token = "admin+token#with&odd=chars/0123"
    with serving(study, trials_per_participant=TRIALS, admin_token=token) as base:
        client = _client(base)
        page = client.get("/", params={"PROLIFIC_PID": "machine:oracle:999"}).text
        joined = client.post(
            "/join",
            data={"csrf": _field(page, "csrf"), "external_id": "machine:oracle:999",
                  "consent": "yes"},
        )  # fmt: skip
        assert joined.status_code == 400
        assert "reserved" in joined.text
        admin = client.get("/admin", params={"token": token})
        link = re.search(r'href="(/admin/answers.csv\?token=[^"]+)"', admin.text)
        assert link is not None
        assert client.get(link.group(1).replace("&amp;", "&")).status_code == 200
        static = client.get("/static", headers={"host": "evil.example"})
        assert "evil.example" not in static.headers.get("location", "")
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 0


def test_the_consent_page_shows_the_studys_settings(study: Path, url: str) -> None:
    from jsma.study import update_consent

    page = _client(url).get("/").text
    assert page.count("Not filled in") == 5  # length, contact, ethics, payment, withdrawal
    update_consent(study, minutes=7, contact="Dr A. Researcher, a@uni.example")
    page = _client(url).get("/").text
    assert "about\n7 minutes" in page
    assert "Dr A. Researcher, a@uni.example" in page
    assert page.count("Not filled in") == 3
