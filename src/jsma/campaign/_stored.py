"""One campaign's storage, opened once: what `jsma.campaign.Campaign` reads with.

Everything that reads a campaign (the report, detection, transfer, the study,
the defenses, `status`) goes through one object: its manifest is read and
checked once, and each unit file is opened, verified in full (footer, page
checksums, the digest of its values, the rows' consistency) and kept at most
once per object, so a report over a bucket costs one GET per unit, not six.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from jsma._io import atomic_write
from jsma.campaign._manifest import Manifest
from jsma.campaign._samples import CraftedSamples, rebuilt_samples
from jsma.campaign._spec import WorkUnit
from jsma.campaign._status import CampaignStatus, unit_successes
from jsma.campaign._store import SCHEMA, UnitInfo, UnitStamp, read_unit, table_info
from jsma.campaign.location import Folder, LocalFolder
from jsma.data._dataset import PIXEL_SCALE, Dataset
from jsma.errors import CampaignError, ConfigurationError, JSMAError
from jsma.metrics import CampaignArrays

__all__: list[str] = []  # the package exports `Campaign`, which builds on this


def data_fingerprint(dataset: Dataset, splits: tuple[str, ...]) -> str:
    """SHA-256 of the images and labels of the campaign's splits (and of how stored
    values map to inputs, where that is not MNIST's k / 256)."""
    digest = hashlib.sha256()
    for name in splits:
        split = dataset.split(name)
        digest.update(name.encode())
        if split.scale != PIXEL_SCALE or split.images.dtype != np.uint8:
            # Not in MNIST's digest, so that campaigns of earlier versions still match.
            digest.update(f"{split.images.dtype.str}/{split.scale!r};".encode())
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()


