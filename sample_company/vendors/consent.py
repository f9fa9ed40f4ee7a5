"""Consent receipts as a consent-management platform exports them (OneTrust-like).

A semicolon-separated CSV of receipts: one row per purpose decision, the data subject's email,
which system knows the subject and by what id (`hubspot` contact, `product` login, or `web`
visitor), the purpose by its display name, `ACTIVE` / `WITHDRAWN`, where it was collected.
"""

from __future__ import annotations

import pandas as pd

from sample_company.context import Ctx
from sample_company.vendors.base import csv_render, first_seen, id_map, rows_of, uuids, versions

FIELDS = (
    "receipt_id",
    "consent_date",
    "data_subject_email",
    "subject_system",
    "subject_id",
    "purpose",
    "purpose_status",
    "collection_point",
)
DELIMITER = ";"
PURPOSE = {
    "product_analytics": "Product Analytics",
    "crm_sync": "CRM Sync",
    "sales_outreach": "Sales Outreach",
    "email_marketing": "Email Marketing",
}
STATUS = {"granted": "ACTIVE", "revoked": "WITHDRAWN"}
COLLECTION_POINT = {
    "product": "App Signup",
    "crm": "HubSpot",
    "web_form": "Website Form",
    "support": "Support Request",
}
RENDER = csv_render(FIELDS, DELIMITER)


def subject(ref: str, contacts: dict[str, str]) -> tuple[str, str]:
    """`crm:<id>` / `product:<id>` / `web:<visitor>` as (system, the id that system uses)."""
    kind, _, rid = ref.partition(":")
    if kind == "crm":
        return "hubspot", contacts[rid]
    return ("product", rid) if kind == "product" else ("web", rid)


def receipts(ctx: Ctx, contacts: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    src = ctx.versions["consent/records"]
    keys = first_seen(src["_rid"])
    ids = id_map(keys, uuids(ctx.rng("vendor.consent.receipts"), len(keys)))
    rows = []
    for r in rows_of(src):
        system, sid = subject(r.subject_ref, contacts)
        rec = {
            "receipt_id": ids[r.record_id],
            "consent_date": r.recorded_at,
            "data_subject_email": r.email,
            "subject_system": system,
            "subject_id": sid,
            "purpose": PURPOSE[r.scope],
            "purpose_status": STATUS[r.status],
            "collection_point": COLLECTION_POINT[r.channel],
        }
        rows.append({"_rid": ids[r.record_id], "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows), ids
