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
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from jsma.campaign._engines import Engine, UnitTask
from jsma.campaign._manifest import CleanAccuracy, DataRecord, Manifest, spec_differences
from jsma.campaign._spec import CampaignSpec
from jsma.campaign._status import CampaignStatus
from jsma.campaign._store import UNITS, unit_info
from jsma.campaign._stored import StoredCampaign, data_fingerprint
from jsma.campaign._unit import UnitData
from jsma.campaign.location import Folder, folder_at
from jsma.data._dataset import Dataset
from jsma.errors import CampaignError, ConfigurationError, Interrupted
from jsma.models._evaluation import check_model_fits, predict
from jsma.models._reference import ModelProvenance, model_fingerprint

__all__: list[str] = []  # the steps of `Campaign.run`

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


def manifest_of(
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


def prepared(
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
    asked = manifest_of(spec, model, dataset, provenance)
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


def opened(folder: Folder, asked: Manifest) -> StoredCampaign:
    """Under the folder's lock: the campaign there, its manifest written (a new one) or
    reconciled with the one asked for."""
    stored = Manifest.read(folder)
    if stored is None:
        asked.write(folder)
        return StoredCampaign(folder, asked)
    return StoredCampaign(folder, _reconciled(stored, asked, folder))


def run_units(
    campaign: StoredCampaign,
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
