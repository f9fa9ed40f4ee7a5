"""Customer 360: the account and person profiles dashboards, models and the CRM share.

Both are rebuilt whole from the entities, the events (windows pruned to the last 90 days of
partitions) and the lifecycle, gated by their suites and the metric logic checks, and published
only when their content changed. The account profile also carries the champion models' scores
of its day (assets/c360/scores.py), so it builds after the scores.

The c360 rules (survivorship, consent scopes: `LAKEHOUSE_C360_RULES`) are read when the code
location is built (`build_assets`: the person profile's columns follow the consent scopes) and
again when a run starts, never at import.
"""

from collections.abc import Iterator

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumnDep,
    TableColumnLineage,
)

from assets.c360.identity import identity_sql
from assets.c360.profiles import (
    C360Rules,
    accounts_sql,
    billed_subscription,
    load_c360,
    open_tickets_sql,
    people_sql,
    person_consent_sql,
)
from assets.c360.scores import SOURCE_COLUMN, scores_sql
from assets.entities.records import create_macros, register_raw
from assets.entities.rules import load_rules
from assets.events.build import EVENTS, register_current_events
from assets.gated import gated_asset
from assets.ml import SPECS
from assets.publish import gate_and_publish
from checks.c360 import CUSTOMER_360_ACCOUNTS, PAYING_STATES, people_contract
from checks.entities import IDENTITY_REVIEW
from checks.vocabulary import load_vocabulary
from resources.duckdb import DuckDBResource
from resources.identity import IdentityResource
from resources.lake import LakeResource
from resources.pii import PiiResource
from resources.sql import in_list

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


def build_assets() -> list[AssetsDefinition]:
    """The layer's assets; the person profile's columns follow the c360 rules read now."""
    return [customer_360_accounts, people_asset(load_c360())]


def _prepare(
    con, lake: LakeResource, pii: PiiResource, identity: IdentityResource, c360: C360Rules
):
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
    con.execute(f"CREATE TEMP TABLE person_consent AS {person_consent_sql(c360, as_of)}")
    con.execute(f"CREATE TEMP TABLE open_tickets AS {open_tickets_sql(as_of)}")
    return rules, as_of


def _identity(con, lake: LakeResource) -> None:
    """`account_identity`: how sure the platform is of each account's identity."""
    review = IDENTITY_REVIEW.schema.empty_table()  # none yet: no pair waits
    if lake.exists(IDENTITY_REVIEW.layer, IDENTITY_REVIEW.table):
        review = lake.dataset(IDENTITY_REVIEW.layer, IDENTITY_REVIEW.table)
    con.register("identity_review", review)
    con.execute(f"CREATE TEMP TABLE account_identity AS {identity_sql()}")


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


@gated_asset(CUSTOMER_360_ACCOUNTS, deps=[*DEPS, REVIEW, *SCORE_DEPS])
def customer_360_accounts(
    context: AssetExecutionContext,
    lake: LakeResource,
    duckdb: DuckDBResource,
    identity: IdentityResource,
    pii: PiiResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """One profile per account: firmographics by survivorship, engagement, revenue, support,
    acquisition, consent, lifecycle, scores."""
    c, c360 = CUSTOMER_360_ACCOUNTS, load_c360()
    with duckdb.connect() as con:
        rules, as_of = _prepare(con, lake, pii, identity, c360)
        _scores(con, lake, as_of)
        _identity(con, lake)
        vocab = load_vocabulary()  # as it is when the run starts
        table = con.sql(accounts_sql(c360, rules, as_of, vocab)).to_arrow_table()
        table = table.select(c.schema.names).cast(c.schema)
        con.register("profile", table)
        paying, billed = in_list(PAYING_STATES), billed_subscription(vocab)
        unexplained = " OR ".join(
            f"(({s.kind}_probability IS NULL) = ({s.kind}_unscored_reason IS NULL))" for s in SPECS
        )
        batch, unmapped_mrr = con.sql(
            f"""SELECT {{'mrr_total_difference': abs(coalesce((SELECT sum(mrr) FROM profile), 0)
                        - coalesce((SELECT sum(mrr) FROM subscription WHERE {billed}
                            AND account_id IN (SELECT account_id FROM profile)), 0)),
                    'paying_accounts_without_active_subscription': (SELECT count(*) FROM profile
                        WHERE lifecycle_state IN {paying} AND active_subscriptions = 0),
                    'scores_neither_given_nor_explained': (SELECT count(*) FROM profile
                        WHERE {unexplained})}},
                    (SELECT coalesce(sum(mrr), 0) FROM subscription
                        WHERE {billed} AND account_id IS NULL)"""
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


def people_asset(c360: C360Rules) -> AssetsDefinition:
    """`c360/customer_360_people`, with one consent flag per scope of `c360`."""

    @gated_asset(people_contract(c360.consent_scopes), deps=DEPS)
    def customer_360_people(
        context: AssetExecutionContext,
        lake: LakeResource,
        duckdb: DuckDBResource,
        identity: IdentityResource,
        pii: PiiResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """One profile per person: name by survivorship, hashed emails, accounts and roles,
        engagement, support, consent flags."""
        current = load_c360()  # the rules as they are when the run starts
        c = people_contract(current.consent_scopes)
        with duckdb.connect() as con:
            rules, as_of = _prepare(con, lake, pii, identity, current)
            table = con.sql(people_sql(current, rules, as_of)).to_arrow_table()
            table = table.select(c.schema.names).cast(c.schema)
        yield from gate_and_publish(
            context, lake, c, table, extra={"as_of": MetadataValue.text(str(as_of))}
        )

    return customer_360_people
