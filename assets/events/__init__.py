"""Events layer: one row per thing that happened, in daily partitions (UTC event date).

`events/events` is partitioned by day in Dagster and in Delta. A run materializes a range of
days in one step (single-run backfill) and replaces exactly those days' Delta partitions, after
its suite passes; `pending_days` says which days received data since they were built, so a
sensor or `make demo` asks only for those. Account-scoped events whose account no identity link
reaches are kept in `events/unattributed_events` with the reason, not dropped: the same step
writes that table, behind its own suite.

Nothing here reads a setting at import: `build_assets()` reads the event mapping and the days
the data holds when the code location is built (platform/definitions.py), and a run reads the
mapping again when it starts.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
)
from deltalake.exceptions import CommitFailedError

from assets.events.build import (
    EVENTS,
    Built,
    build_days,
    day_counts,
    register_current_events,
    unknown_names,
)
from assets.events.days import event_days
from assets.events.lifecycle import account_lifecycle as lifecycle_intervals
from assets.events.lifecycle import lifecycle_table, rule_events, rule_set_version
from assets.events.mapping import Mapping, load_mapping
from assets.gated import NO_POOL, SUITE_CHECK, gated_asset
from assets.metadata import published_metadata
from assets.publish import gate_and_publish
from checks.contract import TableContract
from checks.events import EVENTS_TABLE, UNATTRIBUTED_EVENTS
from checks.gate import GateResult, validate
from checks.vocabulary import Vocabulary, load_vocabulary
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource, Published
from resources.pii import PiiResource
from resources.sql import in_list, literal

EVENTS_KEY = AssetKey(list(EVENTS))
MAX_DAYS_PER_RUN = 92
COMMIT_ATTEMPTS = 5  # another run replacing the same days wins at most this many times in a row
# The side table is written by the events step, so its suite is a check of that step's asset.
UNATTRIBUTED_CHECK = f"{UNATTRIBUTED_EVENTS.table}_{SUITE_CHECK}"
# A warning, never a gate: event names the vocabulary does not know, kept and counted.
KNOWN_NAMES_CHECK = "events_known_names"


def build_assets(lake: LakeResource | None = None) -> list[AssetsDefinition]:
    """The layer's assets, with the settings Dagster needs at definition time read now: the
    event mapping (`LAKEHOUSE_EVENT_MAPPING`: the raw tables the events depend on, the names
    their contract accepts) and the days the data holds (`LAKEHOUSE_EVENTS_START`/`_END`, the
    lake: the partitions)."""
    mapping = load_mapping()
    return [
        events_asset(event_days(lake, mapping), mapping),
        lifecycle_asset(mapping.vocabulary),
    ]


def _deps(mapping: Mapping) -> list[AssetKey]:
    raw = sorted(mapping.tables())
    return [AssetKey(t.split("/")) for t in raw] + [
        AssetKey(["entities", t]) for t in ("identity_links", "relationship")
    ]


def events_asset(
    days: DailyPartitionsDefinition, mapping: Mapping | None = None
) -> AssetsDefinition:
    """`events/events` partitioned by `days`: those the code location was built with, or the
    wider span a build found in the data since (assets/events/runs.py). `mapping`: the event
    mapping it was built with (default: read now)."""
    mapping = mapping or load_mapping()

    @gated_asset(
        EVENTS_TABLE,
        deps=_deps(mapping),
        partitions_def=days,
        # A quarter of days per run: one atomic commit, bounded memory (10M events/2 years).
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
        check_specs=[
            AssetCheckSpec(
                UNATTRIBUTED_CHECK,
                asset=EVENTS_KEY,
                blocking=True,
                description=f"Great Expectations suite of {UNATTRIBUTED_EVENTS.name}, the "
                "account-scoped events no identity link reaches, which this step writes beside "
                "events/events: run before either table's commit.",
            ),
            AssetCheckSpec(
                KNOWN_NAMES_CHECK,
                asset=EVENTS_KEY,
                blocking=False,
                description="Warns when the built days hold stream event names the vocabulary "
                "does not know: kept under their snake_cased names and counted as nothing "
                "(not usage, not sessions) until the vocabulary names them (events.<name>.from).",
            ),
        ],
        pool=NO_POOL,
    )
    def events(
        context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, pii: PiiResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Rebuild the requested days from every raw source and replace only their partitions.

        Another run may replace the same days at the same time (this asset has no pool): delta-rs
        then refuses the later commit, and this step rebuilds the days from what is there now and
        commits again, as if it had started after the other run."""
        current = load_mapping()  # the mapping and vocabulary as they are when the run starts
        contract = EVENTS_TABLE
        days = context.partition_key_range
        first, last = days.start, days.end
        predicate = f"event_date >= {literal(first)} AND event_date <= {literal(last)}"
        meta = {"dagster_run_id": context.run_id, "days": f"{first}..{last}"}
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            now = datetime.now(UTC)
            with duckdb.connect() as con:
                pii.install(con, lake.root)
                built = build_days(con, lake, current, first, last, now)
            gates = _gates(contract, built)
            if not all(g.passed for g in gates.values()):
                yield from _check_results(gates, lake)
                failed = next(g for g in gates.values() if not g.passed)
                raise failed.failure(f"{failed.suite} {first}..{last}")
            try:
                published = _replace_days(lake, contract, built, predicate, meta)
                break
            except CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                context.log.warning(
                    f"events {first}..{last}: another run committed these days first ({exc}); "
                    f"rebuilding them (attempt {attempt + 1} of {COMMIT_ATTEMPTS})"
                )
        yield from _check_results(gates, lake)
        unknown = unknown_names(current, built.events, built.unattributed)
        yield _known_names_result(unknown, current.vocabulary, f"{first}..{last}")
        yield MaterializeResult(
            asset_key=EVENTS_KEY,
            metadata={
                **published_metadata(contract, published, built.events.schema, built.events),
                "days": MetadataValue.text(f"{first}..{last}"),
                "events_by_name": MetadataValue.json(day_counts(built.events)),
                "unattributed_events": MetadataValue.int(built.unattributed.num_rows),
                "unknown_event_names": MetadataValue.json(unknown),
            },
        )

    return events


