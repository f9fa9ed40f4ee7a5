"""Reverse-ETL contracts: what the CRM receives per account, and the sync's own records."""

from __future__ import annotations

from checks.contract import Column, TableContract
from checks.entities import unique
from checks.ml import RISK_BANDS

ACTIONS = ("retention_call", "expansion_conversation", "monitor")
SYNC_STATUSES = ("sent", "failed", "skipped_consent", "queued_review", "dry_run")

CRM_ACCOUNT_UPDATES = TableContract(
    layer="reverse_etl",
    table="crm_account_updates",
    description=(
        "The fields the CRM receives per account, from the customer 360 and the champion "
        "models' latest scores (never a shadow model's). Grain: one row per CRM account; key: "
        "crm_account_id (the CRM's own id: the sync upserts by it). consent_crm_sync: at least "
        "one of the account's people granted CRM sync and none revoked it; false is never sent. "
        "action_confidence below the sync threshold sends the row to the review queue."
    ),
    columns=(
        Column("crm_account_id", required=True),
        Column("account_id", required=True),
        Column("churn_risk", "float", min=0, max=1),
        Column("churn_risk_band", accepted=RISK_BANDS),
        Column("expansion_propensity", "float", min=0, max=1),
        Column("expansion_band", accepted=RISK_BANDS),
        Column("lifecycle_stage"),
        Column("health_score", "int", "100 x (1 - churn risk).", min=0, max=100),
        Column("next_best_action", required=True, accepted=ACTIONS),
        Column("top_reasons", description="Top churn reasons (JSON list)."),
        Column("churn_model_version"),
        Column("expansion_model_version"),
        Column("consent_crm_sync", "bool", required=True),
        Column("action_confidence", "float", required=True, min=0, max=1),
    ),
    extra_expectations=(unique("crm_account_id"),),
)

ERASURE_STATUSES = ("erased", "not_found")

ERASURE_AUDIT = TableContract(
    layer="reverse_etl",
    table="erasure_audit",
    description=(
        "Append-only: one row per erasure request carried out. Grain: one request; key: "
        "request_id (the consent record that asked). Counts and table names only, never an "
        "erased value: rows deleted (the person's own records) and redacted (account facts "
        "that named the person) per table, landing files rewritten, tables whose history was "
        "purged, what each destination answered, and whether a rescan of the lake found "
        "nothing left (verified)."
    ),
    columns=(
        Column("request_id", required=True),
        Column("requested_at", "timestamp"),
        Column("erased_at", "timestamp", required=True),
        Column("batch_id", required=True, description="Requests erased together share it."),
        Column("actor", required=True),
        Column("status", required=True, accepted=ERASURE_STATUSES),
        Column("persons", "int", required=True, min=0, description="Canonical persons found."),
        Column("source_records", "int", required=True, min=0),
        Column("identifiers", "int", required=True, min=0),
        Column("rows_deleted", "int", required=True, min=0, description="For the batch."),
        Column("rows_redacted", "int", required=True, min=0, description="For the batch."),
        Column("tables", required=True, description="JSON: table -> deleted/redacted rows."),
        Column("files_rewritten", "int", required=True, min=0),
        Column("histories_purged", "int", required=True, min=0),
        Column("destinations", required=True, description="JSON: destination -> outcome."),
        Column("verified", "bool", required=True),
    ),
    extra_expectations=(unique("request_id"),),
)
