"""What keeps the lakehouse fresh without a person: the daily refresh (lifecycle, 360, features,
scores, outcomes, the CRM sync) and the weekly retrain of both models. Schedules run in UTC.
Event days come in through their own partitioned runs (assets/events/runs.py)."""

from __future__ import annotations

from dagster import AssetSelection, ScheduleDefinition, define_asset_job

DAILY_REFRESH = (
    AssetSelection.assets(["events", "account_lifecycle"])
    | AssetSelection.groups("c360", "features")
) | (
    AssetSelection.groups("ml", "reverse_etl")
    - AssetSelection.assets(["ml", "churn_model"], ["ml", "expansion_model"])
)
WEEKLY_RETRAIN = AssetSelection.assets(["ml", "churn_model"], ["ml", "expansion_model"])
ERASURE = AssetSelection.assets(["raw", "consent_records"], ["reverse_etl", "erasure_audit"])

daily_refresh_job = define_asset_job(
    "daily_refresh",
    selection=DAILY_REFRESH,
    description="Lifecycle, 360, features as of the freshest day, champion scores, outcomes, "
    "CRM sync.",
)
weekly_retrain_job = define_asset_job(
    "weekly_retrain",
    selection=WEEKLY_RETRAIN,
    description="Retrain both models; a new version is champion only if it beats the current one.",
)

erasure_job = define_asset_job(
    "erasure",
    selection=ERASURE,
    description="Ingest new consent records, then carry out erasure requests, alone on the lake "
    "(started by erasure_sensor when no other run is in progress).",
    tags={"lakehouse/exclusive": "true"},
)

daily_refresh = ScheduleDefinition(
    job=daily_refresh_job, cron_schedule="0 6 * * *", execution_timezone="UTC"
)
weekly_retrain = ScheduleDefinition(
    job=weekly_retrain_job, cron_schedule="0 4 * * 1", execution_timezone="UTC"
)

jobs = [daily_refresh_job, weekly_retrain_job, erasure_job]
schedules = [daily_refresh, weekly_retrain]
