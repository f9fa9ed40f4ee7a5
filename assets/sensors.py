"""Sensors. The landing sensor: new extract files start exactly one run that ingests them.
The erasure sensor: a pending erasure request starts the erasure job once the lake is quiet.
The events sensor (assets/events/sensor.py): event days follow the raw layer.

The cursor holds each landing zone's fingerprint (assets/landing.py); a tick compares, and when
zones changed it records an observation of each changed zone (content fingerprint as data
version, so the UI shows when the zone last received files) and requests one run of their raw
assets, keyed by the new fingerprints, so a re-evaluated tick (a daemon restart) never starts the
same run twice and a file that arrives during a tick is caught by the next one.
"""

from __future__ import annotations

import hashlib
import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.automation import erasure_job, ingest_job
from assets.concurrency import IN_FLIGHT
from assets.events.sensor import events_days_sensor
from assets.gated import table_key
from assets.landing import observation, unread_folders, zone_fingerprint
from assets.privacy.intake import open_requests
from checks.sources import raw_contracts
from resources.lake import LakeResource
from resources.landing import LandingResource, Scan


@sensor(
    name="landing_sensor",
    job=ingest_job,  # a run of the `ingest` job restricted to the raw tables of changed zones
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,  # turn on in the UI (Automation) to follow files
    description="New or changed extract files in any landing zone -> one run ingesting them.",
)
def landing_sensor(context: SensorEvaluationContext, landing: LandingResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    contracts = raw_contracts()  # the source catalog, read at each tick
    scans = {c.table: (c, landing.scan(c.landing_dir)) for c in contracts}
    now = {t: zone_fingerprint(scan) for t, (_, scan) in scans.items()}
    changed = sorted(t for t, fp in now.items() if fp != seen.get(t) and fp != _EMPTY)
    cursor = json.dumps(now, sort_keys=True)
    if not changed:
        return SensorResult(skip_reason=SkipReason("no new landing files"), cursor=cursor)
    run_key = hashlib.sha256(cursor.encode()).hexdigest()[:16]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=run_key,
                asset_selection=[table_key(scans[t][0]) for t in changed],
                tags={"lakehouse/trigger": "landing_sensor"},
            )
        ],
        asset_events=[
            observation(*scans[t], landing.root, unread_folders(landing, contracts))
            for t in changed
        ],
        cursor=cursor,
    )


_EMPTY = zone_fingerprint(Scan())


@sensor(
    name="erasure_sensor",
    job=erasure_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,  # a person's erasure must not wait for a click
    description="Erasure requests waiting in the consent source (or interrupted) -> the "
    "erasure job, once no other run is in flight (it vacuums with zero retention).",
)
def erasure_sensor(context: SensorEvaluationContext, lake: LakeResource):
    waiting = open_requests(lake)
    if not waiting:
        return SkipReason("no erasure request waiting")
    busy = context.instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT), limit=1)
    if busy:
        return SkipReason(f"{len(waiting)} request(s) waiting for a quiet lake")
    return RunRequest(tags={"lakehouse/trigger": "erasure_sensor", "requests": str(len(waiting))})


sensors = [landing_sensor, erasure_sensor, events_days_sensor]
