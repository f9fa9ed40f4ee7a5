"""Which days `events/events` is partitioned into: the days the data holds, not a calendar.

Dagster needs the partitions when the code location loads, before any run, so they are read
from the lake then, cheaply:

- first day: `LAKEHOUSE_EVENTS_START` when set (a company that wants no history before a day,
  or one code location shared by several lakes, as the tests do); otherwise the first day the
  events tables hold (their Delta partition list: the log, no data file is read); before the
  first build, the first event day of the raw layer (the builder's own SQL, run only until
  events exist); with no data at all, today.
- last day: `LAKEHOUSE_EVENTS_END` when set (a date, or `today`); otherwise the data says. Data
  that reaches yesterday or today comes from a live company whose sources deliver every day:
  the partitions grow with the clock, so today's day exists before its first event lands. Data
  that stopped earlier is a frozen extract (the sample company, an export): the partitions end
  at its last day, since no day after it will ever hold an event and the UI would show each one
  as missing forever. New extracts that reach past that day are built by `make demo`
  (`assets/events/runs.py` widens its runs' partitions to the data) and appear in the UI at the
  next load of the code location.

A day inside the span with no event is still a partition: the first build writes it, empty,
because "nothing happened that day" is a fact about the data, unlike a day outside its span.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dagster import DailyPartitionsDefinition
from deltalake.exceptions import DeltaError

from assets.events.build import EVENTS, UNATTRIBUTED
from assets.events.mapping import Mapping, source_sql
from resources.lake import LakeResource
from resources.settings import EVENTS_END, EVENTS_START, read

TODAY = "today"
EARLIEST = date(1900, 1, 1)  # the lower bound of "no configured start" in the builder's SQL
LIVE_LAG = timedelta(days=1)  # data reaching this close to today is live: partitions grow daily


@dataclass(frozen=True)
class Span:
    """The first and last day (inclusive) of event data."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def each(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"

    def union(self, other: Span | None) -> Span:
        if other is None:
            return self
        return Span(min(self.first, other.first), max(self.last, other.last))


def today() -> date:
    return datetime.now(UTC).date()


def configured_start() -> date | None:
    """`LAKEHOUSE_EVENTS_START`, read when asked (not at import)."""
    text = read(EVENTS_START)
    return date.fromisoformat(text) if text else None


def configured_end() -> date | str | None:
    """`LAKEHOUSE_EVENTS_END`: a date, `today`, or None (the data decides)."""
    text = read(EVENTS_END).lower()
    if not text:
        return None
    return TODAY if text == TODAY else date.fromisoformat(text)


def built_span(lake: LakeResource) -> Span | None:
    """The days the events tables hold, from their Delta logs (no data file is read)."""
    days = set()
    for layer, table in (EVENTS, UNATTRIBUTED):
        if lake.exists(layer, table):
            days |= {p["event_date"] for p in lake.table(layer, table).partitions()}
    days.discard(None)
    parsed = sorted(date.fromisoformat(d) for d in days)
    return Span(parsed[0], parsed[-1]) if parsed else None


def data_span(con, lake: LakeResource, mapping: Mapping, start: date | None = None) -> Span | None:
    """The first and last event day of the raw layer, by the same SQL that builds the days
    (deduplicated records, `when` conditions, late events): exact, at the cost of one read of
    the mapped columns."""
    from assets.events.build import _register

    present = _register(con, lake, mapping)
    far = (today() + timedelta(days=3650)).isoformat()
    lo = (start or EARLIEST).isoformat()
    parts = [
        f"SELECT CAST(occurred_at AS DATE) AS d FROM ({source_sql(s, lo, far, mapping.late_days)})"
        for s in mapping.sources
        if s.table in present
    ]
    if not parts:
        return None
    first, last = con.sql(f"SELECT min(d), max(d) FROM ({' UNION ALL '.join(parts)})").fetchall()[0]
    return Span(first, last) if first is not None else None


def partitions(span: Span | None, now: date | None = None) -> DailyPartitionsDefinition:
    """The daily partitions for data spanning `span` (None: no data yet), settings first."""
    now = now or today()
    start = configured_start() or (span.first if span else now)
    end = configured_end()
    if end is None:
        live = span is None or span.last >= now - LIVE_LAG
        end = TODAY if live else span.last
    if end == TODAY:
        return DailyPartitionsDefinition(start_date=str(start), end_offset=1, timezone="UTC")
    return DailyPartitionsDefinition(
        start_date=str(start), end_date=str(end + timedelta(days=1)), timezone="UTC"
    )


def event_days(
    lake: LakeResource | None = None, mapping: Mapping | None = None
) -> DailyPartitionsDefinition:
    """The partitions of `events/events` when the code location is built (see the module
    docstring); `mapping` is the event mapping it was built with (default: read now)."""
    if configured_start() and configured_end():
        return partitions(None)  # both configured: nothing to read
    if lake is None:
        from resources.profile import active

        lake = active().resources()["lake"].process_config_and_initialize()
    try:
        span = built_span(lake)
        if span is None and configured_start() is None:
            span = _raw_span(lake, mapping)
    except (OSError, DeltaError) as exc:  # an object store out of reach must not stop the UI
        warnings.warn(f"events/events partitions: the lake could not be read ({exc})", stacklevel=2)
        span = None
    return partitions(span)


def _raw_span(lake: LakeResource, mapping: Mapping | None = None) -> Span | None:
    """The raw layer's event days, before the first build (none when it holds no raw table)."""
    from assets.events.mapping import load_mapping
    from resources.duckdb import connect
    from resources.pii import install

    mapping = mapping or load_mapping()
    if not any(lake.exists(*t.split("/")) for t in mapping.tables()):
        return None
    con = connect()
    install(con, salt="")  # days only: the salt of hashed references does not change a date
    return data_span(con, lake, mapping)


def covers(days: DailyPartitionsDefinition, span: Span) -> bool:
    """Whether every day of `span` is a partition of `days`."""
    keys = days.get_partition_keys()
    return bool(keys) and keys[0] <= str(span.first) and str(span.last) <= keys[-1]
