"""Running the whole graph in its stages, as `make demo` and `make bench` do.

The stages are the named jobs of assets/automation.py, in order: `ingest` (observe every landing
zone, raw, entities), `erasure` (requests waiting, alone on the lake), `events_days` (one
single-run backfill per range of pending days), `weekly_retrain` (training sets, models) and
`daily_refresh` (lifecycle, 360, features, scores, CRM sync). Each run carries its stage
(`lakehouse/stage`, from the job) and who launched it (`lakehouse/launched_by`), so the UI's
Jobs page, timeline and Runs filters show what ran, not anonymous asset runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

from dagster import AssetKey, AssetSelection, DailyPartitionsDefinition, Definitions
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from assets import automation
from assets.dead_runs import execute_in_process
from assets.events.build import EVENTS, day_ranges, pending_days
from assets.events.days import EARLIEST, Span, built_span, configured_start, covers, partitions
from assets.events.mapping import Mapping, load_mapping
from resources.duckdb import connect
from resources.lake import LakeResource
from resources.pii import PiiResource

EVENTS_KEY = AssetKey(list(EVENTS))
BEFORE_EVENTS = AssetSelection.all() - AssetSelection.assets(EVENTS_KEY).downstream()
AFTER_EVENTS = AssetSelection.assets(EVENTS_KEY).downstream() - AssetSelection.assets(EVENTS_KEY)
LAUNCHED_BY = "lakehouse/launched_by"
# The stages around the event days, in the order they run: (job name, what it may build).
BEFORE_STAGES = (
    ("ingest", automation.INGEST),
    ("erasure", automation.ERASURE - automation.INGEST),  # consent records: ingested just before
)
# After them: what the models train on, the models, then what uses the models (on a first build
# the scores need a model; every day the schedules run the same two jobs the other way round).
TRAINED_ON = (
    automation.DAILY_REFRESH & automation.WEEKLY_RETRAIN.upstream()
).required_multi_asset_neighbors() & automation.DAILY_REFRESH
AFTER_STAGES = (
    ("daily_refresh", TRAINED_ON),
    ("weekly_retrain", automation.WEEKLY_RETRAIN),
    ("daily_refresh", automation.DAILY_REFRESH - TRAINED_ON),
)
EVENTS_STAGE = "events_days"


def range_tags(first: date | str, last: date | str) -> dict[str, str]:
    """Run tags that make one run materialize the days first..last (single-run backfill)."""
    return {
        "dagster/asset_partition_range_start": str(first),
        "dagster/asset_partition_range_end": str(last),
    }


@dataclass(frozen=True)
class DaysPlan:
    """The event days a build asks for, and why."""

    ranges: list[tuple[date, date]]
    first_build: bool  # no event day was built before: every day of the data's span
    span: Span | None  # the data's event days once these are built

    @property
    def days(self) -> int:
        return sum((last - first).days + 1 for first, last in self.ranges)

    def describe(self) -> str:
        """One line for a person: how many days, which, in how many runs, and why."""
        held = f"; the events hold {self.span.days:,} day(s) {self.span}" if self.span else ""
        if not self.ranges:
            return f"none to build: no day's events changed since it was built{held}"
        merged = day_ranges([d for a, b in self.ranges for d in Span(a, b).each()])
        which = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in merged[:3])
        which += f" and {len(merged) - 3} more range(s)" if len(merged) > 3 else ""
        why = (
            "first build: every day from the data's first event to its last"
            if self.first_build
            else "days whose events changed since they were built"
        )
        line = f"{self.days:,} day(s) {which} in {len(self.ranges)} run(s) ({why})"
        return line if self.first_build else line + held


def plan_days(
    lake: LakeResource, pii: PiiResource, mapping: Mapping, start: date | None, max_days: int = 92
) -> DaysPlan:
    """The days to (re)build from `start` on (None: from the data's first event), in ranges of
    at most `max_days` days, one run each."""
    con = connect()
    pii.install(con, lake.root)
    days = pending_days(con, lake, mapping, start or EARLIEST)
    built = built_span(lake)
    first_build = built is None
    if days and first_build:  # every day from the first event on, the empty ones included
        days = Span(days[0], days[-1]).each()
    span = Span(days[0], days[-1]).union(built) if days else built
    ranges = [chunk for first, last in day_ranges(days) for chunk in _chunks(first, last, max_days)]
    return DaysPlan(ranges, first_build, span)


def pending_ranges(
    lake: LakeResource, pii: PiiResource, mapping: Mapping, start: date | None, max_days: int = 92
) -> list[tuple[date, date]]:
    """Ranges of at most `max_days` days to (re)build, one run each."""
    return plan_days(lake, pii, mapping, start, max_days).ranges


def _chunks(first: date, last: date, size: int) -> list[tuple[date, date]]:
    out = []
    while first <= last:
        end = min(last, first + timedelta(days=size - 1))
        out.append((first, end))
        first = end + timedelta(days=1)
    return out


class Progress(Protocol):
    """Told about each stage as it happens (`make demo` prints it)."""

    def planned(self, plan: DaysPlan) -> None: ...

    def started(self, stage: str, what: str) -> None: ...

    def finished(self, stage: str, what: str, result, seconds: float) -> None: ...

    def skipped(self, stage: str, why: str) -> None: ...


def first_day(defs: Definitions) -> date:
    """The first event day `defs` was built with: where a build of pending days starts."""
    return defs.get_assets_def(EVENTS_KEY).partitions_def.start.date()


def with_event_days(defs: Definitions, days: DailyPartitionsDefinition) -> Definitions:
    """`defs` with `events/events` partitioned by `days`: the runs of a build whose data reaches
    past the partitions the code location loaded with (the first build, a new extract)."""
    from assets.events import events_asset

    assets = [
        events_asset(days) if EVENTS_KEY in getattr(a, "keys", ()) else a for a in defs.assets
    ]
    return Definitions(
        assets=assets,
        schedules=defs.schedules,
        sensors=defs.sensors,
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        asset_checks=defs.asset_checks,
        metadata=defs.metadata,
    )


def build_graph(
    defs: Definitions,
    instance,
    run_config: dict | None = None,
    after: AssetSelection = AFTER_EVENTS,
    *,
    launched_by: str = "python",
    progress: Progress | None = None,
) -> tuple[list, list]:
    """The whole graph in this process, as `make demo` and `make bench` run it: the stages
    before the events, each pending range of days, then the stages after them restricted to
    `after` (by default every layer after the events). Stops at the first failed run; returns
    the runs' results and the day ranges built. Each run first fails the runs whose process
    died, which would hold their pools forever (assets/dead_runs.py)."""
    lake = defs.resources["lake"].process_config_and_initialize()
    pii = defs.resources["pii"].process_config_and_initialize()
    results: list = []
    launched = {LAUNCHED_BY: launched_by}

    def run(d: Definitions, stage: str, selection: AssetSelection, what: str = "", **tags) -> bool:
        graph = d.resolve_asset_graph()
        keys = selection.resolve(graph)
        everything = keys == set(d.resolve_job_def(stage).asset_layer.selected_asset_keys)
        if not keys:
            return True
        what = what or _describe(keys)
        if progress:
            progress.started(stage, what)
        started = time.perf_counter()
        with attributed_to_code_location(instance, stage):
            result = execute_in_process(
                d.resolve_job_def(stage),
                instance,
                asset_selection=None if everything else list(keys),
                tags={**launched, **tags},
                raise_on_error=False,
                run_config=run_config,
            )
        results.append(result)
        if progress:
            progress.finished(stage, what, result, time.perf_counter() - started)
        return result.success

    ok = all(run(defs, name, sel) for name, sel in BEFORE_STAGES)
    mapping = load_mapping()
    plan = plan_days(lake, pii, mapping, configured_start()) if ok else DaysPlan([], False, None)
    if progress and ok:
        progress.planned(plan)
    days_defs = defs
    if plan.span and not covers(defs.get_assets_def(EVENTS_KEY).partitions_def, plan.span):
        days_defs = with_event_days(defs, partitions(plan.span))
    for first, last in plan.ranges:  # only the days that received data
        span = Span(first, last)
        what = f"events/events {span} ({span.days} day(s))"
        tags = range_tags(first, last)
        ok = ok and run(days_defs, EVENTS_STAGE, automation.EVENT_DAYS, what, **tags)
    if ok and not mapping.sources:
        # A catalog with no event source (a person-only stack): every layer after the events
        # reads them, so the build ends with the entities, and says so.
        if progress:
            for name in dict.fromkeys(name for name, _ in AFTER_STAGES):
                progress.skipped(name, "the source catalog declares no event source")
        return results, plan.ranges
    for name, selection in AFTER_STAGES:
        ok = ok and run(defs, name, selection & after)
    return results, plan.ranges


WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def job_origin(job_name: str, workspace: Path = WORKSPACE) -> RemoteJobOrigin:
    """The job as the UI knows it: in the code location `workspace.yaml` declares."""
    import yaml

    (entry,) = yaml.safe_load(workspace.read_text())["load_from"]
    target = entry["python_file"]
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(
            python_file=str(workspace.parent / target["relative_path"]),
            working_directory=str(workspace.parent / target.get("working_directory", ".")),
        ),
        target["location_name"],
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


@contextmanager
def attributed_to_code_location(instance, job_name: str) -> Iterator[None]:
    """Runs created meanwhile belong to `job_name` of the code location. Dagster's in-process
    execution records none, and the UI's Jobs page (latest runs) and run timeline list only the
    runs of a code location's jobs: without it they stayed empty after `make demo`."""
    create = instance.create_run_for_job
    instance.create_run_for_job = functools.partial(create, remote_job_origin=job_origin(job_name))
    try:
        yield
    finally:
        del instance.create_run_for_job  # the class's method again


LAYERS = ("landing", "raw", "entities", "events", "c360", "features", "ml", "reverse_etl")


def _describe(keys) -> str:
    """What a stage builds, by layer in lineage order: 'landing 13, raw 14, entities 10'."""
    layers: dict[str, int] = {}
    for k in keys:
        layers[k.path[0]] = layers.get(k.path[0], 0) + 1
    order = sorted(layers, key=lambda x: (LAYERS.index(x) if x in LAYERS else len(LAYERS), x))
    return ", ".join(f"{layer} {layers[layer]}" for layer in order)