def _known_names_result(unknown: dict[str, int], vocab: Vocabulary, days: str) -> AssetCheckResult:
    """The warning listing the event names of `days` the vocabulary does not know."""
    listed = ", ".join(f"{n} ({c})" for n, c in unknown.items())
    return AssetCheckResult(
        asset_key=EVENTS_KEY,
        check_name=KNOWN_NAMES_CHECK,
        passed=not unknown,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{sum(unknown.values())} event(s) under {len(unknown)} name(s) the vocabulary "
            f"({vocab.path}) does not know, kept and counted as nothing: {listed}"
            if unknown
            else "every event name is the vocabulary's"
        ),
        metadata={
            "unknown_event_names": MetadataValue.json(unknown),
            "days": MetadataValue.text(days),
            "vocabulary": MetadataValue.path(str(vocab.path)),
        },
    )


def _gates(contract: TableContract, built: Built) -> dict[str, GateResult]:
    """Check name -> the suite's result on the rows of each table the step writes."""
    return {  # the side table first, as it is committed first
        UNATTRIBUTED_CHECK: validate(
            UNATTRIBUTED_EVENTS.name, UNATTRIBUTED_EVENTS.suite(), built.unattributed
        ),
        SUITE_CHECK: validate(contract.name, contract.suite(), built.events, built.batch),
    }


def _check_results(gates: dict[str, GateResult], lake: LakeResource) -> Iterator[AssetCheckResult]:
    for name, gate in gates.items():
        yield gate.check_result(EVENTS_KEY, name, lake.data_docs)


