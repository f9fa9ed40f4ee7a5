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

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumnDep,
    TableColumnLineage,
    asset,
    multi_asset,
)
from pydantic import Field

from assets.concurrency import writer_pool
from assets.metadata import OWNER, definition_metadata
from assets.publish import gate_and_publish, suite_check
from assets.reverse_etl.confidence import STALE_AFTER_DAYS, evidence_table, profile_versions
from assets.reverse_etl.sync import (
    COLUMN_SOURCES,
    STATE_SCHEMA,
    last_decisions,
    sync,
    updates_sql,
)
from checks.reverse_etl import CRM_ACCOUNT_UPDATES
from resources.crm import CrmResource
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.mlflow import MlflowResource

GROUP = "reverse_etl"
UPDATES_KEY = AssetKey([CRM_ACCOUNT_UPDATES.layer, CRM_ACCOUNT_UPDATES.table])
AUDIT_KEY = AssetKey(["reverse_etl", "sync_audit"])
REVIEW_KEY = AssetKey(["reverse_etl", "review_queue"])
STATE_KEY = AssetKey(["reverse_etl", "sync_state"])
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


@asset(
    key=UPDATES_KEY,
    pool=writer_pool(UPDATES_KEY),
    description=CRM_ACCOUNT_UPDATES.description,
    group_name=GROUP,
    deps=[AssetKey(list(t)) for t in INPUTS.values()],
    kinds={"delta", "duckdb", "great_expectations"},
    owners=[OWNER],
    tags={"layer": GROUP, "pii": "false"},
    metadata=definition_metadata(CRM_ACCOUNT_UPDATES),
    check_specs=[suite_check(CRM_ACCOUNT_UPDATES)],
)
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


@multi_asset(
    name="sync_to_crm",
    pool=SYNC_POOL,
    group_name=GROUP,
    outs={
        "sync_audit": AssetOut(
            key=AUDIT_KEY,
            description="Append-only: one row per record per sync attempt (status, payload, "
            "inputs fingerprint, model versions, destination, actor, error, time).",
            kinds={"delta"},
            owners=[OWNER],
            tags={"layer": GROUP, "pii": "false"},
        ),
        "review_queue": AssetOut(
            key=REVIEW_KEY,
            description="Actions whose confidence is below the threshold, waiting for a person.",
            kinds={"delta"},
            owners=[OWNER],
            tags={"layer": GROUP, "pii": "false"},
            is_required=False,  # a dry run writes only the audit
        ),
        "sync_state": AssetOut(
            key=STATE_KEY,
            description="Fingerprint of what the CRM holds per record after the last successful "
            "sync: what changed is what differs from it.",
            kinds={"delta"},
            owners=[OWNER],
            tags={"layer": GROUP, "pii": "false"},
            is_required=False,
        ),
    },
    deps=[UPDATES_KEY],
    can_subset=False,
)
def sync_to_crm(
    context: AssetExecutionContext, config: SyncConfig, lake: LakeResource, crm: CrmResource
) -> Iterator[MaterializeResult]:
    """Send what changed (consented, confident, champion-scored) to the CRM; audit every
    decision once (a record held back again for the same reason and inputs is not re-audited).

    Reading the state and the audit, sending, and writing them back hold the sync's lock: a
    second sync let through beside this one would read the same state, send and audit every
    record again, and could create the state and queue tables together (doubling their rows)."""
    with lake.exclusive(SYNC_POOL):
        yield from _sync(context, config, lake, crm)


def _sync(
    context: AssetExecutionContext, config: SyncConfig, lake: LakeResource, crm: CrmResource
) -> Iterator[MaterializeResult]:
    updates = lake.read(CRM_ACCOUNT_UPDATES.layer, CRM_ACCOUNT_UPDATES.table)
    state = (
        lake.read("reverse_etl", "sync_state")
        if lake.exists("reverse_etl", "sync_state")
        else STATE_SCHEMA.empty_table()
    )
    audited = lake.read(
        "reverse_etl",
        "sync_audit",
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
    meta = {
        "counts": MetadataValue.json(result.counts),
        "destination": destination.name,
        "dry_run": config.dry_run,
    }
    audit = lake.publish("reverse_etl", "sync_audit", result.audit, mode="append")
    yield MaterializeResult(
        asset_key=AUDIT_KEY,
        metadata={**meta, "rows_written": result.audit.num_rows, "delta_version": audit.version},
    )
    if config.dry_run:
        return
    review = lake.publish("reverse_etl", "review_queue", result.review, mode="overwrite")
    yield MaterializeResult(
        asset_key=REVIEW_KEY,
        metadata={"pending": result.review.num_rows, "delta_version": review.version},
    )
    published = lake.publish("reverse_etl", "sync_state", result.state, mode="overwrite")
    yield MaterializeResult(
        asset_key=STATE_KEY,
        metadata={"records": result.state.num_rows, "delta_version": published.version},
    )


assets = [crm_account_updates, sync_to_crm]
