"""A third-party vendor-risk feed: a monthly CSV of company assessments.

Other column names and units than the default stack's risk signals: the control gap is a
percentage (0-100), the CRM reference is the HubSpot company id (when the provider matched it).
"""

from __future__ import annotations

import pandas as pd

from sample_company.context import Ctx
from sample_company.ids import random_ids
from sample_company.vendors.base import csv_render, first_seen, id_map, rows_of, versions

FIELDS = (
    "assessment_id",
    "assessed_at",
    "company_legal_name",
    "company_website",
    "hubspot_company_id",
    "control_gap_pct",
    "open_vendor_flags",
)
FREE_TEXT = "company_legal_name"  # where an unquoted ", Inc" breaks a row (planted bad rows)
RENDER = csv_render(FIELDS)


def assessments(ctx: Ctx, companies_of: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    src = ctx.versions["risk/signals"]
    keys = first_seen(src["_rid"])
    ids = id_map(keys, random_ids(ctx.rng("vendor.risk.assessments"), len(keys), "RA-", 10))
    rows = []
    for r in rows_of(src):
        crm = r.crm_account_id if isinstance(r.crm_account_id, str) else None
        rec = {
            "assessment_id": ids[r.record_id],
            "assessed_at": r.observed_at,
            "company_legal_name": r.company_name,
            "company_website": r.company_domain,
            "hubspot_company_id": None if crm is None else companies_of[crm],
            "control_gap_pct": f"{float(r.compliance_gap_score) * 100:.1f}",
            "open_vendor_flags": int(r.vendor_risk_flags),
        }
        rows.append({"_rid": ids[r.record_id], "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows), ids
