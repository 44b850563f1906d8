"""Campaigns: every sample of a set attacked towards chosen targets, resumably."""

from jsma.campaign.runner import (
    CampaignStatus,
    campaign_status,
    data_fingerprint,
    load_results,
    model_fingerprint,
    run_campaign,
    run_unit,
)
from jsma.campaign.spec import AttackSettings, CampaignSpec, TargetRule, WorkUnit
from jsma.campaign.store import SCHEMA, CampaignError

__all__ = [
    "SCHEMA",
    "AttackSettings",
    "CampaignError",
    "CampaignSpec",
    "CampaignStatus",
    "TargetRule",
    "WorkUnit",
    "campaign_status",
    "data_fingerprint",
    "load_results",
    "model_fingerprint",
    "run_campaign",
    "run_unit",
]
