"""Privacy contracts: the erasure's own record of what it did (never what it erased)."""

from __future__ import annotations

from checks.contract import Column, TableContract, ts

ERASURE_STATUSES = ("erased", "not_found")

ERASURE_AUDIT = TableContract(
    layer="privacy",
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
        ts("requested_at"),
        ts("erased_at", required=True),
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
    primary_key=("request_id",),
)
