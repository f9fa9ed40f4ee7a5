"""Feature marts and training sets, all from one as-of function (assets/features/asof.py).

The marts describe today's scoring population; the training sets stack monthly past as-of dates
whose 90-day label window has fully passed, each labelled from that window only. One step
builds the four (the daily aggregate of the events is shared), each behind its suite.
"""

from collections.abc import Iterator
from datetime import date, timedelta

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
)

from assets.events.build import EVENTS, register_current_events
from assets.features import asof
from assets.gated import SUITE_CHECK, gated_multi_asset, gated_out, table_key
from assets.metadata import published_metadata
from assets.publish import publish_if_changed
from checks import features as contracts
from checks.gate import validate
from checks.vocabulary import load_vocabulary
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.sql import literal

GROUP = "features"
TRAINING_STEP_DAYS = 30
INPUTS = {
    "history": ("entities", "attribute_history"),
    "subscription": ("entities", "subscription"),
    "relationship": ("entities", "relationship"),
}


def training_dates(first: date, last: date) -> list[date]:
    """Monthly as-of dates whose label window ends by `last`, newest first."""
    out, d = [], last - timedelta(days=asof.HORIZON_DAYS)
    while d >= first:
        out.append(d)
        d -= timedelta(days=TRAINING_STEP_DAYS)
    return out


def _not_upgraded(rel: str) -> str:
    """Rows of `rel` not on the vocabulary's top tier that never moved up a tier by as_of."""
    vocab = load_vocabulary()
    return f"""SELECT * FROM ({rel}) f WHERE f.plan_tier <> {literal(vocab.top_plan)}
        AND NOT EXISTS (SELECT 1 FROM ev e WHERE e.account_id = f.account_id
            AND e.event_name = 'plan_changed' AND e.event_date <= f.as_of
            AND {asof.upgrade_sql("e", vocab)})"""


@gated_multi_asset(
    "build_features",
    {c.table: gated_out(c) for c in contracts.FEATURE_TABLES},
    contracts.FEATURE_TABLES,
    group=GROUP,
    deps=[AssetKey(list(EVENTS)), *(AssetKey(list(t)) for t in INPUTS.values())],
)
def build_features(
    context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Today's marts and the monthly training sets, from one as-of function."""
    with duckdb.connect() as con:
        register_current_events(con, lake)
        for name, (layer, table) in INPUTS.items():
            con.register(name, lake.dataset(layer, table))
        first, last = con.sql(
            "SELECT min(event_date), max(event_date) FROM ev WHERE event_date <= current_date"
        ).fetchall()[0]
        if last is None:
            raise ValueError("events/events is empty: build the event days first")
        asof.prepare(con)
        dates = training_dates(first, last)
        con.register("today", asof.features_as_of(con, [last]))
        con.register("past", asof.features_as_of(con, dates))
        con.execute(f"CREATE TEMP TABLE labelled AS {asof.labels_sql('SELECT * FROM past')}")
        tables = {
            "churn_features": con.sql("SELECT * FROM today").to_arrow_table(),
            "expansion_features": con.sql(_not_upgraded("SELECT * FROM today")).to_arrow_table(),
            "churn_training_set": con.sql(
                "SELECT p.*, l.churned_90d FROM past p JOIN labelled l USING (account_id, as_of)"
            ).to_arrow_table(),
            "expansion_training_set": con.sql(
                _not_upgraded(
                    "SELECT p.*, l.upgraded_90d FROM past p JOIN labelled l "
                    "USING (account_id, as_of)"
                )
            ).to_arrow_table(),
        }
    by_name = {c.table: c for c in contracts.FEATURE_TABLES}
    tables = {
        n: t.select(by_name[n].schema.names).cast(by_name[n].schema) for n, t in tables.items()
    }
    gates = {n: validate(by_name[n].name, by_name[n].suite(), t) for n, t in tables.items()}
    for n, g in gates.items():
        yield g.check_result(table_key(by_name[n]), SUITE_CHECK, lake.data_docs)
    failed = [g for g in gates.values() if not g.passed]
    if failed:
        raise failed[0].failure("features")
    for n, table in tables.items():
        c = by_name[n]
        published, wrote = publish_if_changed(lake, c, table, context.run_id)
        extra = {"as_of_dates": MetadataValue.int(len(set(table["as_of"].to_pylist())))}
        for label in ("churned_90d", "upgraded_90d"):
            if label in table.column_names and table.num_rows:
                rate = pa.compute.mean(table[label].cast(pa.float64())).as_py()
                extra["positive_rate"] = MetadataValue.float(round(rate, 4))
        yield MaterializeResult(
            asset_key=table_key(c),
            metadata={
                **published_metadata(c, published, table.schema, table),
                "changed": wrote,
                **extra,
            },
        )


assets = [build_features]
