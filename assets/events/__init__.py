"""Events layer: one row per thing that happened, in daily partitions (UTC event date).

`events/events` is partitioned by day in Dagster and in Delta. A run materializes a range of
days in one step (single-run backfill) and replaces exactly those days' Delta partitions, after
its suite passes; `pending_days` says which days received data since they were built, so a
sensor or `make demo` asks only for those. Account-scoped events whose account no identity link
reaches are kept in `events/unattributed_events` with the reason, not dropped.
"""

import os
from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.events.build import EVENTS, UNATTRIBUTED, build_days, day_counts
from assets.events.mapping import load_mapping
from assets.metadata import OWNER, definition_metadata, published_metadata
from checks.events import events_contract
from checks.gate import validate
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.pii import PiiResource

GROUP = "events"
SUITE_CHECK = "gx_suite"
EVENTS_START = "LAKEHOUSE_EVENTS_START"

EVENT_DAYS = DailyPartitionsDefinition(
    start_date=os.environ.get(EVENTS_START, "2020-01-01"), end_offset=1, timezone="UTC"
)
MAPPING = load_mapping()
CONTRACT = events_contract(MAPPING.event_names)
EVENTS_KEY = AssetKey(list(EVENTS))


def _deps() -> list[AssetKey]:
    raw = sorted({s.table for s in MAPPING.sources})
    return [AssetKey(t.split("/")) for t in raw] + [AssetKey(["entities", "identity_links"])]


@asset(
    key=EVENTS_KEY,
    description=CONTRACT.description,
    group_name=GROUP,
    partitions_def=EVENT_DAYS,
    backfill_policy=BackfillPolicy.single_run(),
    deps=_deps(),
    kinds={"delta", "duckdb", "great_expectations"},
    owners=[OWNER],
    tags={"layer": GROUP, "pii": "false"},
    metadata=definition_metadata(CONTRACT),
    check_specs=[
        AssetCheckSpec(
            SUITE_CHECK,
            asset=EVENTS_KEY,
            blocking=True,
            description=f"Great Expectations suite of {CONTRACT.name}, run before commit.",
        )
    ],
)
def events(
    context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, pii: PiiResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Rebuild the requested days from every raw source and replace only their partitions."""
    days = context.partition_key_range
    first, last = days.start, days.end
    now = datetime.now(UTC)
    with duckdb.connect() as con:
        pii.install(con, lake.root)
        built = build_days(con, lake, MAPPING, first, last, now)
    gate = validate(CONTRACT.name, CONTRACT.suite(), built.events, built.batch)
    yield gate.check_result(EVENTS_KEY, SUITE_CHECK)
    if not gate.passed:
        raise gate.failure(f"{CONTRACT.name} {first}..{last}")
    predicate = f"event_date >= '{first}' AND event_date <= '{last}'"
    meta = {"dagster_run_id": context.run_id, "days": f"{first}..{last}"}
    # The side table first: a crash between the two commits leaves events as they were.
    lake.publish(
        *UNATTRIBUTED,
        built.unattributed,
        mode="overwrite",
        partition_by=["event_date"],
        predicate=predicate,
        description="Account-scoped events no identity link maps to an account, with the reason.",
        commit_metadata=meta,
    )
    published = lake.publish(
        *EVENTS,
        built.events,
        mode="overwrite",
        partition_by=["event_date"],
        predicate=predicate,
        description=CONTRACT.description,
        commit_metadata=meta,
    )
    yield MaterializeResult(
        asset_key=EVENTS_KEY,
        metadata={
            **published_metadata(CONTRACT, published, built.events.schema, built.events),
            "days": MetadataValue.text(f"{first}..{last}"),
            "events_by_name": MetadataValue.json(day_counts(built.events)),
            "unattributed_events": MetadataValue.int(built.unattributed.num_rows),
        },
    )


assets = [events]
