"""Customer 360: the account and person profiles dashboards, models and the CRM share.

Both are rebuilt whole from the entities, the events (windows pruned to the last 90 days of
partitions) and the lifecycle, gated by their suites and the metric logic checks, and published
only when their content changed. The account profile also carries the champion models' scores
of its day (assets/c360/scores.py), so it builds after the scores.
"""

from collections.abc import Iterator

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    TableColumnDep,
    TableColumnLineage,
    asset,
)

from assets.c360.identity import NO_REVIEW, identity_sql
from assets.c360.profiles import (
    ACTIVE_SUBSCRIPTION,
    accounts_sql,
    load_c360,
    open_tickets_sql,
    people_sql,
    person_consent_sql,
)
from assets.c360.scores import SOURCE_COLUMN, scores_sql
from assets.concurrency import writer_pool
from assets.entities.records import create_macros, register_raw
from assets.entities.rules import load_rules
from assets.events.build import EVENTS, register_current_events
from assets.metadata import OWNER, definition_metadata
from assets.ml import SPECS
from assets.publish import gate_and_publish, suite_check
from checks.c360 import CUSTOMER_360_ACCOUNTS, PAYING_STATES, people_contract
from checks.contract import TableContract
from resources.duckdb import DuckDBResource
from resources.identity import IdentityResource
from resources.lake import LakeResource
from resources.pii import PiiResource

GROUP = "c360"
C360 = load_c360()
CUSTOMER_360_PEOPLE = people_contract(C360.consent_scopes)
INPUTS = {
    "links": ("entities", "identity_links"),
    "account": ("entities", "account"),
    "person": ("entities", "person"),
    "subscription": ("entities", "subscription"),
    "relationship": ("entities", "relationship"),
    "lifecycle": ("events", "account_lifecycle"),
}
DEPS = [AssetKey(list(t)) for t in (*INPUTS.values(), EVENTS, ("entities", "identity_merges"))]
REVIEW = AssetKey(["entities", "identity_review"])
# The account profile carries the champions' scores of its day: it builds after them (the
# features read the events and entities, never the profile, so this makes no cycle).
SCORE_DEPS = [s.scores_key for s in SPECS]


def _key(c: TableContract) -> AssetKey:
    return AssetKey([c.layer, c.table])


def _spec(c: TableContract, deps: list[AssetKey] = DEPS) -> dict:
    return {
        "key": _key(c),
        "pool": writer_pool(_key(c)),
        "description": c.description,
        "group_name": GROUP,
        "deps": deps,
        "kinds": {"delta", "duckdb", "great_expectations"},
        "owners": [OWNER],
        "tags": {"layer": GROUP, "pii": str(bool(c.pii_columns)).lower()},
        "metadata": definition_metadata(c),
        "check_specs": [suite_check(c)],
    }


def _prepare(con, lake: LakeResource, pii: PiiResource, identity: IdentityResource):
    """Inputs as DuckDB views, the normalization macros and the PII hash; returns rules, as_of."""
    rules = load_rules(identity.rules_path)
    pii.install(con, lake.root)
    create_macros(con, rules.normalize)
    register_raw(con, lake, {s.table for s in (*rules.accounts.sources, *rules.persons.sources)})
    for name, (layer, table) in INPUTS.items():
        if not lake.exists(layer, table):
            raise ValueError(f"{layer}/{table} is missing: materialize it before the 360")
        con.register(name, lake.dataset(layer, table))
    if not lake.exists(*EVENTS):
        raise ValueError("events/events is missing: build the event days before the 360")
    register_current_events(con, lake)
    as_of = con.sql("SELECT max(event_date) FROM ev WHERE event_date <= current_date").fetchall()[
        0
    ][0]
    if as_of is None:
        raise ValueError("events/events is empty: build the event days first")
    con.execute(f"CREATE TEMP TABLE person_consent AS {person_consent_sql(C360, as_of)}")
    con.execute(f"CREATE TEMP TABLE open_tickets AS {open_tickets_sql(as_of)}")
    return rules, as_of


def _identity(con, lake: LakeResource) -> None:
    """`account_identity`: how sure the platform is of each account's identity."""
    review = NO_REVIEW
    if lake.exists("entities", "identity_review"):
        con.register("identity_review", lake.dataset("entities", "identity_review"))
        review = "SELECT * FROM identity_review"
    con.execute(f"CREATE TEMP TABLE account_identity AS {identity_sql(review)}")


