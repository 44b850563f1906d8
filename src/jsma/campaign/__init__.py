"""Campaigns: every sample of a set attacked towards chosen targets, resumably."""

from jsma.campaign._campaign import Campaign, CampaignLike, CampaignStatus, crafted_samples
from jsma.campaign._engines import (
    Engine,
    InProcess,
    LocalPool,
    UnitTask,
    available_cores,
    local_engine,
)
from jsma.campaign._manifest import MANIFEST_NAME, DataRecord, Manifest, ModelRecord, open_campaign
from jsma.campaign._runner import (
    campaign_status,
    create_campaign,
    data_fingerprint,
    describe_campaign,
    load_results,
    model_fingerprint,
    run_campaign,
)
from jsma.campaign._samples import CraftedSamples, originals_of, rebuilt_samples
from jsma.campaign._spec import AttackSettings, CampaignSpec, FeatureMask, TargetRule, WorkUnit
from jsma.campaign._store import SCHEMA
from jsma.campaign.location import ArrowFolder, Folder, LocalFolder, folder_at
from jsma.errors import CampaignError

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA",
    "ArrowFolder",
    "AttackSettings",
    "Campaign",
    "CampaignError",
    "CampaignLike",
    "CampaignSpec",
    "CampaignStatus",
    "CraftedSamples",
    "DataRecord",
    "Engine",
    "FeatureMask",
    "Folder",
    "InProcess",
    "LocalFolder",
    "LocalPool",
    "Manifest",
    "ModelRecord",
    "TargetRule",
    "UnitTask",
    "WorkUnit",
    "available_cores",
    "campaign_status",
    "crafted_samples",
    "create_campaign",
    "data_fingerprint",
    "describe_campaign",
    "folder_at",
    "load_results",
    "local_engine",
    "model_fingerprint",
    "open_campaign",
    "originals_of",
    "rebuilt_samples",
    "run_campaign",
]
