"""Raw layer: one append-only Delta table per source object, behind the quality gate.

Each run ingests only landing files it has not seen, types them by the table's contract, sends
rule-breaking rows to `raw/quarantine` and validates the batch with the table's GX suite before
the commit. A failed gate leaves every table at its previous version and fails the run.
One raw asset per object of the source catalog (checks/sources.py), built with the code location.
"""

import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from assets.gated import SUITE_CHECK, gated_asset, table_key
from assets.landing import landing_key
from assets.metadata import published_metadata
from assets.raw.ingest import (
    Batch,
    Found,
    Refused,
    build_batch,
    commit,
    find_pending,
    quarantine_summary,
)
from checks.gate import validate
from checks.raw import QUARANTINE, RawContract
from checks.sources import raw_contracts
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource, SchemaChangeError
from resources.landing import LandingResource


def _notes(c: RawContract) -> str:
    # Partition columns are the Delta table's file layout; the asset has no Dagster partitions.
    layout = (
        f" The Delta table's files are partitioned by {', '.join(f'`{p}`' for p in c.partition_by)}"
        " (a storage layout, not Dagster partitions: each run ingests every new extract)."
        if c.partition_by
        else ""
    )
    return (
        f"Landing: `{c.landing_dir}/<extract_date>/` ({c.format}, "
        f"{c.cadence or 'daily'} extracts). Append-only; a file is ingested once (by content "
        f"hash).{layout} Rows breaking a column rule go to `raw/quarantine`; the batch fails its "
        f"gate when more than {c.quarantine_threshold:.0%} of its rows are quarantined."
    )


def build_raw_asset(c: RawContract) -> AssetsDefinition:
    @gated_asset(
        c,
        deps=[landing_key(c)],
        notes=_notes(c),
        tags={"source": c.source},
        metadata={"quarantine_threshold": c.quarantine_threshold},
    )
    def _raw(
        context: AssetExecutionContext,
        lake: LakeResource,
        landing: LandingResource,
        duckdb: DuckDBResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        found = find_pending(c, landing, lake)
        context.log.info(f"{c.name}: {len(found.pending)} new or changed landing file(s)")
        for s in found.skipped:
            log = context.log.warning if s.decision == "refused" else context.log.info
            log(f"{c.name}: {s.decision} {s.relative} ({s.rule}): {s.reason}")
        with tempfile.TemporaryDirectory(prefix=f"lakehouse-{c.table}-") as stage:
            yield from _ingest(
                context, c, found, lake, duckdb, Path(stage), landing.latest_allowed()
            )

    return _raw


def _ingest(
    context: AssetExecutionContext,
    c: RawContract,
    found: Found,
    lake: LakeResource,
    duckdb: DuckDBResource,
    stage: Path,
    latest: datetime,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Type and stage, gate the staged rows, then commit: nothing is visible before the gate."""
    key = table_key(c)
    try:
        with duckdb.connect() as con:
            batch = build_batch(c, found, lake, con, stage, latest)
    except SchemaChangeError as exc:
        yield AssetCheckResult(
            asset_key=key,
            check_name=SUITE_CHECK,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=str(exc),
            metadata={"rule": "type_change"},
        )
        raise Failure(description=str(exc)) from exc
    gate = validate(c.name, c.suite(), batch.chunks(), batch.summary())
    # A failed batch writes nothing, quarantine included: its files stay pending in landing, so
    # the check must name them, their lines and rules itself.
    held = quarantine_summary(batch.quarantine)
    yield gate.check_result(key, SUITE_CHECK, lake.data_docs, detail=held)
    if not gate.passed:
        raise gate.failure(f"{c.name} batch of {len(found.pending)} file(s)", detail=held)
    for path in batch.deferred:
        context.log.warning(f"{c.name}: {path} changed while it was read: left for the next run")
    try:
        published = commit(batch, lake)
    except Refused as refused:  # rows for the quarantine or the log broke their table's suite
        raise refused.gate.failure(refused.what, refused.detail) from refused
    context.log.info(f"{c.name}: {published.rows_written:,} rows in version {published.version}")
    yield MaterializeResult(
        asset_key=key,
        metadata={
            **published_metadata(c, published, batch.schema, batch.head),
            **_batch_metadata(batch),
        },
    )


def _batch_metadata(batch: Batch) -> dict:
    meta: dict = {k: v for k, v in batch.summary().items()}
    if batch.extras:
        meta["schema_drift_columns"] = MetadataValue.json(batch.extras)
    quarantined = batch.quarantined()
    if quarantined.num_rows:
        rules = quarantined.group_by("rule").aggregate([([], "count_all")]).to_pylist()
        meta["quarantined_by_rule"] = MetadataValue.json({r["rule"]: r["count_all"] for r in rules})
    if batch.skipped:
        meta["landing_entries_not_read"] = MetadataValue.md(
            "| entry | decision | rule | why |\n|---|---|---|---|\n"
            + "\n".join(
                f"| `{s.relative}` | {s.decision} | {s.rule} | {s.reason} |"
                for s in batch.skipped[:50]
            )
        )
    return meta


QUARANTINE_KEY = table_key(QUARANTINE)


def build_assets(contracts: tuple[RawContract, ...] | None = None) -> list[AssetsDefinition]:
    """One raw asset per object of the catalog (the active one unless given), and the
    quarantine asset that follows them all."""
    contracts = raw_contracts() if contracts is None else contracts
    quarantine_asset = gated_asset(
        QUARANTINE,
        deps=[table_key(c) for c in contracts],
        notes=(
            "Materializing this asset validates the whole quarantine table and reports counts "
            "per table and rule; the rows themselves are appended by the raw assets, in the "
            "same run as the batch they were rejected from, each batch's rows validated by this "
            "suite first."
        ),
    )(quarantine)
    return [*(build_raw_asset(c) for c in contracts), quarantine_asset]


def quarantine(lake: LakeResource) -> Iterator[MaterializeResult | AssetCheckResult]:
    if not lake.exists(QUARANTINE.layer, QUARANTINE.table):
        lake.publish(QUARANTINE.layer, QUARANTINE.table, QUARANTINE.schema.empty_table())
    table = lake.read(QUARANTINE.layer, QUARANTINE.table)
    gate = validate(QUARANTINE.name, QUARANTINE.suite(), table)
    yield gate.check_result(QUARANTINE_KEY, SUITE_CHECK, lake.data_docs)
    counts = table.group_by(["table_name", "rule"]).aggregate([([], "count_all")]).to_pylist()
    md = ["| table | rule | rows |", "|---|---|---|"]
    md += [f"| {r['table_name']} | {r['rule']} | {r['count_all']} |" for r in counts]
    published = lake.describe(QUARANTINE.layer, QUARANTINE.table)
    yield MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata={
            **published_metadata(QUARANTINE, published, table.schema, table),
            "by_table_and_rule": MetadataValue.md("\n".join(md)),
        },
    )
