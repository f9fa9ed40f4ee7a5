"""The events sensor: event days follow the raw layer without a person.

When a table `events/events` reads (the mapped raw tables, the identity links) has a new Delta
version since the last check, a tick asks `pending_ranges` which days need (re)building and
launches one `events_days` run per range (single-run backfill tags). It waits, launching nothing:

- while a blocking gate upstream of the events last failed: the entities do not follow a failed
  raw gate (`follow_raw`), and the events do not either;
- while an asset upstream of the events has not followed its own inputs yet (raw tables just
  ingested, entities not rebuilt): a day built on stale identity links would keep them, since
  only new or changed rows make a day pending again;
- while a run has the lake to itself (`lakehouse/exclusive`: the erasure, which vacuums).

A range that overlaps an events run already queued or in progress waits for it. Days past the
partitions the code location loaded (a frozen extract that received newer data) cannot be
requested: Dagster fixes a static partitions definition at load, so the tick launches what fits
and says that a reload of the code location brings the rest (`assets/events/days.py`).

The cursor is a fingerprint of the inputs' Delta versions and of the loaded partitions, so an idle
tick reads only Delta logs. Each run key is the range plus the inputs' fingerprint: a tick that
is evaluated again (a daemon restart before the cursor was stored) launches nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date, timedelta

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterRun,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from assets.automation import STAGE_TAG, events_days_job
from assets.concurrency import IN_FLIGHT
from assets.events.days import Span, configured_start
from assets.events.mapping import load_mapping
from assets.events.runs import EVENTS_KEY, EVENTS_STAGE, LAUNCHED_BY, plan_days, range_tags
from resources.lake import LakeResource
from resources.pii import PiiResource

NAME = "events_days_sensor"
RANGE_START, RANGE_END = range_tags("start", "end")  # the tag names
PARTITION_TAG = "dagster/partition"
EXCLUSIVE_TAG = "lakehouse/exclusive"


@sensor(
    name=NAME,
    job=events_days_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,  # like follow_raw: derived data follows raw
    description="Raw tables or identity links the events read changed -> one events_days run "
    "per range of pending days, once the upstream gates passed and the entities followed.",
)
def events_days_sensor(context: SensorEvaluationContext, lake: LakeResource, pii: PiiResource):
    graph = context.repository_def.asset_graph
    days = graph.get(EVENTS_KEY).partitions_def
    loaded = days.get_partition_keys()
    bounds = Span(date.fromisoformat(loaded[0]), date.fromisoformat(loaded[-1]))
    inputs = input_fingerprint(lake, graph.get(EVENTS_KEY).parent_keys)
    state = _digest(f"{inputs}|{bounds}")
    seen = json.loads(context.cursor) if context.cursor else {}
    if seen.get("state") == state:
        beyond = [tuple(map(date.fromisoformat, r)) for r in seen.get("beyond", [])]
        left = f"; {_reload(beyond, bounds)}" if beyond else ""
        return SkipReason(f"no table the events read changed since the last check{left}")
    upstream = AssetSelection.assets(EVENTS_KEY).upstream().resolve(graph) - {EVENTS_KEY}
    wait = failed_gates(context.instance, graph, upstream) or behind(
        context.instance, graph, upstream
    )
    wait = wait or _exclusive(context.instance)
    if wait:
        return SkipReason(f"waiting: {wait}")  # cursor kept: the next tick looks again

    plan = plan_days(lake, pii, load_mapping(), configured_start())
    if not plan.ranges:
        return SensorResult(
            skip_reason=SkipReason(f"no event day pending: {plan.describe()}"),
            cursor=json.dumps({"state": state}),
        )
    inside, beyond = clip(plan.ranges, bounds)
    busy = in_flight_ranges(context.instance)
    launch = [r for r in inside if not any(_overlap(r, b) for b, _ in busy)]
    held = [(r, next(run for b, run in busy if _overlap(r, b))) for r in inside if r not in launch]
    notes = [
        f"{_days(r)} wait for run {run[:8]} (the same days, queued or in progress)"
        for r, run in held
    ]
    if beyond:
        notes.append(_reload(beyond, bounds))
    for note in notes:
        context.log.info(note)
    # Held ranges keep the old cursor, so the next tick looks again; days past the partitions
    # are looked at again when the partitions change (a reload), which changes the state.
    cursor = (
        context.cursor
        if held
        else json.dumps({"state": state, "beyond": [list(map(str, r)) for r in beyond]})
    )
    if not launch:
        return SensorResult(skip_reason=SkipReason("; ".join(notes)), cursor=cursor)
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"{first}..{last}@{inputs}",
                tags={
                    **range_tags(first, last),
                    STAGE_TAG: EVENTS_STAGE,
                    LAUNCHED_BY: NAME,
                },
            )
            for first, last in launch
        ],
        cursor=cursor,
    )


def input_fingerprint(lake: LakeResource, keys: Iterable[AssetKey]) -> str:
    """The Delta versions of the tables the events read, as a short digest."""
    versions = {k.to_user_string(): lake.version(*k.path) for k in sorted(keys)}
    return _digest(json.dumps(versions, sort_keys=True))


def failed_gates(instance, graph, keys: Iterable[AssetKey]) -> str | None:
    """The first blocking check among `keys` whose latest evaluation failed, said for a person."""
    checks = [c for k in sorted(keys) for c in sorted(graph.get(k).check_keys)]
    blocking = [c for c in checks if graph.get_check_spec(c).blocking]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(blocking)
    for check in blocking:
        record = latest.get(check)
        if record and record.status == AssetCheckExecutionRecordStatus.FAILED:
            return (
                f"the gate of {check.asset_key.to_user_string()} failed in run "
                f"{record.run_id[:8]}; the events follow once it passes"
            )
    return None


def behind(instance, graph, keys: Iterable[AssetKey]) -> str | None:
    """The first asset among `keys` materialized before one of its materializable inputs: it has
    not followed them yet (the entities after an ingest), so the events would read it stale."""
    keys = sorted(keys)
    parents = {
        k: sorted(p for p in graph.get(k).parent_keys if graph.get(p).is_materializable)
        for k in keys
    }
    ids = instance.event_log_storage.get_latest_materialization_storage_ids(
        sorted({*keys, *(p for ps in parents.values() for p in ps)})
    )
    for key in keys:
        for parent in parents[key]:
            if parent in ids and ids[parent] > ids.get(key, -1):
                return f"{key.to_user_string()} has not followed {parent.to_user_string()} yet"
    return None


def in_flight_ranges(instance) -> list[tuple[tuple[date, date], str]]:
    """The days of every events run queued or in progress, with its run id (all days when a run
    names none)."""
    out = []
    for run in instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT)):
        if _builds_events(run):
            out.append((_run_days(run), run.run_id))
    return out


def clip(
    ranges: list[tuple[date, date]], bounds: Span
) -> tuple[list[tuple[date, date]], list[tuple[date, date]]]:
    """The parts of `ranges` inside the loaded partitions, and the parts outside them."""
    inside, outside = [], []
    for first, last in ranges:
        lo, hi = max(first, bounds.first), min(last, bounds.last)
        if lo <= hi:
            inside.append((lo, hi))
        for part in ((first, min(last, bounds.first - DAY)), (max(first, bounds.last + DAY), last)):
            if part[0] <= part[1]:
                outside.append(part)
    return inside, outside


def _builds_events(run: DagsterRun) -> bool:
    return run.job_name == events_days_job.name or EVENTS_KEY in (run.asset_selection or ())


def _run_days(run: DagsterRun) -> tuple[date, date]:
    tags = run.tags
    first = tags.get(RANGE_START) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END) or tags.get(PARTITION_TAG)
    if not (first and last):
        return (date.min, date.max)
    return (date.fromisoformat(first), date.fromisoformat(last))


def _exclusive(instance) -> str | None:
    runs = instance.get_runs(
        filters=RunsFilter(statuses=IN_FLIGHT, tags={EXCLUSIVE_TAG: "true"}), limit=1
    )
    return f"run {runs[0].run_id[:8]} ({runs[0].job_name}) has the lake to itself" if runs else None


def _overlap(a: tuple[date, date], b: tuple[date, date]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _days(r: tuple[date, date]) -> str:
    return f"day(s) {Span(*r)}"


def _reload(beyond: list[tuple[date, date]], bounds: Span) -> str:
    which = ", ".join(str(Span(*r)) for r in beyond)
    return (
        f"day(s) {which} lie outside the partitions the code location loaded ({bounds}): "
        "reload it (Deployment > Reload, or restart `make dev`) and the next tick builds them"
    )


DAY = timedelta(days=1)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