class StoredCampaign:
    """A campaign's manifest, read once, and its unit files, each verified at most once
    per object: the reading half of `jsma.campaign.Campaign`."""

    def __init__(self, folder: Folder, manifest: Manifest) -> None:
        self.folder, self.manifest = folder, manifest
        self._tables: dict[str, pa.Table | None] = {}
        self._arrays: CampaignArrays | None = None

    @property
    def name(self) -> str:
        return self.folder.name

    def __str__(self) -> str:
        return str(self.folder)

    def stamp(self, unit: WorkUnit) -> UnitStamp:
        """What the file of `unit` must say about itself to be trusted."""
        manifest = self.manifest
        return UnitStamp(
            unit, manifest.spec.digest(), manifest.model.fingerprint, manifest.earlier_digests
        )

    def table(self, unit: WorkUnit) -> pa.Table | None:
        """The unit's verified rows (None: absent or damaged), read once per object."""
        if unit.name not in self._tables:
            self._tables[unit.name] = read_unit(self.folder, self.stamp(unit))
        return self._tables[unit.name]

    def landed(self, unit: WorkUnit) -> None:
        """A unit's file was (re)written: read it afresh when next asked."""
        self._tables.pop(unit.name, None)
        self._arrays = None

    def finished(self) -> dict[str, UnitInfo]:
        """The units whose files pass every check, with their footers' account."""
        attacks = self.manifest.attacks_per_unit
        found = {}
        for unit in self.manifest.units:
            table = self.table(unit)
            if table is not None and table.num_rows == attacks[unit.name]:
                found[unit.name] = table_info(table)
        return found

    def status(self, finished: dict[str, UnitInfo] | None = None) -> CampaignStatus:
        """Done and total units and attacks, and the time spent, from the files alone."""
        done = self.finished() if finished is None else finished
        # A verified table already read gives its successes; a unit that landed in this
        # run gives them from one column, not from verifying the whole file again.
        successes = sum(
            int(np.count_nonzero(table.column("success").to_numpy()))
            if (table := self._tables.get(unit.name)) is not None
            else unit_successes(self.folder, unit)
            for unit in self.manifest.units
            if unit.name in done
        )
        return CampaignStatus(
            directory=self.folder,
            units_done=len(done),
            units_total=len(self.manifest.units),
            attacks_done=sum(info.rows for info in done.values()),
            attacks_total=self.manifest.attacks_total,
            seconds=sum(info.seconds for info in done.values()),
            successes=successes,
            clean=self.manifest.clean,
        )

    def results(self, *, allow_partial: bool = False) -> pa.Table:
        """Every stored attack, one row each, in unit order; an incomplete campaign is a
        `CampaignError` unless `allow_partial`."""
        tables, missing = [], []
        for unit in self.manifest.units:
            table = self.table(unit)
            if table is None:
                missing.append(unit.name)
            else:
                tables.append(table.replace_schema_metadata(None))
        if missing and not allow_partial:
            raise CampaignError(
                f"{self.folder}: {len(missing)} of {len(self.manifest.units)} units are "
                f"missing or damaged (first: {missing[0]}); resume the campaign to finish them"
            )
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()

    def arrays(self) -> CampaignArrays:
        """The complete campaign's rows as numpy arrays (computed once)."""
        if self._arrays is None:
            self._arrays = CampaignArrays.from_table(self.results())
        return self._arrays

    def check_data(self, dataset: Dataset) -> None:
        """A `ConfigurationError` if `dataset` is not what the campaign attacked: another
        input shape, or other inputs or labels in its splits (their fingerprint)."""
        stored = self.manifest.data
        if stored.input_shape != tuple(dataset.input_shape):
            raise ConfigurationError(
                f"{self.folder}: attacked inputs of shape {stored.input_shape}; "
                f"the data given has {tuple(dataset.input_shape)}"
            )
        if data_fingerprint(dataset, self.manifest.spec.splits) != stored.fingerprint:
            raise ConfigurationError(
                f"{self.folder}: the data given ({dataset.source}) is not the data this "
                f"campaign attacked ({stored.source}): its inputs or labels differ"
            )

    def samples(self, dataset: Dataset) -> CraftedSamples:
        """Every successful adversarial sample, rebuilt from its trajectory and the data."""
        self.check_data(dataset)
        arrays = self.arrays()
        rows = np.flatnonzero(arrays.success)
        if not len(rows):
            raise JSMAError(
                f"{self.folder}: no attack succeeded, so it holds no adversarial sample"
            )
        adversarial, originals = rebuilt_samples(arrays, rows, dataset)
        return CraftedSamples(
            adversarial=torch.from_numpy(adversarial).float(),
            originals=torch.from_numpy(originals),
            sources=torch.from_numpy(arrays.source[rows]),
            targets=torch.from_numpy(arrays.target[rows]),
            distortion=arrays.distortion[rows],
        )

    def export(self, dataset: Dataset, path: Path) -> int:
        """Every attack's sample as it ended, rebuilt from its trajectory and the data,
        with its original and outcome, into a `.npz` at `path` (written atomically);
        returns the number of attacks. Arrays: `adversarial` and `original` (n,
        *input_shape) float32, `split`, `index`, `source`, `target` (-1: untargeted),
        `success`, `features_changed`, `distortion` (percent), and `class_names` when
        the data has them (else empty)."""
        if isinstance(self.folder, LocalFolder) and Path(path).resolve().is_relative_to(
            self.folder.path.resolve()
        ):
            raise CampaignError(
                f"{path}: inside the campaign {self.folder}, whose files it could replace; "
                "export to a path outside it"
            )
        self.check_data(dataset)
        arrays = self.arrays()
        rows = np.arange(len(arrays.success))
        if not len(rows):
            raise CampaignError(
                f"{self.folder}: no attack has finished yet, nothing to export "
                "(`jsma campaign resume` runs them)"
            )
        adversarial, originals = rebuilt_samples(arrays, rows, dataset)
        names = np.array(dataset.class_names or (), dtype=str)
        with atomic_write(path) as handle:
            np.savez_compressed(
                handle, adversarial=adversarial.astype(np.float32), original=originals,
                split=arrays.split, index=arrays.index, source=arrays.source,
                target=arrays.target, success=arrays.success,
                features_changed=arrays.features_changed, distortion=arrays.distortion,
                class_names=names,
            )  # fmt: skip
        return len(rows)
