"""The Ray engine: each unit a Ray task, for a cluster when one machine is not enough.

Needs the `ray` extra (`pip install -c constraints.txt -e '.[ray]'`). The model
goes into Ray's object store once; each task sets its torch thread count
(Ray reuses worker processes, and torch keeps whatever count a process had),
attacks its unit, writes the unit's file atomically into the campaign
directory, which every node must see (a shared file system), and returns only
its row count and seconds. Ray retries a task whose worker died; the driver
keeps at most `workers` tasks in flight.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from jsma.campaign._engines import UnitTask, available_cores, check_sendable, perform
from jsma.campaign._store import UnitInfo
from jsma.errors import ConfigurationError, MissingDependencyError

__all__ = ["LOCAL_ADDRESS", "LOOPBACK_ONLY", "RayEngine"]

_NO_RAY = (
    "the Ray engine (--engine ray) needs the `ray` extra (ray is missing): "
    "pip install 'jsma[ray]' (in a clone: scripts/setup mnist,ray)"
)
LOCAL_ADDRESS = "127.0.0.1"  # a Ray started here binds to this machine only
# Without it, Ray on Linux takes the machine's network address as the node's and
# binds its servers to every interface, whatever `_node_ip_address` says. Read
# when Ray is imported.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _ray(*, local: bool) -> Any:
    """Ray, imported so that a Ray started here listens on 127.0.0.1 only (`local`)."""
    if local:
        if "ray" not in sys.modules:
            os.environ.update(LOOPBACK_ONLY)
        elif any(os.environ.get(k) != v for k, v in LOOPBACK_ONLY.items()):
            raise ConfigurationError(
                "Ray was imported before the engine could keep it on 127.0.0.1: set "
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing Ray, or give an address"
            )
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(_NO_RAY) from None
    return ray


def _run_unit(model: nn.Module, task: UnitTask, threads: int, gpus: float) -> UnitInfo:
    """One unit in a Ray worker process (Ray passes the model from its object store)."""
    torch.set_num_threads(threads)
    if gpus > 0:
        model = model.to("cuda")
    return perform(model, task)


@dataclass(frozen=True)
class RayEngine:
    """Units as Ray tasks on the cluster at `address`, or on a Ray started here.

    `address`: `auto` (the cluster this machine belongs to), `ray://HOST:10001`,
    or None for a Ray of `workers` CPUs started on 127.0.0.1 for the run and
    stopped after it. `workers`: tasks in flight at once (default: the
    cluster's CPUs over `threads`). `gpus_per_worker`: a fraction of a GPU per
    task (the unit then runs on CUDA). `retries`: how often Ray reruns a task
    whose worker process died.
    """

    address: str | None = None
    workers: int | None = None
    threads: int = 1
    gpus_per_worker: float = 0.0
    retries: int = 3

    @property
    def label(self) -> str:
        return f"Ray tasks ({self.address or 'a Ray started here'})"

    def __post_init__(self) -> None:
        # Found, not imported (importing decides where a local Ray listens): a missing
        # extra fails here, before a campaign directory is written or data loaded.
        if importlib.util.find_spec("ray") is None:
            raise MissingDependencyError(_NO_RAY)
        if self.workers is not None and self.workers < 1:
            raise ConfigurationError(f"workers must be at least 1, got {self.workers}")
        if self.threads < 1 or self.gpus_per_worker < 0 or self.retries < 0:
            raise ConfigurationError(
                "threads must be at least 1, gpus_per_worker and retries at least 0"
            )

    def run(
        self, model: nn.Module, tasks: Sequence[UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]:
        if not tasks:
            return
        check_sendable(tasks[0])
        ray = _ray(local=self.address is None)
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            yield from self._submit(ray, model, tasks)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> None:
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address is None:
            cpus = (self.workers or available_cores()) * self.threads
            ray.init(
                num_cpus=cpus, _node_ip_address=LOCAL_ADDRESS, include_dashboard=False, **quiet
            )
        else:
            ray.init(address=self.address, **quiet)

    def _submit(
        self, ray: Any, model: nn.Module, tasks: Sequence[UnitTask]
    ) -> Iterator[tuple[UnitTask, UnitInfo]]:
        remote = ray.remote(_run_unit).options(
            num_cpus=self.threads, num_gpus=self.gpus_per_worker, max_retries=self.retries
        )
        model_ref = ray.put(model)  # the weights go into the object store once
        window = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // self.threads)
        queue = list(reversed(tasks))
        in_flight: dict[Any, UnitTask] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    task = queue.pop()
                    ref = remote.remote(model_ref, task, self.threads, self.gpus_per_worker)
                    in_flight[ref] = task
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    task = in_flight.pop(ref)
                    yield task, ray.get(ref)  # a task's error is raised here
        finally:
            for ref in in_flight:
                ray.cancel(ref)
