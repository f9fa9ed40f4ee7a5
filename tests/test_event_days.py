"""The daily partitions of events/events are the days the data holds (assets/events/days.py): a
code location loaded on a lake starts them at its first event day and ends them at its last
(frozen data) or today (live data); a configured start or end wins. Issue 22 found 2,532
partitions from 2020-01-01, 1,527 of them outside the data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

from assets.events.days import (
    EVENTS_END,
    EVENTS_START,
    Span,
    built_span,
    event_days,
    partitions,
)
from assets.events.runs import DaysPlan
from conftest import ROOT

PROBE = """
import json, runpy
from dagster import AssetKey
defs = runpy.run_path("platform/definitions.py")["defs"]
days = defs.get_assets_def(AssetKey(["events", "events"])).partitions_def
keys = days.get_partition_keys()
print(json.dumps({"first": keys[0], "last": keys[-1], "count": len(keys)}))
"""


def _event_span(lake) -> Span:
    """The first and last day of events/events and events/unattributed_events, from the rows."""
    days = set()
    for table in ("events", "unattributed_events"):
        days |= set(lake.read("events", table, columns=["event_date"])["event_date"].to_pylist())
    return Span(min(days), max(days))


def test_the_code_location_partitions_start_and_end_with_the_data(full_lake):
    """`make dev` on a built lake: no partition before the first event day or after the last
    (the sample company is a frozen extract: its last day is weeks before today)."""
    env = {k: v for k, v in os.environ.items() if k not in (EVENTS_START, EVENTS_END)}
    env["LAKEHOUSE_LAKE_ROOT"] = str(full_lake.lake_root)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    exposed = json.loads(out.stdout.strip().splitlines()[-1])
    data = _event_span(full_lake.lake)
    assert data.last < date.today() - timedelta(days=1)  # the premise: a frozen extract
    assert exposed == {"first": str(data.first), "last": str(data.last), "count": data.days}


def test_before_the_first_build_the_raw_layer_gives_the_span(full_lake, tmp_path, monkeypatch):
    """A lake with raw tables and no events yet (the UI right after `ingest`): the partitions
    already cover exactly the days the first build will write."""
    from assets.events.days import _raw_span

    for var in (EVENTS_START, EVENTS_END):
        monkeypatch.delenv(var, raising=False)
    assert _raw_span(full_lake.lake) == _event_span(full_lake.lake)


def test_a_configured_start_or_end_wins_over_the_data(full_lake, monkeypatch):
    monkeypatch.setenv(EVENTS_START, "2026-01-01")
    monkeypatch.delenv(EVENTS_END, raising=False)
    keys = event_days(full_lake.lake).get_partition_keys()
    assert keys[0] == "2026-01-01" and keys[-1] == str(built_span(full_lake.lake).last)
    monkeypatch.setenv(EVENTS_END, "2026-03-31")
    keys = event_days(full_lake.lake).get_partition_keys()
    assert (keys[0], keys[-1], len(keys)) == ("2026-01-01", "2026-03-31", 90)


@pytest.mark.parametrize(
    ("last", "expected_last"),
    [
        (date(2026, 10, 31), "2026-10-31"),  # stopped weeks ago: frozen, ends with the data
        (date(2026, 12, 5), "2026-12-06"),  # reached yesterday: live, grows through today
    ],
)
def test_live_data_grows_with_the_clock_frozen_data_ends_with_it(last, expected_last, monkeypatch):
    from dagster import DailyPartitionsDefinition

    for var in (EVENTS_START, EVENTS_END):
        monkeypatch.delenv(var, raising=False)
    now = date(2026, 12, 6)
    days = partitions(Span(date(2026, 1, 5), last), now)
    assert isinstance(days, DailyPartitionsDefinition)
    keys = days.get_partition_keys(current_time=_utc(now))
    assert keys[0] == "2026-01-05" and keys[-1] == expected_last


def test_no_data_yet_is_one_day_not_a_calendar(monkeypatch):
    for var in (EVENTS_START, EVENTS_END):
        monkeypatch.delenv(var, raising=False)
    now = date(2026, 12, 6)
    assert partitions(None, now).get_partition_keys(current_time=_utc(now)) == ["2026-12-06"]


def test_the_plan_says_what_it_builds_and_why():
    """The line `make demo` prints: day count, the span, runs, and whether it is a first build."""
    first = DaysPlan(
        [(date(2024, 1, 31), date(2024, 5, 1)), (date(2024, 5, 2), date(2024, 5, 3))],
        True,
        Span(date(2024, 1, 31), date(2024, 5, 3)),
    )
    assert first.describe() == (
        "94 day(s) 2024-01-31..2024-05-03 in 2 run(s) "
        "(first build: every day from the data's first event to its last)"
    )
    later = DaysPlan(
        [(date(2026, 10, 1), date(2026, 10, 1)), (date(2026, 10, 30), date(2026, 10, 31))],
        False,
        Span(date(2024, 1, 31), date(2026, 10, 31)),
    )
    assert later.describe() == (
        "3 day(s) 2026-10-01, 2026-10-30..2026-10-31 in 2 run(s) (days whose events changed "
        "since they were built); the events hold 1,005 day(s) 2024-01-31..2026-10-31"
    )
    assert DaysPlan([], False, later.span).describe().startswith("none to build")


def _utc(day: date):
    from datetime import UTC, datetime, time

    return datetime.combine(day, time(12), tzinfo=UTC)
