"""Zendesk Support: organizations, users and tickets (`GET /api/v2/<resource>.json`).

Ids are integers; an organization lists its `domain_names` and holds the CRM id in
`external_id` only when an agent linked it; requesters are end users (`role: end-user`) created
from their first email, keyed by the address Zendesk stores in lower case; a ticket names its
requester and organization by id, its topic as a tag, priorities are Zendesk's
(low/normal/high/urgent), the sender as the email arrived is under `via.source.from`, and the
solve time comes from the sideloaded `metric_set` (`include=metric_sets`).
"""

from __future__ import annotations

import pandas as pd

from sample_company.context import Ctx
from sample_company.vendors.base import (
    first_seen,
    id_map,
    json_envelope,
    numeric_ids,
    rows_of,
    versions,
)

BASE_URL = "https://example.zendesk.com/api/v2"
PRIORITY = {"low": "low", "medium": "normal", "high": "high", "critical": "urgent"}
TYPE = {"integration": "incident"}  # every other topic arrives as a question
SUBJECT = {
    "compliance": "Question about a compliance control",
    "integration": "Integration is not syncing",
    "billing": "Question about our invoice",
    "onboarding": "Help getting started",
    "feature_request": "Feature request",
}


def render(resource: str):
    return json_envelope(resource, next_page=None, previous_page=None, count="<count>")


def organizations(ctx: Ctx, companies_of: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    src = ctx.versions["support/organizations"]
    keys = first_seen(src["_rid"])
    ids = id_map(
        keys,
        numeric_ids(ctx.rng("vendor.zendesk.organizations"), len(keys), 360 * 10**9, 370 * 10**9),
    )
    rows = []
    for r in rows_of(src):
        zid = ids[r.org_id]
        crm = r.crm_account_id if isinstance(r.crm_account_id, str) else None
        rec = {
            "id": zid,
            "url": f"{BASE_URL}/organizations/{zid}.json",
            "name": r.name,
            "domain_names": [r.domain],
            "external_id": None if crm is None else companies_of[crm],
            "details": None,
            "notes": None,
            "group_id": None,
            "shared_tickets": False,
            "shared_comments": False,
            "tags": [],
            "organization_fields": {},
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }
        rows.append({"_rid": zid, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows), {k: str(v) for k, v in ids.items()}


def _address(email: str) -> str:
    return email.strip().lower()


def users(ctx: Ctx, orgs: dict[str, str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """One end user per address, created at its first ticket; it joins the organization of the
    first ticket that had one (a second version when that comes later)."""
    src = ctx.versions["support/tickets"].sort_values(["_ts", "_rid", "_seq"], kind="stable")
    src = src[src["_seq"] == 0]
    emails = first_seen(src["requester_email"].map(_address))
    ids = id_map(
        emails, numeric_ids(ctx.rng("vendor.zendesk.users"), len(emails), 10**12, 2 * 10**12)
    )
    rows: list[dict] = []
    state: dict[str, dict] = {}
    for r in rows_of(src):
        addr = _address(r.requester_email)
        org = orgs.get(r.org_id) if isinstance(r.org_id, str) else None
        user = state.get(addr)
        if user is None:
            uid = ids[addr]
            user = state[addr] = {
                "id": uid,
                "url": f"{BASE_URL}/users/{uid}.json",
                "name": r.requester_name,
                "email": addr,
                "role": "end-user",
                "organization_id": None if org is None else int(org),
                "active": True,
                "verified": True,
                "locale": "en-US",
                "created_at": r.created_at,
                "updated_at": r.created_at,
            }
            seq = 0
        elif user["organization_id"] is None and org is not None:
            user = state[addr] = {**user, "organization_id": int(org), "updated_at": r.created_at}
            seq = 1
        else:
            continue
        rows.append({"_rid": user["id"], "_ts": int(r._ts) - 1, "_seq": seq, "rec": dict(user)})
    return versions(rows), ids


def tickets(ctx: Ctx, orgs: dict[str, str], user_ids: dict[str, int]) -> pd.DataFrame:
    rows = []
    for r in rows_of(ctx.versions["support/tickets"]):
        zid = int(r.ticket_id[4:]) - 10_000_000
        uid = user_ids[_address(r.requester_email)]
        org = orgs.get(r.org_id) if isinstance(r.org_id, str) else None
        hours = (
            None
            if r.resolution_hours is None or pd.isna(r.resolution_hours)
            else float(r.resolution_hours)
        )
        minutes = None if hours is None else round(hours * 60)
        rec = {
            "id": zid,
            "url": f"{BASE_URL}/tickets/{zid}.json",
            "external_id": None,
            "type": TYPE.get(r.topic, "question"),
            "subject": SUBJECT[r.topic],
            "priority": PRIORITY[r.priority],
            "status": r.status,
            "requester_id": uid,
            "submitter_id": uid,
            "assignee_id": None,
            "organization_id": None if org is None else int(org),
            "tags": [r.topic],
            "via": {
                "channel": "email",
                "source": {
                    "from": {"address": r.requester_email, "name": r.requester_name},
                    "to": {"address": "support@example.zendesk.com", "name": "Support"},
                    "rel": None,
                },
            },
            "metric_set": {
                "solved_at": r.solved_at if isinstance(r.solved_at, str) else None,
                "full_resolution_time_in_minutes": {"calendar": minutes, "business": minutes},
            },
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }
        rows.append({"_rid": zid, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows)