def _scores(con, lake: LakeResource, as_of) -> None:
    """`account_scores`: each model's score columns per account, for the profile's day."""
    present = set()
    for spec in SPECS:
        if lake.exists(spec.scores.layer, spec.scores.table):
            con.register(f"{spec.kind}_scores", lake.dataset(spec.scores.layer, spec.scores.table))
            present.add(spec.kind)
    con.execute(f"CREATE TEMP TABLE account_scores AS {scores_sql(as_of, present)}")


def _lineage() -> TableColumnLineage:
    """The score columns' sources (the rest of the profile is survivorship, see c360.yaml)."""
    return TableColumnLineage(
        deps_by_column={
            f"{spec.kind}_{field}": [TableColumnDep(spec.scores_key, column)]
            for spec in SPECS
            for field, column in SOURCE_COLUMN.items()
        }
    )


@asset(**_spec(CUSTOMER_360_ACCOUNTS, [*DEPS, REVIEW, *SCORE_DEPS]))
def customer_360_accounts(
    context: AssetExecutionContext,
    lake: LakeResource,
    duckdb: DuckDBResource,
    identity: IdentityResource,
    pii: PiiResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """One profile per account: firmographics by survivorship, engagement, revenue, support,
    acquisition, consent, lifecycle, scores."""
    c = CUSTOMER_360_ACCOUNTS
    with duckdb.connect() as con:
        rules, as_of = _prepare(con, lake, pii, identity)
        _scores(con, lake, as_of)
        _identity(con, lake)
        table = con.sql(accounts_sql(C360, rules, as_of)).to_arrow_table()
        table = table.select(c.schema.names).cast(c.schema)
        con.register("profile", table)
        paying = ", ".join(f"'{s}'" for s in PAYING_STATES)
        unexplained = " OR ".join(
            f"(({s.kind}_probability IS NULL) = ({s.kind}_unscored_reason IS NULL))" for s in SPECS
        )
        batch, unmapped_mrr = con.sql(
            f"""SELECT {{'mrr_total_difference': abs(coalesce((SELECT sum(mrr) FROM profile), 0)
                        - coalesce((SELECT sum(mrr) FROM subscription WHERE {ACTIVE_SUBSCRIPTION}
                            AND account_id IN (SELECT account_id FROM profile)), 0)),
                    'paying_accounts_without_active_subscription': (SELECT count(*) FROM profile
                        WHERE lifecycle_state IN ({paying}) AND active_subscriptions = 0),
                    'scores_neither_given_nor_explained': (SELECT count(*) FROM profile
                        WHERE {unexplained})}},
                    (SELECT coalesce(sum(mrr), 0) FROM subscription
                        WHERE {ACTIVE_SUBSCRIPTION} AND account_id IS NULL)"""
        ).fetchall()[0]
    states = table.group_by("lifecycle_state").aggregate([("account_id", "count")])
    scored = {s.kind: len(table) - table[f"{s.kind}_probability"].null_count for s in SPECS}
    extra = {
        "scored_accounts": MetadataValue.json(scored),
        "dagster/column_lineage": _lineage(),
        "as_of": MetadataValue.text(str(as_of)),
        "mrr_total": MetadataValue.float(
            round(float(pa.compute.sum(table["mrr"]).as_py() or 0), 2)
        ),
        "mrr_of_unmapped_subscriptions": MetadataValue.float(round(float(unmapped_mrr), 2)),
        "lifecycle_states": MetadataValue.json(
            {str(k): n for k, n in zip(states[0].to_pylist(), states[1].to_pylist(), strict=True)}
        ),
    }
    yield from gate_and_publish(context, lake, c, table, batch, extra)


@asset(**_spec(CUSTOMER_360_PEOPLE))
def customer_360_people(
    context: AssetExecutionContext,
    lake: LakeResource,
    duckdb: DuckDBResource,
    identity: IdentityResource,
    pii: PiiResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """One profile per person: name by survivorship, hashed emails, accounts and roles,
    engagement, support, consent flags."""
    c = CUSTOMER_360_PEOPLE
    with duckdb.connect() as con:
        rules, as_of = _prepare(con, lake, pii, identity)
        table = con.sql(people_sql(C360, rules, as_of)).to_arrow_table()
        table = table.select(c.schema.names).cast(c.schema)
    yield from gate_and_publish(
        context, lake, c, table, extra={"as_of": MetadataValue.text(str(as_of))}
    )


assets = [customer_360_accounts, customer_360_people]
