"""Running the graph around the daily event partitions: the unpartitioned layers before them,
the pending days (one single-run backfill per contiguous range of days), then the layers after.
"""

from __future__ import annotations

from datetime import date, timedelta

from dagster import AssetKey, AssetSelection

from assets.dead_runs import execute_in_process
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


def build_graph(
    defs, instance, run_config: dict | None = None, after: AssetSelection = AFTER_EVENTS
) -> tuple[list, list]:
    """The whole graph in this process, as `make demo` and `make bench` run it: the layers
    before the events, each pending range of days, then `after` (by default every layer after
    them). Stops at the first failed run; returns the runs' results and the day ranges built.
    Each run first fails the runs whose process died, which would hold their pools forever
    (assets/dead_runs.py)."""
    from assets.events import EVENT_DAYS, MAPPING

    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    lake = defs.resources["lake"].process_config_and_initialize()
    pii = defs.resources["pii"].process_config_and_initialize()
    results: list = []

    def run(selection: AssetSelection, tags: dict[str, str] | None = None) -> bool:
        keys = list(selection.resolve(graph))
        if keys:
            results.append(
                execute_in_process(
                    job,
                    instance,
                    asset_selection=keys,
                    tags=tags,
                    raise_on_error=False,
                    run_config=run_config,
                )
            )
        return not results or results[-1].success

    ok = run(BEFORE_EVENTS)  # landing -> raw -> entities
    ranges = pending_ranges(lake, pii, MAPPING, EVENT_DAYS.start.date()) if ok else []
    for first, last in ranges:  # only the days that received data
        ok = ok and run(AssetSelection.assets(EVENTS_KEY), range_tags(first, last))
    if ok:
        run(after)
    return results, ranges
