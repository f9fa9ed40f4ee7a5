"""What keeps the lakehouse fresh without a person: entities follow the raw layer by declarative
automation, only after the raw gates passed; the daily refresh (lifecycle, 360, features, scores,
outcomes, the CRM sync) and the weekly retrain of both models run on schedules (UTC). Event days
come in through their own partitioned runs (assets/events/runs.py)."""

from __future__ import annotations

from collections.abc import Iterable

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    ScheduleDefinition,
    define_asset_job,
)

# New raw data -> rebuild, but never on top of a raw table whose blocking gate failed.
FOLLOW_GATED = (
    AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, once upstream gates passed")
AUTOMATED_GROUPS = ("entities",)


def automate(assets: Iterable) -> list:
    """The assets, with the gated follow condition on those of the automated groups."""

    def with_condition(spec):
        if spec.group_name in AUTOMATED_GROUPS:
            return spec.replace_attributes(automation_condition=FOLLOW_GATED)
        return spec

    return [
        a.map_asset_specs(with_condition) if isinstance(a, AssetsDefinition) else a for a in assets
    ]


follow_raw = AutomationConditionSensorDefinition(
    "follow_raw",
    target=AssetSelection.groups(*AUTOMATED_GROUPS),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Entities rebuild after raw tables change, only when the raw gates passed.",
)

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
