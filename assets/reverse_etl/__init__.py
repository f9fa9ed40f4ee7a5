"""Reverse ETL: what the CRM should know, and a guarded, idempotent sync that sends it.

`crm_account_updates` is a gated Delta table (one row per CRM account). `sync_to_crm` sends
what changed since the last successful sync to the configured destination and writes the
append-only `sync_audit`, the `review_queue` (actions below the confidence threshold) and the
fingerprints of what the CRM holds (`sync_state`); how sure the platform is of each action
(`action_confidence`) is assets/reverse_etl/confidence.py. Erasure requests are the
privacy layer's (assets/privacy/).
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumnDep,
    TableColumnLineage,
)
from pydantic import Field

from assets.concurrency import writer_pool
from assets.gated import (
    SUITE_CHECK,
    gated_asset,
    gated_multi_asset,
    gated_out,
    table_key,
)
from assets.metadata import published_metadata
from assets.publish import gate_and_publish
from assets.reverse_etl.confidence import STALE_AFTER_DAYS, evidence_table, profile_versions
from assets.reverse_etl.sync import COLUMN_SOURCES, last_decisions, sync, updates_sql
from checks.contract import TableContract
from checks.gate import GateResult, validate
from checks.reverse_etl import (
    CRM_ACCOUNT_UPDATES,
    REVIEW_QUEUE,
    SYNC_AUDIT,
    SYNC_STATE,
)
from resources.crm import CrmResource
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource, Published
from resources.mlflow import MlflowResource

GROUP = "reverse_etl"
# The views the CRM updates are computed from (assets/reverse_etl/sync.py): name -> table.
INPUTS = {
    "c360": ("c360", "customer_360_accounts"),
    "people": ("c360", "customer_360_people"),
    "account": ("entities", "account"),
}


class UpdatesConfig(Config):
    stale_after_days: int = Field(
        default=STALE_AFTER_DAYS,
        description="Days without any record of an account after which its data counts as "
        "stale: its actions' confidence halves with each further such period.",
    )


@gated_asset(CRM_ACCOUNT_UPDATES, deps=[AssetKey(list(t)) for t in INPUTS.values()])
def crm_account_updates(
    context: AssetExecutionContext,
    config: UpdatesConfig,
    lake: LakeResource,
    duckdb: DuckDBResource,
    mlflow: MlflowResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Per CRM account: churn risk and band, expansion propensity, lifecycle stage, health
    score, next best action with its confidence (and why), top reasons, model versions,
    consent."""
    c = CRM_ACCOUNT_UPDATES
    with duckdb.connect() as con:
        for name, (layer, table) in INPUTS.items():
            if not lake.exists(layer, table):
                raise ValueError(f"{layer}/{table} is missing: materialize it before the sync")
            con.register(name, lake.dataset(layer, table))
        evidence = evidence_table(profile_versions(con), mlflow.uri(lake.root))
        con.register("band_evidence", evidence)
        table = con.sql(updates_sql(config.stale_after_days)).to_arrow_table()
    table = table.select(c.schema.names).cast(c.schema)
    actions = table.group_by("next_best_action").aggregate([("crm_account_id", "count")])
    confidence = pa.compute.mean(table["action_confidence"]).as_py() if len(table) else None
    lineage = TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(AssetKey(k.split("/")), name) for k, name in sources]
            for column, sources in COLUMN_SOURCES.items()
        }
    )
    yield from gate_and_publish(
        context,
        lake,
        c,
        table,
        extra={
            "actions": MetadataValue.json(
                dict(zip(actions[0].to_pylist(), actions[1].to_pylist(), strict=True))
            ),
            "mean_action_confidence": MetadataValue.float(round(confidence or 0.0, 4)),
            "band_evidence": MetadataValue.json(evidence.to_pylist()),
            "stale_after_days": config.stale_after_days,
            "dagster/column_lineage": lineage,
        },
    )


class SyncConfig(Config):
    dry_run: bool = Field(default=False, description="Report what would change; write nothing.")
    threshold: float = Field(
        default=0.5, description="Actions less confident than this go to the review queue."
    )
    batch_size: int = Field(default=500, description="Rows per destination transaction.")


SYNC_POOL = writer_pool("sync_to_crm")
# The sync's own tables, in the order they are written; a dry run writes only the audit.
SYNC_TABLES = (SYNC_AUDIT, REVIEW_QUEUE, SYNC_STATE)
SYNC_KINDS = {"delta", "great_expectations"}


