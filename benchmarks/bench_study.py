"""The study server under load, and under `kill -9`, in one run.

Needs the `study` extra: `scripts/setup mnist,study`.

    .venv/bin/python benchmarks/bench_study.py [--study STUDY] [--participants 50] [--trials 40]

Without `--study`, a study is made first from two small campaigns of the
paper's LeNet (the first 200 test samples, increasing and decreasing; 40
stimuli per condition). Each run takes a fresh copy of it and serves it with
`jsma study serve` in its own process on 127.0.0.1; `--participants` oracle
observers, all at once, complete `--trials` trials each through the real pages.

1. steady: the server runs throughout;
2. kill -9: when half the answers are stored, the server process is killed
   with SIGKILL and started again on the same port; the observers retry their
   failed requests (bounded: 60 s each) and go on.

Printed per run: answers the observers had acknowledged, answers stored,
duplicates (two answers to one trial), retried requests, p50 and p95 request
latency as a participant sees it (from the first try to the response), and
answers per second. Every request goes to 127.0.0.1 and every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

import httpx

from jsma.study._database import STUDY_DATABASE
from jsma.study._store import StudyStore
from jsma.study.simulate import SimulationResult, oracle_observer, simulate

HOST = "127.0.0.1"
START_SECONDS = 60.0  # a server that is not answering by then has failed
RUN_SECONDS = 600.0  # the longest a run may take


class Row(NamedTuple):
    name: str
    result: SimulationResult
    joined: int  # participants the study admitted: one each, retried joins included


def make_study(directory: Path, per_condition: int) -> Path:
    """Two small campaigns of the paper's LeNet, and a study made from them."""
    from jsma.campaign import AttackSettings, Campaign, CampaignSpec
    from jsma.data import default_cache_dir, load_mnist
    from jsma.models._training import cached_model
    from jsma.study import create_study

    data = load_mnist()
    loaded = cached_model(data, default_cache_dir(), "paper")
    campaigns = []
    for name, theta in (("increasing", 1.0), ("decreasing", -1.0)):
        spec = CampaignSpec(samples=200, attack=AttackSettings(theta=theta, output="probabilities"))
        Campaign.run(directory / name, spec, loaded.model, data, progress=True)
        campaigns.append(directory / name)
    study = directory / "study"
    create_study(campaigns, data, study, per_condition=per_condition, seed=0, model=loaded.model)
    return study


def count(study: Path, table: str) -> int:
    """Rows of a table of the study's database, read without taking its write lock."""
    uri = f"{(study / STUDY_DATABASE).as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """`jsma study serve` in a process of its own, which this benchmark may kill."""

    def __init__(self, study: Path, port: int, trials: int) -> None:
        self.study, self.port, self.trials = study, port, trials
        self.url = f"http://{HOST}:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        jsma = Path(sys.executable).with_name("jsma")
        self.process = subprocess.Popen(
            [str(jsma), "study", "serve", str(self.study), "--host", HOST,
             "--port", str(self.port), "--trials", str(self.trials),
             "--admin-token", secrets.token_urlsafe(24)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/favicon.ico", timeout=1).status_code == 204:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not answer within {START_SECONDS:g} s")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def run(study: Path, *, participants: int, trials: int, kill: bool) -> Row:
    server = Server(study, free_port(), trials)
    server.start()
    outcome: list[SimulationResult | BaseException] = []

    def observers() -> None:
        try:
            result = simulate(
                study, "oracle", observe=oracle_observer, participants=participants,
                concurrency=participants, url=server.url, trials_per_participant=trials,
            )  # fmt: skip
            outcome.append(result)
        except BaseException as error:  # reported by the main thread
            outcome.append(error)

    thread = threading.Thread(target=observers, daemon=True)
    outage = 0.0
    try:
        thread.start()
        if kill:
            half = participants * trials // 2
            deadline = time.monotonic() + RUN_SECONDS
            while count(study, "answers") < half and thread.is_alive():
                if time.monotonic() > deadline:
                    raise SystemExit("half the answers did not arrive in time")
                time.sleep(0.05)
            stored_at_kill = count(study, "answers")
            killed = time.perf_counter()
            server.kill()
            server.start()
            outage = time.perf_counter() - killed
            print(f"  killed the server (SIGKILL) with {stored_at_kill} answers stored; "
                  f"answering again after {outage:.2f} s")  # fmt: skip
        thread.join(timeout=RUN_SECONDS)
        if thread.is_alive():
            raise SystemExit(f"the observers did not finish within {RUN_SECONDS:g} s")
    finally:
        server.stop()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return Row("kill -9 + restart" if kill else "steady", result, count(study, "participants"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, help="a study to copy (default: make one)")
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--per-condition", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jsma-bench-study-") as scratch:
        root = Path(scratch)
        source = args.study or make_study(root / "made", args.per_condition)
        rows = []
        for kill in (False, True):
            copy = Path(shutil.copytree(source, root / f"run-{int(kill)}"))
            for stale in ("answers.csv", "server.key"):
                (copy / stale).unlink(missing_ok=True)
            if StudyStore.open(copy).answers():
                raise SystemExit(f"{source}: has answers already; give a fresh study")
            print(f"{'kill -9' if kill else 'steady'}: {args.participants} observers x "
                  f"{args.trials} trials on {HOST}")  # fmt: skip
            rows.append(run(copy, participants=args.participants, trials=args.trials, kill=kill))
    print()
    print(f"{'run':<18} {'joined':>6} {'acknowledged':>12} {'stored':>7} {'dupl.':>6} "
          f"{'retries':>8} {'p50 ms':>7} {'p95 ms':>7} {'answers/s':>10}")  # fmt: skip
    for row in rows:
        r = row.result
        print(f"{row.name:<18} {row.joined:>6} {r.answers_sent:>12} {r.answers_stored:>7} "
              f"{r.duplicates:>6} {r.retries:>8} {r.p50_ms:>7.0f} {r.p95_ms:>7.0f} "
              f"{r.answers_per_second:>10.1f}")  # fmt: skip
    lost = [row.name for row in rows if row.result.answers_stored != row.result.answers_sent]
    print("every acknowledged answer stored once" if not lost else f"MISMATCH in {lost}")


if __name__ == "__main__":
    main()
