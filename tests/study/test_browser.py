"""The study's pages in a real Chromium: one participant with the mouse, one with the
keyboard only, a reload mid-study; no console errors, every image loads."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jsma.study._database import STUDY_DATABASE
from tests.report.test_report import _chromium
from tests.study.test_server import TRIALS, _serving

pytestmark = pytest.mark.browser

_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _watch(page: Any, problems: list[str]) -> None:
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))


def _image_loaded(page: Any) -> bool:
    """Whether the page's stimulus loads (waiting for it: a click does not wait for the
    next page's images); a broken image never does, and the wait fails."""
    page.wait_for_function(
        "() => { const i = document.querySelector('img.stimulus');"
        " return i !== null && i.complete && i.naturalWidth > 0; }",
        timeout=10_000,
    )
    return True


def _progress(page: Any) -> tuple[int, int]:
    match = re.search(r"(\d+) of (\d+)", page.inner_text(".progress"))
    assert match
    return int(match.group(1)), int(match.group(2))


def test_mouse_keyboard_and_reload(study: Path) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with _serving(study) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=_ARGS)
        # With the mouse.
        page = browser.new_page()
        page.set_default_timeout(15_000)
        _watch(page, problems)
        page.goto(f"{url}/?PROLIFIC_PID=mouse-1")
        page.check("input[name=consent]")
        page.click("#start")
        page.click("#begin")
        for _ in range(2 + TRIALS):  # the practice images, then the trials
            assert _image_loaded(page)
            page.check("input[name=is_digit][value=yes]")
            page.check("input[name=digit][value='3']")
            with page.expect_navigation():
                page.click("#next")
        assert re.fullmatch(r"[0-9A-F]{8}", page.inner_text("#code"))
        # With the keyboard only, and a reload in the middle.
        keys = browser.new_page()
        keys.set_default_timeout(15_000)
        _watch(keys, problems)
        keys.goto(f"{url}/?PROLIFIC_PID=keys-1")
        keys.keyboard.press("Tab")  # the consent box
        keys.keyboard.press("Space")
        keys.keyboard.press("Tab")  # the Start button
        keys.keyboard.press("Enter")
        keys.wait_for_url(re.compile(r".*/instructions$"))
        keys.focus("#begin")
        keys.keyboard.press("Enter")
        keys.wait_for_url(re.compile(r".*/practice/1$"))
        for step in range(2 + TRIALS):
            if step == 4:  # a reload mid-study shows the same trial again
                before = _progress(keys)
                keys.reload()
                assert _progress(keys) == before
            assert _image_loaded(keys)
            keys.keyboard.press("n" if step % 2 else "y")
            if step % 2 == 0:
                keys.keyboard.press("8")  # no such class in the tests' 4: ignored
                keys.keyboard.press("2")
            with keys.expect_navigation():
                keys.keyboard.press("Enter")
        assert re.fullmatch(r"[0-9A-F]{8}", keys.inner_text("#code"))
        browser.close()
    assert problems == []
    with sqlite3.connect(study / STUDY_DATABASE) as connection:
        rows = connection.execute(
            "SELECT p.external_id, a.is_digit, a.digit FROM answers a "
            "JOIN participants p ON p.id = a.participant ORDER BY p.id, a.position"
        ).fetchall()
    mouse = [r for r in rows if r[0] == "mouse-1"]
    keyboard = [r for r in rows if r[0] == "keys-1"]
    assert mouse == [("mouse-1", 1, 3)] * TRIALS
    # Practice steps 0 and 1 are not recorded; from step 2 on: yes/2, no/None alternately.
    assert keyboard == [
        ("keys-1", 1, 2) if step % 2 == 0 else ("keys-1", 0, None) for step in range(2, 2 + TRIALS)
    ]
