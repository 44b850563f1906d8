"""Running a campaign unit by unit, resumable after any crash.

Units share nothing but their files: each is planned from the spec alone,
attacked as one batch and written atomically, so a killed run loses at most
the units in flight, which the next run redoes from scratch with the same
result (the attack is deterministic). An engine (`jsma.campaign.engines`) runs
them, in this process or in worker processes; the rows are the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from tqdm.auto import tqdm

from jsma.campaign.engines import Engine, InProcess, UnitTask
from jsma.campaign.location import Folder, folder_at
from jsma.campaign.manifest import (
    DataRecord,
    Manifest,
    ModelRecord,
    open_campaign,
    spec_differences,
)
from jsma.campaign.spec import CampaignSpec, WorkUnit
from jsma.campaign.store import (
    SCHEMA,
    UNITS,
    UnitInfo,
    UnitStamp,
    read_unit,
    remove_stale_temporaries,
    unit_info,
)
from jsma.campaign.unit import UnitData, run_unit
from jsma.data.dataset import Dataset
from jsma.errors import CampaignError, Interrupted
from jsma.models.evaluation import check_model_fits

__all__ = [
    "CampaignStatus",
    "campaign_status",
    "data_fingerprint",
    "describe_campaign",
    "load_results",
    "model_fingerprint",
    "run_campaign",
    "run_unit",
]

logger = logging.getLogger(__name__)


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers: names, dtypes, shapes, values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        # reshape: a 0-dim tensor (batch norm's step count) has no byte view of its own.
        digest.update(
            value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b""
        )
    return digest.hexdigest()


def data_fingerprint(dataset: Dataset, splits: tuple[str, ...]) -> str:
    """SHA-256 of the images and labels of the campaign's splits."""
    digest = hashlib.sha256()
    for name in splits:
        split = dataset.split(name)
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CampaignStatus:
    """How far a campaign is. `seconds` sums the time spent in finished units."""

    directory: Folder
    units_done: int
    units_total: int
    attacks_done: int
    attacks_total: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.units_done == self.units_total

    @property
    def throughput(self) -> float:
        """Attacks per second over the finished units."""
        return self.attacks_done / self.seconds if self.seconds > 0 else float("nan")

    @property
    def eta_seconds(self) -> float:
        """Seconds left at the throughput so far (NaN before the first unit)."""
        if not self.attacks_done:
            return float("nan")
        return (self.attacks_total - self.attacks_done) / self.throughput


def _check_same(stored: Manifest, asked: Manifest, directory: Folder) -> None:
    problems = []
    if stored.spec != asked.spec:
        changes = "; ".join(spec_differences(stored.spec, asked.spec))
        problems.append(f"the configuration differs ({changes})")
    if stored.model.fingerprint != asked.model.fingerprint:
        problems.append("the model differs (its weights do not match the stored fingerprint)")
    if stored.data.fingerprint != asked.data.fingerprint:
        problems.append("the data differs (the images or labels do not match)")
    if problems:
        raise CampaignError(
            f"{directory}: cannot resume this campaign: {'; '.join(problems)}. "
            "Resume with the same model, data and settings, or start a new directory."
        )


def describe_campaign(
    spec: CampaignSpec,
    model: nn.Module,
    dataset: Dataset,
    model_description: Mapping[str, Any] | None = None,
) -> Manifest:
    """The manifest of a campaign of `spec` against `model` on `dataset`."""
    return Manifest.new(
        spec,
        ModelRecord(model_fingerprint(model), dict(model_description or {})),
        DataRecord(
            fingerprint=data_fingerprint(dataset, spec.splits),
            source=dataset.source,
            num_classes=dataset.num_classes,
            input_shape=tuple(dataset.input_shape),
            bounds=dataset.bounds,
            split_sizes={split: len(dataset.split(split)) for split in spec.splits},
        ),
    )


