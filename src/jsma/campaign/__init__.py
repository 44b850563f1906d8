"""Campaigns: every sample of a set attacked towards chosen targets, resumably.

Names load on first use (PEP 562): `jsma campaign status` reads a campaign without
importing torch, which the attack's modules need.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from jsma.errors import CampaignError

# Where each public name lives, below this package.
_LAZY = {
    "_campaign": ("Campaign", "CampaignLike", "CampaignRef"),
    "_engines": (
        "Engine", "InProcess", "LocalPool", "UnitTask", "available_cores", "local_engine",
    ),
    "_manifest": ("DataRecord", "MANIFEST_NAME", "Manifest"),
    "_samples": ("CraftedSamples", "originals_of", "rebuilt_samples"),
    "_spec": ("AttackSettings", "CampaignSpec", "FeatureMask", "TargetRule"),
    "_status": ("CampaignStatus", "CleanAccuracy"),
    "_store": ("SCHEMA", "WorkUnit"),
    "location": ("ArrowFolder", "Folder", "LocalFolder", "folder_at"),
}  # fmt: skip
_HOME = {name: module for module, names in _LAZY.items() for name in names}

if _typing.TYPE_CHECKING:
    from jsma.campaign._campaign import Campaign, CampaignLike, CampaignRef
    from jsma.campaign._engines import (
        Engine,
        InProcess,
        LocalPool,
        UnitTask,
        available_cores,
        local_engine,
    )
    from jsma.campaign._manifest import MANIFEST_NAME, DataRecord, Manifest
    from jsma.campaign._samples import CraftedSamples, originals_of, rebuilt_samples
    from jsma.campaign._spec import AttackSettings, CampaignSpec, FeatureMask, TargetRule, WorkUnit
    from jsma.campaign._status import CampaignStatus, CleanAccuracy
    from jsma.campaign._store import SCHEMA
    from jsma.campaign.location import ArrowFolder, Folder, LocalFolder, folder_at


def __getattr__(name: str) -> _typing.Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "MANIFEST_NAME",
    "SCHEMA",
    "ArrowFolder",
    "AttackSettings",
    "Campaign",
    "CampaignError",
    "CampaignLike",
    "CampaignRef",
    "CampaignSpec",
    "CampaignStatus",
    "CleanAccuracy",
    "CraftedSamples",
    "DataRecord",
    "Engine",
    "FeatureMask",
    "Folder",
    "InProcess",
    "LocalFolder",
    "LocalPool",
    "Manifest",
    "TargetRule",
    "UnitTask",
    "WorkUnit",
    "available_cores",
    "folder_at",
    "local_engine",
    "originals_of",
    "rebuilt_samples",
]
