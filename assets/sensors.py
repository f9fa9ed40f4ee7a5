"""The landing sensor: new extract files start exactly one run that ingests them.

The cursor holds each landing zone's fingerprint (assets/landing.py); a tick compares, and when
zones changed it requests one run of their raw assets, keyed by the new fingerprints, so a
re-evaluated tick (a daemon restart) never starts the same run twice and a file that arrives
during a tick is caught by the next one.
"""

from __future__ import annotations

import hashlib
import json

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.landing import zone_fingerprint
from checks.raw import RAW_TABLES
from resources.landing import LandingResource

RAW_SELECTION = AssetSelection.assets(*(AssetKey(["raw", c.table]) for c in RAW_TABLES))


@sensor(
    name="landing_sensor",
    target=RAW_SELECTION,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,  # turn on in the UI (Automation) to follow files
    description="New or changed extract files in any landing zone -> one run ingesting them.",
)
def landing_sensor(context: SensorEvaluationContext, landing: LandingResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    now = {c.table: zone_fingerprint(landing.files(c.source, c.object)) for c in RAW_TABLES}
    changed = sorted(t for t, fp in now.items() if fp != seen.get(t) and fp != _EMPTY)
    cursor = json.dumps(now, sort_keys=True)
    if not changed:
        return SensorResult(skip_reason=SkipReason("no new landing files"), cursor=cursor)
    run_key = hashlib.sha256(cursor.encode()).hexdigest()[:16]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=run_key,
                asset_selection=[AssetKey(["raw", t]) for t in changed],
                tags={"lakehouse/trigger": "landing_sensor"},
            )
        ],
        cursor=cursor,
    )


_EMPTY = zone_fingerprint([])
sensors = [landing_sensor]
