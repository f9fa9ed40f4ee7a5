"""Running the graph around the daily event partitions: the unpartitioned layers before them,
the pending days (one single-run backfill per contiguous range of days), then the layers after.
"""

from __future__ import annotations

from datetime import date, timedelta

from dagster import AssetKey, AssetSelection

from assets.events.build import EVENTS, day_ranges, pending_days
from assets.events.mapping import Mapping
from resources.duckdb import connect
from resources.lake import LakeResource
from resources.pii import PiiResource

EVENTS_KEY = AssetKey(list(EVENTS))
BEFORE_EVENTS = AssetSelection.all() - AssetSelection.assets(EVENTS_KEY).downstream()
AFTER_EVENTS = AssetSelection.assets(EVENTS_KEY).downstream() - AssetSelection.assets(EVENTS_KEY)


def range_tags(first: date | str, last: date | str) -> dict[str, str]:
    """Run tags that make one run materialize the days first..last (single-run backfill)."""
    return {
        "dagster/asset_partition_range_start": str(first),
        "dagster/asset_partition_range_end": str(last),
    }


def pending_ranges(
    lake: LakeResource, pii: PiiResource, mapping: Mapping, start: date, max_days: int = 92
) -> list[tuple[date, date]]:
    """Ranges of at most `max_days` days to (re)build, one run each."""
    con = connect()
    pii.install(con, lake.root)
    days = pending_days(con, lake, mapping, start)
    if days and not lake.exists(*EVENTS):  # first build: every day from the first event on
        days = [days[0] + timedelta(days=i) for i in range((days[-1] - days[0]).days + 1)]
    return [chunk for first, last in day_ranges(days) for chunk in _chunks(first, last, max_days)]


def _chunks(first: date, last: date, size: int) -> list[tuple[date, date]]:
    out = []
    while first <= last:
        end = min(last, first + timedelta(days=size - 1))
        out.append((first, end))
        first = end + timedelta(days=1)
    return out