def run_campaign(
    directory: str | os.PathLike[str] | Folder,
    spec: CampaignSpec,
    model: nn.Module,
    dataset: Dataset,
    *,
    model_description: dict[str, Any] | None = None,
    progress: bool = False,
    engine: Engine | None = None,
) -> CampaignStatus:
    """Run (or resume) a campaign in `directory`; return its status at the end.

    `directory` is a local path, or a storage URI (`s3://bucket/prefix`, `gs://...`,
    `file:///...`) that `pyarrow.fs` opens, or a `Folder`. A new directory gets a
    manifest; an existing one must match the spec, the model and the data, or a
    `CampaignError` says what differs. Units whose
    files are present and sound are skipped; the others are (re)done by
    `engine` (default: one after another in this process; `local_engine(N)`
    for N processes). The rows do not depend on the engine, so a campaign
    started by one can be resumed by another.

    Example:
        >>> spec = CampaignSpec(splits=("test",), samples=100)  # doctest: +SKIP
        >>> status = run_campaign(Path("runs/lenet"), spec, model, load_mnist())  # doctest: +SKIP
    """
    check_model_fits(model, dataset)  # before anything is written
    asked = describe_campaign(spec, model, dataset, model_description)
    folder = folder_at(directory)
    folder.check()
    folder.ensure_writable(UNITS)
    with folder.lock():
        stored = Manifest.read(folder)
        if stored is None:
            asked.write(folder)
            stored = asked
        else:
            _check_same(stored, asked, folder)
        if removed := remove_stale_temporaries(folder):
            logger.info("%s: removed %d temporary files of killed runs", folder, removed)
        return _run_units(folder, stored, model, dataset, engine or InProcess(), progress=progress)


def _run_units(
    directory: Folder,
    manifest: Manifest,
    model: nn.Module,
    dataset: Dataset,
    engine: Engine,
    *,
    progress: bool,
) -> CampaignStatus:
    # One verification pass decides what is done; finished units are added as they land.
    finished = _finished_units(directory, manifest)
    status = _status(directory, manifest, finished)
    bar = tqdm(
        total=status.attacks_total,
        initial=status.attacks_done,
        disable=not progress,
        unit="attack",
        desc="campaign",
        smoothing=0.1,
    )
    tasks = [
        UnitTask(directory, _stamp(manifest, unit), manifest.spec, UnitData.cut(dataset, unit))
        for unit in manifest.units
        if unit.name not in finished
    ]
    try:
        for task, info in engine.run(model, tasks):
            finished[task.name] = info
            bar.update(info.rows)
    except KeyboardInterrupt:
        # A worker may have written its unit before the driver heard of it: count what
        # is on disk (footers only: resume verifies every file anyway).
        expected = manifest.attacks_per_unit
        for task in tasks:
            landed = None if task.name in finished else unit_info(directory, task.stamp)
            if landed is not None and landed.rows == expected[task.name]:
                finished[task.name] = landed
        done = _status(directory, manifest, finished)
        raise Interrupted(
            f"{done.units_done} of {done.units_total} units done and kept; "
            f"`jsma campaign resume {directory}` continues"
        ) from None
    finally:
        bar.close()
    return _status(directory, manifest, finished)


def _stamp(manifest: Manifest, unit: WorkUnit) -> UnitStamp:
    return UnitStamp(unit, manifest.spec.digest(), manifest.model.fingerprint)


def _finished_units(directory: Folder, manifest: Manifest) -> dict[str, UnitInfo]:
    """The units whose files pass every check, by name.

    Every unit file is verified in full: a damaged one counts as not done.
    """
    finished = {}
    attacks = manifest.attacks_per_unit
    for unit in manifest.units:
        stamp = _stamp(manifest, unit)
        info = unit_info(directory, stamp)
        if info is not None and info.rows == attacks[unit.name] and read_unit(directory, stamp):
            finished[unit.name] = info
    return finished


def _status(directory: Folder, manifest: Manifest, finished: dict[str, UnitInfo]) -> CampaignStatus:
    return CampaignStatus(
        directory=directory,
        units_done=len(finished),
        units_total=len(manifest.units),
        attacks_done=sum(info.rows for info in finished.values()),
        attacks_total=manifest.attacks_total,
        seconds=sum(info.seconds for info in finished.values()),
    )


def campaign_status(directory: str | os.PathLike[str] | Folder) -> CampaignStatus:
    """Done and total units and attacks, and the time spent, from the files alone.

    Every unit file is verified in full: a damaged one counts as not done.
    """
    folder = folder_at(directory)
    manifest = open_campaign(folder)
    return _status(folder, manifest, _finished_units(folder, manifest))


def load_results(
    directory: str | os.PathLike[str] | Folder, *, allow_partial: bool = False
) -> pa.Table:
    """Every stored attack of a campaign, one row each, in unit order.

    Each unit file is fully verified. An incomplete campaign raises a
    `CampaignError` unless `allow_partial`.
    """
    folder = folder_at(directory)
    manifest = open_campaign(folder)
    tables, missing = [], []
    for unit in manifest.units:
        table = read_unit(folder, _stamp(manifest, unit))
        if table is None:
            missing.append(unit.name)
        else:
            tables.append(table.replace_schema_metadata(None))
    if missing and not allow_partial:
        raise CampaignError(
            f"{folder}: {len(missing)} of {len(manifest.units)} units are missing or "
            f"damaged (first: {missing[0]}); resume the campaign to finish them"
        )
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
