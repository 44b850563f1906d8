"""Campaigns: every sample of a set attacked towards chosen targets, resumably.

Names load on first use (PEP 562): `jsma campaign status` reads a campaign without
importing torch, which the attack's modules need.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

# Where each public name lives, below this package.
_LAZY = {
    "_campaign": ("Campaign", "CampaignRef"),
    "_engines": (
        "Engine", "InProcess", "LocalPool", "local_engine",
    ),
    "_manifest": ("DataRecord", "Manifest"),
    "_samples": ("CraftedSamples", "rebuilt_samples"),
    "_spec": ("AttackSettings", "CampaignSpec", "FeatureMask", "TargetRule"),
    "_status": ("CampaignStatus", "CleanAccuracy"),
    "_store": ( "WorkUnit"),
    "location": ("ArrowFolder", "Folder", "folder_at"),
}  # fmt: skip
_HOME = {name: module for module, names in _LAZY.items() for name in names}

if _typing.TYPE_CHECKING:
    from jsma.campaign._campaign import Campaign, CampaignRef
    from jsma.campaign._engines import Engine, InProcess, LocalPool, local_engine
    from jsma.campaign._manifest import DataRecord, Manifest
    from jsma.campaign._samples import CraftedSamples
    from jsma.campaign._spec import AttackSettings, CampaignSpec, FeatureMask
    from jsma.campaign._status import CampaignStatus, CleanAccuracy
    from jsma.campaign.location import ArrowFolder, Folder


if not _typing.TYPE_CHECKING:  # hidden from mypy, which would read any attribute as Any

    def __getattr__(name: str) -> _typing.Any:
        if name not in _HOME:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value  # once: later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ArrowFolder",
    "AttackSettings",
    "Campaign",
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
    "LocalPool",
    "Manifest",
    "local_engine",
]
