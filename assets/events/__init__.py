"""Events layer: one row per thing that happened, in daily partitions (UTC event date).

`events/events` is partitioned by day in Dagster and in Delta. A run materializes a range of
days in one step (single-run backfill) and replaces exactly those days' Delta partitions, after
its suite passes; `pending_days` says which days received data since they were built, so a
sensor or `make demo` asks only for those. Account-scoped events whose account no identity link
reaches are kept in `events/unattributed_events` with the reason, not dropped.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from deltalake.exceptions import CommitFailedError

from assets.concurrency import writer_pool
from assets.events.build import (
    EVENTS,
    UNATTRIBUTED,
    Built,
    build_days,
    day_counts,
    register_current_events,
)
from assets.events.days import event_days
from assets.events.lifecycle import RULE_EVENTS, RULE_SET_VERSION, RULES, describe_rules
from assets.events.lifecycle import account_lifecycle as lifecycle_intervals
from assets.events.mapping import load_mapping
from assets.metadata import OWNER, definition_metadata, published_metadata
from assets.publish import SUITE_CHECK, gate_and_publish, suite_check
from checks.events import events_contract, lifecycle_contract
from checks.gate import validate
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource, Published
from resources.pii import PiiResource

GROUP = "events"

# The days the data holds, read from the lake when the code location loads (assets/events/days.py)
EVENT_DAYS = event_days()
MAPPING = load_mapping()
CONTRACT = events_contract(MAPPING.event_names)
EVENTS_KEY = AssetKey(list(EVENTS))
MAX_DAYS_PER_RUN = 92
COMMIT_ATTEMPTS = 5  # another run replacing the same days wins at most this many times in a row


def _deps() -> list[AssetKey]:
    raw = sorted({s.table for s in MAPPING.sources})
    return [AssetKey(t.split("/")) for t in raw] + [
        AssetKey(["entities", t]) for t in ("identity_links", "relationship")
    ]


def events_asset(days: DailyPartitionsDefinition) -> AssetsDefinition:
    """`events/events` partitioned by `days`: the code location's `EVENT_DAYS`, or the wider
    span a build found in the data since it loaded (assets/events/runs.py)."""

    @asset(
        key=EVENTS_KEY,
        description=CONTRACT.description,
        group_name=GROUP,
        partitions_def=days,
        # A quarter of days per run: one atomic commit, bounded memory (10M events/2 years).
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
        deps=_deps(),
        kinds={"delta", "duckdb", "great_expectations"},
        owners=[OWNER],
        tags={"layer": GROUP, "pii": "false"},
        metadata=definition_metadata(CONTRACT),
        check_specs=[suite_check(CONTRACT)],
    )
    def events(
        context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, pii: PiiResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Rebuild the requested days from every raw source and replace only their partitions.

        Another run may replace the same days at the same time (this asset has no pool): delta-rs
        then refuses the later commit, and this step rebuilds the days from what is there now and
        commits again, as if it had started after the other run."""
        days = context.partition_key_range
        first, last = days.start, days.end
        predicate = f"event_date >= '{first}' AND event_date <= '{last}'"
        meta = {"dagster_run_id": context.run_id, "days": f"{first}..{last}"}
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            now = datetime.now(UTC)
            with duckdb.connect() as con:
                pii.install(con, lake.root)
                built = build_days(con, lake, MAPPING, first, last, now)
            gate = validate(CONTRACT.name, CONTRACT.suite(), built.events, built.batch)
            if not gate.passed:
                yield gate.check_result(EVENTS_KEY, SUITE_CHECK, lake.data_docs)
                raise gate.failure(f"{CONTRACT.name} {first}..{last}")
            try:
                published = _replace_days(lake, built, predicate, meta)
                break
            except CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                context.log.warning(
                    f"events {first}..{last}: another run committed these days first ({exc}); "
                    f"rebuilding them (attempt {attempt + 1} of {COMMIT_ATTEMPTS})"
                )
        yield gate.check_result(EVENTS_KEY, SUITE_CHECK, lake.data_docs)
        yield MaterializeResult(
            asset_key=EVENTS_KEY,
            metadata={
                **published_metadata(CONTRACT, published, built.events.schema, built.events),
                "days": MetadataValue.text(f"{first}..{last}"),
                "events_by_name": MetadataValue.json(day_counts(built.events)),
                "unattributed_events": MetadataValue.int(built.unattributed.num_rows),
            },
        )

    return events


events = events_asset(EVENT_DAYS)


def _replace_days(
    lake: LakeResource, built: Built, predicate: str, meta: dict[str, str]
) -> Published:
    """Both tables' days, the side table first: a crash between the two commits leaves events as
    they were. The tables are created empty before the first write, so two first writes are
    checked against each other instead of both landing (see `LakeResource.ensure`)."""
    side = "Account-scoped events no identity link maps to an account, with the reason."
    for (layer, table), data, description in (
        (UNATTRIBUTED, built.unattributed, side),
        (EVENTS, built.events, CONTRACT.description),
    ):
        lake.ensure(layer, table, data.schema, ["event_date"], description)
        published = lake.publish(
            layer,
            table,
            data,
            mode="overwrite",
            partition_by=["event_date"],
            predicate=predicate,
            description=description,
            commit_metadata=meta,
        )
    return published


LIFECYCLE = lifecycle_contract([r.state for r in RULES], describe_rules())
LIFECYCLE_KEY = AssetKey([LIFECYCLE.layer, LIFECYCLE.table])


@asset(
    key=LIFECYCLE_KEY,
    pool=writer_pool(LIFECYCLE_KEY),
    description=LIFECYCLE.description,
    group_name=GROUP,
    deps=[
        EVENTS_KEY,
        *(AssetKey(["entities", t]) for t in ("account", "subscription", "identity_merges")),
    ],
    kinds={"delta", "duckdb", "great_expectations"},
    owners=[OWNER],
    tags={"layer": GROUP, "pii": "false"},
    metadata={**definition_metadata(LIFECYCLE), "rule_set_version": RULE_SET_VERSION},
    check_specs=[suite_check(LIFECYCLE)],
)
def account_lifecycle(
    context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Every account's state on every day of its life, collapsed into intervals."""
    with duckdb.connect() as con:
        register_current_events(con, lake)
        as_of = con.sql(
            "SELECT max(event_date) FROM ev WHERE event_date <= current_date"
        ).fetchall()[0][0]
        if as_of is None:
            raise ValueError("events/events is empty: build the event days first")
        names = ", ".join(f"'{n}'" for n in RULE_EVENTS)
        events_in = con.sql(  # a relation, not Arrow: DuckDB streams it into the rules
            f"""SELECT account_id, event_name, occurred_at, properties FROM ev
                WHERE account_id IS NOT NULL AND event_name IN ({names})"""
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
        table = lifecycle_intervals(con, accounts, events_in, subs, as_of)
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
        LIFECYCLE,
        table,
        batch,
        extra={
            "as_of": MetadataValue.text(str(as_of)),
            "rule_set_version": MetadataValue.text(RULE_SET_VERSION),
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


assets = [events, account_lifecycle]
