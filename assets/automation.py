"""What keeps the lakehouse fresh without a person: entities follow the raw layer by declarative
automation, only after the raw gates passed; the daily refresh (lifecycle, 360, features, scores,
outcomes, the CRM sync) and the weekly retrain of both models run on schedules (UTC). Event days
come in through their own partitioned runs (assets/events/runs.py). Every asset built on a
cadence declares how fresh it should be, so the UI shows a table that fell behind.

The named jobs are the stages of the graph, in the order `make demo` runs them
(assets/events/runs.py `build_graph`): ingest, events_days, weekly_retrain, daily_refresh; the
erasure job runs alone when a request waits. The UI's Jobs page and run timeline show the same
jobs, whoever launched them, and each run carries its stage in the `lakehouse/stage` tag."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    FreshnessPolicy,
    ScheduleDefinition,
    define_asset_job,
)

from assets.gated import table_key
from checks.raw import CADENCE_PERIODS
from checks.sources import raw_contracts

# New raw data -> rebuild, but never on top of a raw table whose blocking gate failed.
FOLLOW_GATED = (
    AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, once upstream gates passed")
AUTOMATED_GROUPS = ("entities",)


# Freshness: an asset is due once its cadence has passed since its last materialization (warn)
# and late once the grace has passed too (fail): time for a scheduled run to start, finish and
# be retried, or for an extract delivered later in its day.
GRACE = timedelta(hours=6)
DAILY = CADENCE_PERIODS["daily"]
WEEKLY = CADENCE_PERIODS["weekly"]
# Observed (landing zones), recorded by a sensor (ops) or run when a request waits (privacy)
# when something happens: no cadence, so no freshness policy.
UNSCHEDULED_GROUPS = ("landing", "ops", "privacy")


def raw_periods() -> dict[AssetKey, timedelta]:
    """Each raw table's extract period, from the source catalog's cadences."""
    return {table_key(c): c.extract_period for c in raw_contracts()}


def freshness_window(
    spec: AssetSpec, weekly: frozenset[AssetKey], periods: dict[AssetKey, timedelta] | None = None
) -> timedelta | None:
    """How long an asset may go without a materialization: a raw table its source's extract
    cadence (a day when the contract declares none), the weekly retrain's models a week, every
    other layer a day (the daily refresh, the event days, entities following daily extracts)."""
    if spec.group_name in UNSCHEDULED_GROUPS:
        return None
    if spec.group_name == "raw":
        return (raw_periods() if periods is None else periods).get(spec.key, DAILY)
    return WEEKLY if spec.key in weekly else DAILY


def freshness_policy(window: timedelta) -> FreshnessPolicy:
    return FreshnessPolicy.time_window(fail_window=window + GRACE, warn_window=window)


def automate(assets: Iterable) -> list:
    """The assets, with the gated follow condition on those of the automated groups and the
    freshness policy of their cadence on every scheduled one."""
    assets = list(assets)
    weekly = frozenset(
        WEEKLY_RETRAIN.resolve([a for a in assets if isinstance(a, AssetsDefinition)])
    )
    periods = raw_periods()

    def with_condition(spec: AssetSpec) -> AssetSpec:
        if spec.group_name in AUTOMATED_GROUPS:
            spec = spec.replace_attributes(automation_condition=FOLLOW_GATED)
        window = freshness_window(spec, weekly, periods)
        if window is not None:
            spec = spec.replace_attributes(freshness_policy=freshness_policy(window))
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

STAGE_TAG = "lakehouse/stage"  # every run of these jobs names its stage (Runs page filter)

EVENTS_KEY = AssetKey(["events", "events"])
# Observing the landing zones records what arrived (data version = content fingerprint), then the
# raw gates and the entities they feed.
INGEST = AssetSelection.groups("landing", include_sources=True) | AssetSelection.groups(
    "raw", "entities"
)
EVENT_DAYS = AssetSelection.assets(EVENTS_KEY)
# The privacy layer and the raw tables it reads (the consent objects of the catalog).
ERASURE = AssetSelection.groups("privacy") | (
    AssetSelection.groups("privacy").upstream(depth=1) & AssetSelection.groups("raw")
)
WEEKLY_RETRAIN = AssetSelection.assets(["ml", "churn_model"], ["ml", "expansion_model"])
DAILY_REFRESH = (
    (
        AssetSelection.assets(["events", "account_lifecycle"])
        | AssetSelection.groups("c360", "features", "ml", "reverse_etl")
    )
    - WEEKLY_RETRAIN
    - ERASURE
)  # the erasure runs alone, from erasure_sensor


def _job(name: str, selection: AssetSelection, description: str, **tags: str):
    return define_asset_job(
        name, selection=selection, description=description, tags={STAGE_TAG: name, **tags}
    )


ingest_job = _job(
    "ingest",
    INGEST,
    "Observe every landing zone, ingest new extract files into the raw layer (each batch behind "
    "its quality gate), then rebuild the entities.",
)
events_days_job = _job(
    "events_days",
    EVENT_DAYS,
    "Rebuild days of events/events from the raw layer: one run per range of days "
    "(dagster/asset_partition_range_start/end tags), as `make demo` and backfills do.",
)
weekly_retrain_job = _job(
    "weekly_retrain",
    WEEKLY_RETRAIN,
    "Rebuild the training sets and retrain both models; a new version is champion only if it "
    "beats the current one.",
)
daily_refresh_job = _job(
    "daily_refresh",
    DAILY_REFRESH,
    "Lifecycle, 360, features as of the freshest day, champion scores, outcomes, CRM sync.",
)
erasure_job = _job(
    "erasure",
    ERASURE,
    "Ingest new consent records, then carry out erasure requests, alone on the lake "
    "(started by erasure_sensor when no other run is in progress).",
    **{"lakehouse/exclusive": "true"},
)

daily_refresh = ScheduleDefinition(
    job=daily_refresh_job, cron_schedule="0 6 * * *", execution_timezone="UTC"
)
weekly_retrain = ScheduleDefinition(
    job=weekly_retrain_job, cron_schedule="0 4 * * 1", execution_timezone="UTC"
)

jobs = [ingest_job, events_days_job, weekly_retrain_job, daily_refresh_job, erasure_job]
schedules = [daily_refresh, weekly_retrain]
