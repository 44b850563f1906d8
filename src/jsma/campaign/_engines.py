"""Where a campaign's units run: in this process, or in a pool of local worker processes.

A unit needs only its own samples (`UnitData`, kilobytes), the spec and the
model. Whoever runs it attacks it, writes its file atomically and hands back
its row count and seconds, so units can run in any process that sees the
campaign directory, and the results do not depend on where they ran: the
attack is deterministic, and one unit is one batch whatever the engine.

The driver (`Campaign.run`) holds the campaign's lock, decides which units are
left, and counts what lands; an engine only runs units.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from jsma.campaign._spec import CampaignSpec
from jsma.campaign._store import UnitInfo, UnitStamp, write_unit
from jsma.campaign._unit import UnitData, attack_unit
from jsma.campaign.location import Folder
from jsma.errors import CampaignError, ConfigurationError

__all__ = ["Engine", "InProcess", "LocalPool", "local_engine"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitTask:
    """One unit to run and where its file goes: all a worker needs besides the model."""

    folder: Folder
    stamp: UnitStamp
    spec: CampaignSpec
    data: UnitData

    @property
    def name(self) -> str:
        return self.stamp.unit.name


def perform(model: nn.Module, task: UnitTask) -> UnitInfo:
    """Attack the task's unit and write its file; return what the driver counts."""
    table, seconds = attack_unit(model, task.data, task.spec)
    write_unit(task.folder, task.stamp, table, seconds=seconds)
    return UnitInfo(table.num_rows, seconds)


