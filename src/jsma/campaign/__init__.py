"""Campaigns: every sample of a set attacked towards chosen targets, resumably."""

from jsma.campaign.campaign import Campaign, CampaignLike, CampaignStatus, crafted_samples
from jsma.campaign.engines import Engine, InProcess, LocalPool, available_cores, local_engine
from jsma.campaign.location import ArrowFolder, Folder, LocalFolder, folder_at
from jsma.campaign.manifest import DataRecord, Manifest, ModelRecord, open_campaign
from jsma.campaign.runner import (
    campaign_status,
    create_campaign,
    data_fingerprint,
    describe_campaign,
    load_results,
    model_fingerprint,
    run_campaign,
)
from jsma.campaign.samples import CraftedSamples
from jsma.campaign.spec import AttackSettings, CampaignSpec, TargetRule, WorkUnit
from jsma.campaign.store import SCHEMA
from jsma.errors import CampaignError

__all__ = [
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
    "Folder",
    "InProcess",
    "LocalFolder",
    "LocalPool",
    "Manifest",
    "ModelRecord",
    "TargetRule",
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
    "run_campaign",
]
