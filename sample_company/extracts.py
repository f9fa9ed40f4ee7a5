"""From record versions to extract files: who lands in which extract, and how files look.

Every source object is first simulated as a table of *record versions* (`_rid`, `_ts` and the
record's fields as of that change). An extract dated D holds, per record, the latest version
changed after the previous extract and on or before D; the first extract is the full history
so far. Files are rendered to bytes here; the generator writes them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from sample_company.timeutil import DAY

Format = Literal["json_array", "jsonl", "csv", "jsonl_gz"]


@dataclass(frozen=True)
class ObjectSpec:
    source: str
    object: str
    filename: str
    format: Format
    cadence: Literal["daily", "weekly", "monthly"]
    fields: tuple[str, ...]
    only_changed_days: bool = False  # daily objects: a file only on days with changes

    @property
    def name(self) -> str:
        return f"{self.source}/{self.object}"


SPECS: dict[str, ObjectSpec] = {
    s.name: s
    for s in (
        ObjectSpec(
            "crm",
            "accounts",
            "accounts.json",
            "json_array",
            "weekly",
            (
                "Id",
                "Name",
                "Website",
                "Industry",
                "NumberOfEmployees",
                "BillingCountry",
                "OwnerName",
                "Type",
                "LeadSource",
                "CreatedDate",
                "LastModifiedDate",
            ),
        ),
        ObjectSpec(
            "crm",
            "contacts",
            "contacts.json",
            "json_array",
            "weekly",
            (
                "Id",
                "AccountId",
                "FirstName",
                "LastName",
                "Email",
                "Title",
                "Phone",
                "LeadSource",
                "CreatedDate",
                "LastModifiedDate",
            ),
        ),
        ObjectSpec(
            "crm",
            "opportunities",
            "opportunities.json",
            "json_array",
            "weekly",
            (
                "Id",
                "AccountId",
                "Name",
                "StageName",
                "Amount",
                "CloseDate",
                "OwnerName",
                "Type",
                "CreatedDate",
                "LastModifiedDate",
            ),
        ),
        ObjectSpec(
            "billing",
            "customers",
            "customers.csv",
            "csv",
            "weekly",
            (
                "customer_id",
                "name",
                "email",
                "crm_account_id",
                "country",
                "created_at",
                "updated_at",
            ),
        ),
        ObjectSpec(
            "billing",
            "subscriptions",
            "subscriptions.csv",
            "csv",
            "weekly",
            (
                "subscription_id",
                "customer_id",
                "plan",
                "status",
                "mrr",
                "seats",
                "started_at",
                "current_period_end",
                "canceled_at",
                "updated_at",
            ),
        ),
        ObjectSpec(
            "billing",
            "invoices",
            "invoices.csv",
            "csv",
            "weekly",
            (
                "invoice_id",
                "customer_id",
                "subscription_id",
                "amount",
                "currency",
                "status",
                "issued_at",
                "paid_at",
            ),
        ),
        ObjectSpec(
            "product",
            "workspaces",
            "workspaces.jsonl",
            "jsonl",
            "daily",
            (
                "workspace_id",
                "workspace_name",
                "billing_customer_id",
                "created_at",
                "updated_at",
                "deleted_at",
            ),
            only_changed_days=True,
        ),
        ObjectSpec(
            "product",
            "users",
            "users.jsonl",
            "jsonl",
            "daily",
            (
                "user_id",
                "workspace_id",
                "email",
                "name",
                "role",
                "status",
                "invited_by",
                "created_at",
                "updated_at",
            ),
            only_changed_days=True,
        ),
        ObjectSpec(
            "product",
            "usage_events",
            "usage_events.jsonl.gz",
            "jsonl_gz",
            "daily",
            (
                "event_id",
                "workspace_id",
                "user_id",
                "event_type",
                "timestamp",
                "session_id",
                "feature_adoption_score",
            ),
        ),
        ObjectSpec(
            "support",
            "organizations",
            "organizations.csv",
            "csv",
            "weekly",
            ("org_id", "name", "domain", "crm_account_id", "created_at", "updated_at"),
        ),
        ObjectSpec(
            "support",
            "tickets",
            "tickets.csv",
            "csv",
            "weekly",
            (
                "ticket_id",
                "org_id",
                "requester_email",
                "requester_name",
                "priority",
                "topic",
                "status",
                "created_at",
                "solved_at",
                "resolution_hours",
                "updated_at",
            ),
        ),
        ObjectSpec(
            "consent",
            "records",
            "consent.json",
            "json_array",
            "weekly",
            ("record_id", "email", "subject_ref", "scope", "status", "channel", "recorded_at"),
        ),
        ObjectSpec(
            "risk",
            "signals",
            "risk_signals.csv",
            "csv",
            "monthly",
            (
                "record_id",
                "crm_account_id",
                "company_domain",
                "company_name",
                "compliance_gap_score",
                "vendor_risk_flags",
                "observed_at",
            ),
        ),
    )
}
DRIFT_OBJECT = "billing/subscriptions"
DRIFT_COLUMN = "discount_pct"


def assign_extracts(versions: pd.DataFrame, extract_days: np.ndarray) -> dict[int, pd.DataFrame]:
    """Extract day -> the latest version per record changed since the previous extract.

    `versions` needs `_rid` (record id), `_ts` (change time, seconds) and `_seq` (a tie-break
    order among versions of one record); changes after the last extract day are not exported.
    """
    if versions.empty:
        return {}
    day = versions["_ts"].to_numpy() // DAY
    k = np.searchsorted(extract_days, day, side="left")
    v = versions.assign(_k=k)
    v = v[v["_k"] < len(extract_days)]
    v = v.sort_values(["_k", "_rid", "_ts", "_seq"], kind="stable")
    v = v.drop_duplicates(["_k", "_rid"], keep="last")
    v = v.sort_values(["_k", "_ts", "_rid"], kind="stable")
    out: dict[int, pd.DataFrame] = {}
    for kk, part in v.groupby("_k", sort=True):
        out[int(extract_days[int(kk)])] = part
    return out


def _clean(value):
    """Python value for JSON/CSV: numpy scalars unwrapped, NaN/None -> None."""
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value


def records(df: pd.DataFrame, fields: tuple[str, ...]) -> list[dict]:
    cols = [df[f].tolist() if f in df.columns else [None] * len(df) for f in fields]
    return [
        {f: _clean(v) for f, v in zip(fields, row, strict=True)} for row in zip(*cols, strict=True)
    ]


def json_array_bytes(recs: list[dict]) -> bytes:
    """A JSON array, one record per line (as many CRM exports are laid out)."""
    if not recs:
        return b"[]\n"
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in recs)
    return ("[\n" + body + "\n]\n").encode()


def jsonl_bytes(recs: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode()


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def csv_bytes(recs: list[dict], fields: tuple[str, ...]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in recs:
        w.writerow([_csv_value(r.get(f)) for f in fields])
    return buf.getvalue().encode()
