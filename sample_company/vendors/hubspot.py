"""HubSpot CRM v3: companies, contacts and deals, as `GET /crm/v3/objects/<type>` returns them.

Every property value is a string (numbers too: `"numberofemployees": "120"`, `"amount":
"24000.00"`), timestamps are ISO-8601 with milliseconds, ids are numeric strings, enumerations
use HubSpot's internal values (`lifecyclestage`, `dealstage`, `industry`), the owner is an id,
and a contact or deal names its company through `associations`, not a property.
"""

from __future__ import annotations

import pandas as pd

from sample_company import names as nm
from sample_company.context import Ctx
from sample_company.vendors.base import (
    first_seen,
    id_map,
    iso_millis,
    json_envelope,
    numeric_ids,
    rows_of,
    versions,
)

INDUSTRY = {
    "FinTech": "FINANCIAL_SERVICES",
    "HealthTech": "HOSPITAL_HEALTH_CARE",
    "LegalTech": "LEGAL_SERVICES",
    "PropTech": "REAL_ESTATE",
    "SaaS": "COMPUTER_SOFTWARE",
}
LIFECYCLE = {"Prospect": "opportunity", "Customer": "customer", "Former Customer": "other"}
SOURCE = {
    "Web": "ORGANIC_SEARCH",
    "Referral": "REFERRALS",
    "Partner": "OTHER_CAMPAIGNS",
    "Event": "OFFLINE",
    "Outbound": "DIRECT_TRAFFIC",
    "Webinar": "EMAIL_MARKETING",
    "Product": "DIRECT_TRAFFIC",
}
DEAL_STAGE = {
    "prospecting": "appointmentscheduled",
    "qualification": "qualifiedtobuy",
    "proposal": "presentationscheduled",
    "closed_won": "closedwon",
    "closed_lost": "closedlost",
}
DEAL_TYPE = {"new_business": "newbusiness", "expansion": "existingbusiness"}

RENDER = json_envelope("results")


def owner_ids(ctx: Ctx) -> dict[str, str]:
    """Sales rep -> HubSpot owner id (HubSpot exports the id, never the name)."""
    rng = ctx.rng("vendor.hubspot.owners")
    return id_map(
        nm.SALES_REPS, [str(x) for x in numeric_ids(rng, len(nm.SALES_REPS), 10**7, 10**9)]
    )


def domain_of(website: str | None) -> str | None:
    """HubSpot derives `domain` from the website it was given: no scheme, no www, no path."""
    if not website:
        return None
    d = website.strip().lower().split("://", 1)[-1].split("/", 1)[0]
    return d[4:] if d.startswith("www.") else d


def _record(hid: str, props: dict, created: str, updated: str, assoc: dict | None = None) -> dict:
    rec = {
        "id": hid,
        "properties": {**props, "hs_object_id": hid},
        "createdAt": iso_millis(created),
        "updatedAt": iso_millis(updated),
        "archived": False,
    }
    if assoc is not None:
        rec["associations"] = assoc
    return rec


def _companies_of(kind: str, company_id: str | None) -> dict:
    results = [] if company_id is None else [{"id": company_id, "type": kind}]
    return {"companies": {"results": results}}


def companies(ctx: Ctx, owners: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    src = ctx.versions["crm/accounts"]
    keys = first_seen(src["_rid"])
    ids = id_map(
        keys,
        [
            str(x)
            for x in numeric_ids(
                ctx.rng("vendor.hubspot.companies"), len(keys), 5 * 10**9, 4 * 10**10
            )
        ],
    )
    rows = []
    for r in rows_of(src):
        hid = ids[r.Id]
        employees = r.NumberOfEmployees
        props = {
            "name": r.Name,
            "domain": domain_of(r.Website),
            "website": r.Website,
            "industry": INDUSTRY.get(r.Industry) if isinstance(r.Industry, str) else None,
            "numberofemployees": None
            if employees is None or pd.isna(employees)
            else str(int(employees)),
            "country": r.BillingCountry,
            "hubspot_owner_id": owners.get(r.OwnerName),
            "lifecyclestage": LIFECYCLE[r.Type],
            "hs_analytics_source": SOURCE.get(r.LeadSource),
            "createdate": iso_millis(r.CreatedDate),
            "hs_lastmodifieddate": iso_millis(r.LastModifiedDate),
        }
        rec = _record(hid, props, r.CreatedDate, r.LastModifiedDate)
        rows.append({"_rid": hid, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows), ids


def contacts(ctx: Ctx, companies_of: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    src = ctx.versions["crm/contacts"]
    keys = first_seen(src["_rid"])
    ids = id_map(
        keys,
        [str(x) for x in numeric_ids(ctx.rng("vendor.hubspot.contacts"), len(keys), 10**5, 10**11)],
    )
    rows = []
    for r in rows_of(src):
        hid = ids[r.Id]
        props = {
            "firstname": r.FirstName,
            "lastname": r.LastName,
            "email": r.Email,
            "jobtitle": r.Title,
            "phone": r.Phone,
            "hs_analytics_source": SOURCE.get(r.LeadSource),
            "createdate": iso_millis(r.CreatedDate),
            "lastmodifieddate": iso_millis(r.LastModifiedDate),
        }
        assoc = _companies_of("contact_to_company", companies_of.get(r.AccountId))
        rec = _record(hid, props, r.CreatedDate, r.LastModifiedDate, assoc)
        rows.append({"_rid": hid, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows), ids


def deals(ctx: Ctx, companies_of: dict[str, str], owners: dict[str, str]) -> pd.DataFrame:
    src = ctx.versions["crm/opportunities"]
    keys = first_seen(src["_rid"])
    ids = id_map(
        keys,
        [
            str(x)
            for x in numeric_ids(ctx.rng("vendor.hubspot.deals"), len(keys), 10**9, 4 * 10**10)
        ],
    )
    rows = []
    for r in rows_of(src):
        hid = ids[r.Id]
        props = {
            "dealname": r.Name,
            "dealstage": DEAL_STAGE[r.StageName],
            "pipeline": "default",
            "amount": f"{float(r.Amount):.2f}",
            "closedate": f"{r.CloseDate}T00:00:00.000Z",  # a date: midnight UTC
            "dealtype": DEAL_TYPE[r.Type],
            "hubspot_owner_id": owners.get(r.OwnerName),
            "createdate": iso_millis(r.CreatedDate),
            "hs_lastmodifieddate": iso_millis(r.LastModifiedDate),
        }
        assoc = _companies_of("deal_to_company", companies_of.get(r.AccountId))
        rec = _record(hid, props, r.CreatedDate, r.LastModifiedDate, assoc)
        rows.append({"_rid": hid, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows)