class Engine(Protocol):
    """Runs units and yields each as it lands, in any order."""

    @property
    def label(self) -> str:
        """Where units run, for people: "this process", "2 worker processes", ..."""
        ...

    def run(
        self, model: nn.Module, tasks: Sequence[UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]: ...


@dataclass(frozen=True)
class InProcess:
    """One unit after another in this process, with torch's threads as they are set."""

    @property
    def label(self) -> str:
        return "this process"

    def run(
        self, model: nn.Module, tasks: Sequence[UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]:
        for task in tasks:
            yield task, perform(model, task)


def available_cores() -> int:
    """The cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_WATCH_SECONDS = 0.5  # how often a worker checks that its driver is alive

# The worker process's model, loaded once when the process starts.
_worker_model: nn.Module | None = None


# Where the worker notes the unit it is running (a file named by its pid), so that
# the driver can say which unit a dead worker had.
_worker_marks: Path | None = None


def _start_worker(driver: int, model_file: str, threads: int) -> None:
    global _worker_model, _worker_marks
    # Ctrl-C reaches every process of the terminal's group: the driver alone handles
    # it (and stops the workers), rather than each worker printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock is a multiprocessing semaphore, made on the first bar (even a
    # disabled one); a worker stopped with SIGTERM would leave it for the resource
    # tracker to report as leaked. A worker shows no bars: a thread lock does.
    tqdm.set_lock(threading.RLock())
    _exit_with(driver)  # the driver's pid from the driver: it may be gone already
    torch.set_num_threads(threads)
    # Our own driver serialised this model a moment ago: a trusted pickle.
    _worker_model = torch.load(model_file, weights_only=False)
    _worker_marks = Path(model_file).parent


def _exit_with(driver: int) -> None:
    """End this worker once its driver is gone (killed with `kill -9`, say): the pool's
    queues keep an orphan waiting for work forever, and a unit it finished late would
    race the next run's."""

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(_WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="jsma-driver-watch", daemon=True).start()


def _perform_in_worker(task: UnitTask) -> UnitInfo:
    if _worker_model is None or _worker_marks is None:
        raise CampaignError("a worker process ran a unit before it loaded the model")
    (_worker_marks / f"{os.getpid()}.unit").write_text(task.name)
    return perform(_worker_model, task)


def _deaths(processes: dict[int, multiprocessing.process.BaseProcess], marks: Path) -> list[str]:
    """Who died in a broken pool: each worker that ended other than by the pool's own
    SIGTERM, with its exit and the unit it was running."""
    found = []
    # The pool ends them all; another thread of the pool may be reaping them as we
    # look, so an exit code can read None for a moment: let the codes settle.
    deadline = time.monotonic() + 3
    while any(p.exitcode is None for p in processes.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid, process in processes.items():
        code = process.exitcode
        if code is None or code in (0, -signal.SIGTERM):
            continue
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            how += ", out of memory?"
        mark = marks / f"{pid}.unit"
        unit = mark.read_text() if mark.exists() else "none yet"
        found.append(f"worker {pid} ({how}) was running unit {unit}")
    return found


def check_sendable(task: UnitTask) -> None:
    """Fail at once, saying why, if a task cannot reach a worker process (its storage
    is an in-memory file system, say), rather than deep inside the pool."""
    try:
        pickle.dumps(task.folder)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise ConfigurationError(
            f"{task.folder}: this storage cannot be sent to worker processes ({error}); "
            "run in this process (--workers 1) or use a file system they can open"
        ) from None


@dataclass(frozen=True)
class LocalPool:
    """`workers` processes of this machine (started with spawn), `threads` torch threads
    each; the model goes to each process once.

    A worker that dies (killed, out of memory) breaks the pool: the units it and
    the others had in hand are run again in a new pool, up to `restarts` times
    in a row without a unit landing.
    """

    workers: int
    threads: int = 1
    restarts: int = 3

    @property
    def label(self) -> str:
        return f"{self.workers} worker processes"

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 1:
            raise ConfigurationError(
                f"workers and threads must be at least 1, got {self.workers} and {self.threads}"
            )

    def run(
        self, model: nn.Module, tasks: Sequence[UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]:
        pending = {task.name: task for task in tasks}
        if not pending:
            return
        check_sendable(tasks[0])
        # The model goes to the workers through a file, not the start-up pipe: a
        # process start then returns at once, so every worker exists before any
        # can die. (A start still writing a large model while another worker
        # dies is missed by the pool's clean-up, which then waits for it forever.)
        with tempfile.TemporaryDirectory(prefix="jsma-model-") as scratch:
            model_file = str(Path(scratch) / "model.pt")
            torch.save(model, model_file)
            yield from self._rounds(model_file, pending)

    def _rounds(
        self, model_file: str, pending: dict[str, UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]:
        fruitless = 0
        while pending:
            landed = 0
            executor = ProcessPoolExecutor(
                max_workers=min(self.workers, len(pending)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(), model_file, self.threads),
            )
            futures: dict[Future[UnitInfo], str] = {}
            # The pool's own table of its processes (CPython's, private): kept to tell,
            # once the pool breaks, which worker died and with which unit.
            processes: dict[int, multiprocessing.process.BaseProcess] = {}
            try:
                # Inside the try: a worker can die while later units are still being handed in.
                for name, task in pending.items():
                    futures[executor.submit(_perform_in_worker, task)] = name
                processes.update(getattr(executor, "_processes", None) or {})
                waiting = set(futures)
                while waiting:
                    done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                    for future in done:
                        info = future.result()  # a worker's error is raised here
                        landed += 1
                        yield pending.pop(futures[future]), info
            except BrokenProcessPool:
                # Units that finished before the pool broke count; the rest run again.
                for future, name in futures.items():
                    finished = future.done() and not future.cancelled()
                    if name in pending and finished and future.exception() is None:
                        landed += 1
                        yield pending.pop(name), future.result()
                fruitless = 0 if landed else fruitless + 1
                processes.update(getattr(executor, "_processes", None) or {})
                deaths = _deaths(processes, Path(model_file).parent) or ["a worker died"]
                logger.warning(
                    "%s; the unfinished units (%d) are redone in a new pool (%d of %d restarts)",
                    "; ".join(deaths), len(pending), fruitless, self.restarts,
                )  # fmt: skip
                if fruitless > self.restarts:
                    raise CampaignError(
                        f"worker processes died {fruitless} times in a row before any unit "
                        "landed (out of memory?); try fewer --workers, then resume"
                    ) from None
            except KeyboardInterrupt:
                # Ctrl-C: stop the workers now rather than wait for their units (a unit
                # cut short leaves only a temporary file, which the next run removes).
                running = list((getattr(executor, "_processes", None) or processes).values())
                for process in running:
                    process.terminate()
                for process in running:
                    process.join(timeout=5)
                raise
            finally:
                executor.shutdown(wait=True, cancel_futures=True)


def local_engine(workers: int | None = None, threads: int | None = None) -> Engine:
    """`workers` processes (None: every available core) with `threads` torch threads
    each (None: one); a single worker is this process, with its threads as they are."""
    count = available_cores() if workers is None else workers
    if count < 1:
        raise ConfigurationError(f"workers must be at least 1, got {count}")
    return InProcess() if count == 1 else LocalPool(count, threads or 1)
