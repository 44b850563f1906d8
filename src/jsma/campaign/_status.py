"""How far a campaign is, read without torch: `glance` reads the manifest's JSON and
the unit files' footers, so that `jsma campaign status` takes a fraction of a second
(the package's other modules load torch)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from jsma._records import loads_json
from jsma.campaign._store import UnitStamp, WorkUnit, unit_info, unit_name
from jsma.campaign.location import Folder, folder_at
from jsma.errors import CampaignError

__all__ = ["CampaignStatus", "CleanAccuracy"]  # and `glance`, for the command line

MANIFEST_NAME = "campaign.json"


@dataclass(frozen=True)
class CleanAccuracy:
    """How many of the campaign's attacked samples the model classifies correctly before
    any attack (recorded from jsma 0.4; absent in older campaigns)."""

    correct: int
    samples: int

    @property
    def rate(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")

    def near_chance(self, num_classes: int) -> bool:
        """Less than a quarter of the way from chance (1 / classes) to every sample right:
        a model of other data, or with its classes in another order."""
        chance = 1 / num_classes
        return self.rate < chance + (1 - chance) / 4


@dataclass(frozen=True)
class CampaignStatus:
    """How far a campaign is. `seconds` sums the time spent in finished units."""

    directory: Folder
    units_done: int
    units_total: int
    attacks_done: int
    attacks_total: int
    seconds: float
    successes: int = 0  # of the attacks done
    clean: CleanAccuracy | None = None  # the model on the attacked samples, unattacked

    @property
    def complete(self) -> bool:
        return self.units_done == self.units_total

    @property
    def success_rate(self) -> float:
        """The share of the attacks done that succeeded (NaN before the first unit)."""
        return self.successes / self.attacks_done if self.attacks_done else float("nan")

    @property
    def throughput(self) -> float:
        """Attacks per second of attack time: the finished units' attacks over the seconds
        their attacks took, summed over workers (loading and start-up not counted)."""
        return self.attacks_done / self.seconds if self.seconds > 0 else float("nan")

    @property
    def eta_seconds(self) -> float:
        """Seconds left at the throughput so far (NaN before the first unit)."""
        if not self.attacks_done:
            return float("nan")
        return (self.attacks_total - self.attacks_done) / self.throughput


def glance(where: str | os.PathLike[str] | Folder) -> CampaignStatus:
    """The status of the campaign at `where` from its manifest's JSON (its digest
    checked) and its units' footers (each checked against the unit, the spec and the
    model, as `Campaign.status` does before it verifies every value), without torch."""
    folder = folder_at(where)
    content = _manifest(folder)
    try:
        digests = [str(d) for d in content.get("unit_digests") or [content["spec_digest"]]]
        fingerprint = str(content["model"]["fingerprint"])
        planned = [
            (WorkUnit(str(u["split"]), int(u["start"]), int(u["stop"])), int(u["attacks"]))
            for u in content["units"]
        ]
        clean = content.get("clean_accuracy")
        accuracy = None if clean is None else CleanAccuracy(int(clean["correct"]),
                                                            int(clean["samples"]))  # fmt: skip
        total = int(content["attacks_total"])
    except (KeyError, TypeError, ValueError) as error:
        raise CampaignError(
            f"{folder}/{MANIFEST_NAME}: damaged campaign manifest ({error})"
        ) from None
    done = attacks = successes = 0
    seconds = 0.0
    for unit, expected in planned:
        stamp = UnitStamp(unit, digests[0], fingerprint, tuple(digests[1:]))
        info = unit_info(folder, stamp)
        if info is None or info.rows != expected:
            continue
        done, attacks, seconds = done + 1, attacks + info.rows, seconds + info.seconds
        successes += unit_successes(folder, unit)
    return CampaignStatus(folder, done, len(planned), attacks, total, seconds, successes, accuracy)


def unit_successes(folder: Folder, unit: WorkUnit) -> int:
    """How many of a unit's attacks succeeded: its `success` column alone, read from a
    file whose footer was checked (not every value: `status` counts, it does not verify)."""
    with folder.open(unit_name(unit)) as source:
        success = pq.read_table(source, columns=["success"]).column("success")
    return int(np.count_nonzero(success.to_numpy(zero_copy_only=False)))


def _manifest(folder: Folder) -> dict[str, Any]:
    where = f"{folder}/{MANIFEST_NAME}"
    try:
        folder.check()
    except CampaignError:
        raise CampaignError(f"{folder}: not a directory, so not a campaign") from None
    try:
        data = folder.read(MANIFEST_NAME)
        if data is None:
            raise CampaignError(f"{folder}: no campaign here (no {MANIFEST_NAME})")
        content = loads_json(data.decode("utf-8"))
    except (OSError, ValueError) as error:
        raise CampaignError(f"{where}: unreadable campaign manifest ({error})") from None
    if not isinstance(content, dict):
        raise CampaignError(f"{where}: a campaign manifest is a JSON object")
    rest = {key: value for key, value in content.items() if key != "digest"}
    if "digest" in content and content["digest"] != manifest_digest(rest):
        raise CampaignError(f"{where}: the manifest was edited or damaged (its digest differs)")
    return content


def manifest_digest(content: Mapping[str, Any]) -> str:
    """The digest a manifest stores of the rest of its content (an unkeyed SHA-256: it
    catches accidents, not someone who recomputes it)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
