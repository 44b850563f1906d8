"""Running a campaign unit by unit, resumable after any crash.

Units share nothing but their files: each is planned from the spec alone,
attacked as one batch and written atomically, so a killed run loses at most
the units in flight, which the next run redoes from scratch with the same
result (the attack is deterministic). An engine (`jsma.campaign._engines`) runs
them, in this process or in worker processes; the rows are the same.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from tqdm.auto import tqdm

from jsma.campaign._campaign import Campaign, CampaignLike, CampaignStatus, data_fingerprint
from jsma.campaign._engines import Engine, InProcess, UnitTask
from jsma.campaign._manifest import CleanAccuracy, DataRecord, Manifest, spec_differences
from jsma.campaign._spec import CampaignSpec
from jsma.campaign._store import UNITS, remove_stale_temporaries, unit_info
from jsma.campaign._unit import UnitData
from jsma.campaign.location import Folder, folder_at
from jsma.data._dataset import Dataset
from jsma.errors import CampaignError, ConfigurationError, Interrupted
from jsma.models._evaluation import check_model_fits, predict
from jsma.models._reference import ModelProvenance, model_fingerprint

__all__ = [
    "CampaignStatus",
    "campaign_status",
    "create_campaign",
    "data_fingerprint",
    "describe_campaign",
    "load_results",
    "model_fingerprint",
    "run_campaign",
]

logger = logging.getLogger(__name__)


def _reconciled(stored: Manifest, asked: Manifest, directory: Folder) -> Manifest:
    """The manifest to run by: the stored one, or the stored one extended to more
    samples when that is the only difference; else a `CampaignError` naming what
    differs."""
    grown = dataclasses.replace(asked.spec, samples=stored.spec.samples) == stored.spec and (
        asked.spec.samples is None
        or (stored.spec.samples is not None and asked.spec.samples > stored.spec.samples)
    )
    same_model_and_data = (stored.model.fingerprint, stored.data.fingerprint) == (
        asked.model.fingerprint,
        asked.data.fingerprint,
    )
    if grown and same_model_and_data:
        extended = stored.extended(asked.spec.samples, asked.clean)
        logger.info(
            "%s: extended from %s to %s samples per split; %d units to add",
            directory, stored.spec.samples or "all", asked.spec.samples or "all",
            len({u.name for u in extended.units} - {u.name for u in stored.units}),
        )  # fmt: skip
        extended.write(directory)
        return extended
    _check_same(stored, asked, directory)
    return stored


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
            "Resume with the same model, data and settings (only the sample count may grow), "
            "or start a new directory."
        )


def describe_campaign(
    spec: CampaignSpec,
    model: nn.Module,
    dataset: Dataset,
    provenance: ModelProvenance | None = None,
) -> Manifest:
    """The manifest of a campaign of `spec` against `model` on `dataset`; `provenance`
    (default: the module's own) must be that of `model`."""
    if provenance is None:
        provenance = ModelProvenance.of(model)
    elif provenance.fingerprint != model_fingerprint(model):
        raise ConfigurationError(
            "the provenance given is another model's (its fingerprint is not this model's)"
        )
    if spec.mask is not None:
        spec.mask.check_fits(tuple(dataset.input_shape))
    if spec.attack.binary:
        _check_binary(spec, dataset)
    if empty := [split for split in spec.splits if len(dataset.split(split)) == 0]:
        sizes = ", ".join(f"{s.name} {len(s)}" for s in dataset.splits())
        raise ConfigurationError(
            f"{dataset.source} has no {' or '.join(empty)} samples to attack (it has {sizes}); "
            "choose splits that it has (--splits)"
        )
    return Manifest.new(
        spec,
        provenance,
        clean=clean_accuracy(model, dataset, spec),
        data=DataRecord(
            fingerprint=data_fingerprint(dataset, spec.splits),
            source=dataset.source,
            num_classes=dataset.num_classes,
            input_shape=tuple(dataset.input_shape),
            bounds=dataset.bounds,
            split_sizes={split: len(dataset.split(split)) for split in spec.splits},
            location=dataset.location,
            class_names=dataset.class_names,
        ),
    )


def _attacked(
    spec: CampaignSpec, dataset: Dataset, chunk: int = 4096
) -> Iterator[tuple[str, np.ndarray, torch.Tensor, torch.Tensor]]:
    """The samples `spec` attacks, by split, in chunks (bounded memory on any input size):
    (split, their indices, inputs, labels)."""
    for name in spec.splits:
        split = dataset.split(name)
        count = len(split) if spec.samples is None else min(spec.samples, len(split))
        attacked = spec.sample_indices(name, split.labels)[:count]
        for begin in range(0, count, chunk):
            indices = attacked[begin : begin + chunk]
            yield (name, indices, *split.tensors(indices))


def _check_binary(spec: CampaignSpec, dataset: Dataset) -> None:
    """Binary features must sit at a bound: the first attacked sample that has one
    elsewhere is named by its split and index (the attack itself can name only its
    batch row)."""
    low, high = dataset.bounds
    for name, indices, images, _ in _attacked(spec, dataset):
        values = images.flatten(1)
        off = ~((values == low) | (values == high))
        if bool(off.any()):
            row, feature = (int(i) for i in off.nonzero()[0])
            raise ConfigurationError(
                f"binary features must be at one of their bounds ({low:g} or {high:g}); "
                f"{name} sample {int(indices[row])} has feature {feature} = "
                f"{float(values[row, feature]):g}"
            )


def clean_accuracy(model: nn.Module, dataset: Dataset, spec: CampaignSpec) -> CleanAccuracy:
    """How many of the samples `spec` attacks `model` classifies correctly, unattacked."""
    correct = samples = 0
    for _, _, images, labels in _attacked(spec, dataset):
        correct += int((predict(model, images) == labels).sum())
        samples += len(labels)
    return CleanAccuracy(correct, samples)


def run_campaign(
    directory: str | os.PathLike[str] | Folder,
    spec: CampaignSpec,
    model: nn.Module,
    dataset: Dataset,
    *,
    provenance: ModelProvenance | None = None,
    progress: bool = False,
    engine: Engine | None = None,
    model_description: Mapping[str, Any] | None = None,
    refuse_near_chance: bool = False,
) -> CampaignStatus:
    """Run (or resume) a campaign in `directory`; return its status at the end.

    `directory` is a local path, or a storage URI (`s3://bucket/prefix`, `gs://...`,
    `file:///...`) that `pyarrow.fs` opens, or a `Folder`. A new directory gets a
    manifest; an existing one must match the spec, the model and the data, or a
    `CampaignError` says what differs. Units whose
    files are present and sound are skipped; the others are (re)done by
    `engine` (default: one after another in this process; `local_engine(N)`
    for N processes). The rows do not depend on the engine, so a campaign
    started by one can be resumed by another. `provenance` says where `model` came
    from (`jsma.models.describe_model` for a checkpoint; default: the module alone).
    `model_description` (a dict, jsma 0.2.0) is deprecated: give `provenance`. The
    model's accuracy on the attacked samples is measured and stored in the manifest;
    `refuse_near_chance`: a `CampaignError` before anything is written when it is near
    chance (`CleanAccuracy.near_chance`).

    Example:
        >>> spec = CampaignSpec(splits=("test",), samples=100)  # doctest: +SKIP
        >>> status = run_campaign(Path("runs/lenet"), spec, model, load_mnist())  # doctest: +SKIP
    """
    if model_description is not None:
        warnings.warn(
            "model_description is deprecated: give provenance=ModelProvenance.of(model, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        provenance = ModelProvenance.from_description(model_fingerprint(model), model_description)
    folder, asked = _asked(
        directory, spec, model, dataset, provenance, refuse_near_chance=refuse_near_chance
    )
    with folder.lock():
        campaign = _opened(folder, asked)
        if removed := remove_stale_temporaries(folder):
            logger.info("%s: removed %d temporary files of killed runs", folder, removed)
        return _run_units(campaign, model, dataset, engine or InProcess(), progress=progress)


def create_campaign(
    where: str | os.PathLike[str] | Folder,
    spec: CampaignSpec,
    model: nn.Module,
    dataset: Dataset,
    *,
    provenance: ModelProvenance | None = None,
) -> Campaign:
    """The campaign of `spec` against `model` on `dataset` at `where`, its manifest
    written and no unit run (`run_campaign` runs them). A campaign already there must
    be this one, or the same with fewer samples (it is extended); else a
    `CampaignError` names what differs."""
    folder, asked = _asked(where, spec, model, dataset, provenance)
    with folder.lock():
        return _opened(folder, asked)


def _asked(
    where: str | os.PathLike[str] | Folder,
    spec: CampaignSpec,
    model: nn.Module,
    dataset: Dataset,
    provenance: ModelProvenance | None,
    *,
    refuse_near_chance: bool = False,
) -> tuple[Folder, Manifest]:
    """The folder, checked writable, and the manifest a campaign there must have."""
    check_model_fits(model, dataset)  # before anything is written
    asked = describe_campaign(spec, model, dataset, provenance)
    clean = asked.clean
    assert clean is not None
    logger.info(
        "clean accuracy on the %d attacked samples: %.2f%%", clean.samples, 100 * clean.rate
    )
    if refuse_near_chance and clean.near_chance(dataset.num_classes):
        raise CampaignError(
            f"the model classifies {clean.rate:.1%} of the {clean.samples} attacked samples "
            f"correctly, near chance ({1 / dataset.num_classes:.1%} for "
            f"{dataset.num_classes} classes): is it the model of this data, with its classes "
            "in the same order? Attack it anyway with --allow-weak-model"
        )
    folder = folder_at(where)
    folder.check()
    folder.ensure_writable(UNITS)
    return folder, asked


def _opened(folder: Folder, asked: Manifest) -> Campaign:
    """Under the folder's lock: the campaign there, its manifest written (a new one) or
    reconciled with the one asked for."""
    stored = Manifest.read(folder)
    if stored is None:
        asked.write(folder)
        return Campaign(folder, asked)
    return Campaign(folder, _reconciled(stored, asked, folder))


def _run_units(
    campaign: Campaign,
    model: nn.Module,
    dataset: Dataset,
    engine: Engine,
    *,
    progress: bool,
) -> CampaignStatus:
    # One verification pass decides what is done; finished units are added as they land.
    manifest = campaign.manifest
    finished = campaign.finished()
    status = campaign.status(finished)
    bar = tqdm(
        total=status.attacks_total,
        initial=status.attacks_done,
        disable=not progress,
        unit="attack",
        desc="campaign",
        smoothing=0.1,
    )
    spec = manifest.spec
    orders = {s: spec.sample_indices(s, dataset.split(s).labels) for s in spec.splits}
    tasks = [
        UnitTask(
            campaign.folder,
            campaign.stamp(unit),
            spec,
            UnitData.cut(dataset, unit, orders[unit.split]),
        )
        for unit in manifest.units
        if unit.name not in finished
    ]
    try:
        for task, info in engine.run(model, tasks):
            campaign.landed(task.stamp.unit)
            finished[task.name] = info
            bar.update(info.rows)
    except KeyboardInterrupt:
        # A worker may have written its unit before the driver heard of it: count what
        # is on disk (footers only: resume verifies every file anyway).
        expected = manifest.attacks_per_unit
        for task in tasks:
            landed = None if task.name in finished else unit_info(campaign.folder, task.stamp)
            if landed is not None and landed.rows == expected[task.name]:
                finished[task.name] = landed
        done = campaign.status(finished)
        raise Interrupted(
            f"{done.units_done} of {done.units_total} units done and kept; "
            f"`jsma campaign resume {campaign.folder}` continues"
        ) from None
    finally:
        bar.close()
    return campaign.status(finished)


def campaign_status(directory: CampaignLike) -> CampaignStatus:
    """Done and total units and attacks, and the time spent, from the files alone.

    Every unit file is verified in full: a damaged one counts as not done.
    """
    return Campaign.open(directory).status()


def load_results(directory: CampaignLike, *, allow_partial: bool = False) -> pa.Table:
    """Every stored attack of a campaign, one row each, in unit order.

    Each unit file is fully verified. An incomplete campaign raises a
    `CampaignError` unless `allow_partial`.
    """
    return Campaign.open(directory).results(allow_partial=allow_partial)
