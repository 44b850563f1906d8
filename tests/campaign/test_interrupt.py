"""Ctrl-C during a campaign: one line, exit code 130, workers stopped at once, nothing
lost that had landed, and `resume` finishes it; SIGTERM to the driver alike, exit code
143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jsma.campaign import Campaign
from tests.conftest import popen_as_from_a_terminal


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(child) for child in text}
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("number", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_ctrl_c_stops_a_campaign_in_one_line(
    cli_setup: tuple[list[str], Path], number: int, code: int, word: str
) -> None:
    options, tmp_path = cli_setup
    directory = tmp_path / "run"
    command = [
        sys.executable, "-m", "jsma.cli", "campaign", "run", str(directory), *options,
        "--samples", "40", "--unit-size", "1", "--max-distortion", "1.0", "--workers", "2",
    ]  # fmt: skip
    process = popen_as_from_a_terminal(command)
    deadline = time.monotonic() + 120
    units = directory / "units"
    while not (units.is_dir() and any(units.glob("*.parquet"))):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no unit landed"
        time.sleep(0.05)
    workers = _children(process.pid)
    assert len(workers) >= 2
    started = time.monotonic()
    if number == signal.SIGINT:  # a terminal signals the whole group
        os.killpg(process.pid, signal.SIGINT)
    else:  # `kill PID`, a scheduler's stop: the driver alone
        os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    stopped = time.monotonic() - started
    assert process.returncode == code
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"jsma: {word}: ")
    assert f"of 40 units done and kept; `jsma campaign resume {directory}` continues" in last
    assert stopped < 3.0, stopped
    time.sleep(0.5)
    assert not [pid for pid in workers if _running(pid)]  # no worker left behind
    done = Campaign.open(directory).status().units_done
    assert f"{word}: {done} of 40" in last  # what it said is what is on disk
    if number == signal.SIGTERM:
        return
    resumed = subprocess.run(
        [sys.executable, "-m", "jsma.cli", "-q", "campaign", "resume", str(directory),
         *options, "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert Campaign.open(directory).status().complete