@gated_multi_asset(
    "sync_to_crm",
    outs={
        c.table: gated_out(c, kinds=SYNC_KINDS, is_required=c is SYNC_AUDIT) for c in SYNC_TABLES
    },
    contracts=SYNC_TABLES,
    group=GROUP,
    deps=[table_key(CRM_ACCOUNT_UPDATES)],
)
def sync_to_crm(
    context: AssetExecutionContext, config: SyncConfig, lake: LakeResource, crm: CrmResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Send what changed (consented, confident, champion-scored) to the CRM; audit every
    decision once (a record held back again for the same reason and inputs is not re-audited).

    Reading the state and the audit, sending, and writing them back hold the sync's lock: a
    second sync let through beside this one would read the same state, send and audit every
    record again, and could create the state and queue tables together (doubling their rows)."""
    with lake.exclusive(SYNC_POOL):
        yield from _sync(context, config, lake, crm)


def _sync(
    context: AssetExecutionContext, config: SyncConfig, lake: LakeResource, crm: CrmResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Sync, then gate the three tables together before any is written: a failed suite fails
    the step with every table at its previous version. What already reached the CRM is then
    as after a crash before the write: the state did not advance, so the next sync re-sends it
    (an idempotent upsert) and audits it once."""
    updates = lake.read(CRM_ACCOUNT_UPDATES.layer, CRM_ACCOUNT_UPDATES.table)
    state = (
        lake.read(SYNC_STATE.layer, SYNC_STATE.table)
        if lake.exists(SYNC_STATE.layer, SYNC_STATE.table)
        else SYNC_STATE.schema.empty_table()
    )
    audited = lake.read(
        SYNC_AUDIT.layer,
        SYNC_AUDIT.table,
        columns=["crm_account_id", "status", "inputs_fingerprint", "attempted_at"],
    )
    destination = crm.destination(lake.root)
    result = sync(
        updates,
        state,
        destination,
        decided=last_decisions(audited),
        threshold=config.threshold,
        now=datetime.now(UTC),
        sync_id=str(uuid.uuid4()),
        actor=f"dagster:{context.run_id}",
        dry_run=config.dry_run,
        batch_size=config.batch_size,
    )
    context.log.info(f"sync to {destination.name}: {result.counts}")
    tables = ((SYNC_AUDIT, result.audit), (REVIEW_QUEUE, result.review), (SYNC_STATE, result.state))
    gates = [(c, t, validate(c.name, c.suite(), t)) for c, t in tables]
    for c, _, gate in gates:  # a dry run checks what it would write, and writes the audit
        yield gate.check_result(table_key(c), SUITE_CHECK, lake.data_docs)
    _raise_on_failure(gates)
    meta = {
        "counts": MetadataValue.json(result.counts),
        "destination": destination.name,
        "dry_run": config.dry_run,
    }
    audit = _write(context, lake, SYNC_AUDIT, result.audit, "append")
    yield MaterializeResult(
        asset_key=table_key(SYNC_AUDIT),
        metadata={**published_metadata(SYNC_AUDIT, audit, result.audit.schema), **meta},
    )
    if config.dry_run:
        return
    review = _write(context, lake, REVIEW_QUEUE, result.review, "overwrite")
    yield MaterializeResult(
        asset_key=table_key(REVIEW_QUEUE),
        metadata={
            **published_metadata(REVIEW_QUEUE, review, result.review.schema, result.review),
            "pending": result.review.num_rows,
        },
    )
    published = _write(context, lake, SYNC_STATE, result.state, "overwrite")
    yield MaterializeResult(
        asset_key=table_key(SYNC_STATE),
        metadata={
            **published_metadata(SYNC_STATE, published, result.state.schema, result.state),
            "records": result.state.num_rows,
        },
    )


def _raise_on_failure(gates: list[tuple[TableContract, pa.Table, GateResult]]) -> None:
    """The first failed suite's report (naming any other that failed): nothing is written."""
    failed = [(c, t, g) for c, t, g in gates if not g.passed]
    if failed:
        c, table, gate = failed[0]
        others = ", ".join(o.name for o, _, _ in failed[1:])
        raise gate.failure(
            f"{c.name} ({table.num_rows:,} rows)", f"also failed: {others}" if others else ""
        )


def _write(
    context: AssetExecutionContext,
    lake: LakeResource,
    contract: TableContract,
    table: pa.Table,
    mode: Literal["append", "overwrite"],
) -> Published:
    """One of the sync's tables, committed with its description and the run that wrote it."""
    return lake.publish(
        contract.layer,
        contract.table,
        table,
        mode=mode,
        description=contract.description,
        commit_metadata={"dagster_run_id": context.run_id},
    )


assets = [crm_account_updates, sync_to_crm]