def _replace_days(
    lake: LakeResource,
    contract: TableContract,
    built: Built,
    predicate: str,
    meta: dict[str, str],
) -> Published:
    """Both tables' days, the side table first: a crash between the two commits leaves events as
    they were. The tables are created empty before the first write, so two first writes are
    checked against each other instead of both landing (see `LakeResource.ensure`)."""
    for c, data in ((UNATTRIBUTED_EVENTS, built.unattributed), (contract, built.events)):
        lake.ensure(c.layer, c.table, c.schema, list(c.partition_by), c.description)
        published = lake.publish(
            c.layer,
            c.table,
            data,
            mode="overwrite",
            partition_by=list(c.partition_by),
            predicate=predicate,
            description=c.description,
            commit_metadata=meta,
        )
    return published


def lifecycle_asset(vocab: Vocabulary | None = None) -> AssetsDefinition:
    """`events/account_lifecycle`, described by the rules as the vocabulary `vocab` (default:
    read now) sets them; a run reads the vocabulary again when it starts."""
    built_with = vocab or load_vocabulary()

    @gated_asset(
        lifecycle_table(built_with),
        deps=[
            EVENTS_KEY,
            *(AssetKey(["entities", t]) for t in ("account", "subscription", "identity_merges")),
        ],
        metadata={"rule_set_version": rule_set_version(built_with)},
    )
    def account_lifecycle(
        context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Every account's state on every day of its life, collapsed into intervals."""
        yield from _lifecycle(context, lake, duckdb, load_vocabulary())

    return account_lifecycle


def _lifecycle(
    context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, vocab: Vocabulary
) -> Iterator[MaterializeResult | AssetCheckResult]:
    with duckdb.connect() as con:
        register_current_events(con, lake)
        as_of = con.sql(
            "SELECT max(event_date) FROM ev WHERE event_date <= current_date"
        ).fetchall()[0][0]
        if as_of is None:
            raise ValueError("events/events is empty: build the event days first")
        events_in = con.sql(  # a relation, not Arrow: DuckDB streams it into the rules
            f"""SELECT account_id, event_name, occurred_at, properties FROM ev
                WHERE account_id IS NOT NULL AND event_name IN {in_list(rule_events(vocab))}"""
        )
        accounts = lake.read("entities", "account", columns=["account_id", "first_seen_at"])
        subs = lake.read(
            "entities",
            "subscription",
            columns=[
                "subscription_id",
                "account_id",
                "plan_tier",
                "mrr",
                "status",
                "started_at",
                "ended_at",
            ],
        )
        table = lifecycle_intervals(con, accounts, events_in, subs, as_of, vocab)
        con.register("lc", table)
        batch = (
            con.sql(
                """WITH s AS (SELECT *, lead(valid_from) OVER (PARTITION BY account_id
                    ORDER BY valid_from) AS next_from FROM lc)
               SELECT count(*) FILTER (next_from < valid_to) AS overlapping_intervals,
                   count(*) FILTER (next_from > valid_to
                       OR (next_from IS NOT NULL AND valid_to IS NULL)) AS gaps_between_intervals,
                   (SELECT count(*) FROM (SELECT account_id FROM lc GROUP BY 1
                       HAVING count(*) FILTER (is_current) <> 1))
                       AS accounts_without_one_current_state
               FROM s"""
            )
            .to_arrow_table()
            .to_pylist()[0]
        )
    current = table.filter(table["is_current"])
    states = current.group_by("state").aggregate([("account_id", "count")])
    yield from gate_and_publish(
        context,
        lake,
        lifecycle_table(vocab),
        table,
        batch,
        extra={
            "as_of": MetadataValue.text(str(as_of)),
            "rule_set_version": MetadataValue.text(rule_set_version(vocab)),
            "current_states": MetadataValue.json(
                dict(
                    sorted(
                        zip(
                            states["state"].to_pylist(),
                            states["account_id_count"].to_pylist(),
                            strict=True,
                        )
                    )
                )
            ),
        },
    )
