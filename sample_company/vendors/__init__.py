"""The vendor stack: the same simulated world, landed in real vendors' export shapes.

`generate(..., stack="vendor")` simulates exactly the world of the default stack (same seed,
same companies, people, subscriptions, events, tickets, consent and risk) and renders it as
HubSpot, Stripe, Segment and Zendesk exports plus a consent-platform and a risk-feed CSV
(`stacks/vendor/catalog.yaml` reads them). Only the rendering lives here; the simulation is
shared. Ground truth is keyed by the vendor ids, planted bad rows have their vendor equivalents.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from sample_company.context import Ctx
from sample_company.extracts import assign_extracts
from sample_company.generate import Summary, _Writer, extract_days, pick_bad_rows
from sample_company.timeutil import iso_date
from sample_company.vendors import consent, hubspot, risk, segment, stripe, zendesk
from sample_company.vendors.base import Render, VendorSpec, jsonl

# Each planted kind of bad row, where it goes in this stack, and the rule it must be
# quarantined under (the vendor catalog's column names).
BAD_ROWS: tuple[tuple[str, str, int, int], ...] = (
    ("segment/tracks", "truncated_json", 3, 2),
    ("stripe/invoices", "non_numeric_amount", 2, 1),
    ("risk/assessments", "extra_column", 2, 1),
    ("hubspot/contacts", "missing_id", 2, 1),
)
RULES = {
    "truncated_json": "invalid_json",
    "non_numeric_amount": "type(amount_due)",
    "extra_column": "field_count",
    "missing_id": "not_null(id)",
}
DRIFT_OBJECT, DRIFT_COLUMN = "stripe/subscriptions", "discount"
TICKET_REQUESTERS = "zendesk/ticket_requesters"  # truth key of people known only from tickets


def _gz(render: Render) -> Render:
    return lambda recs: gzip.compress(render(recs), 6, mtime=0)


TRACKS = VendorSpec("segment", "tracks", "tracks.jsonl.gz", "daily", _gz(jsonl))
SPECS: dict[str, VendorSpec] = {
    s.name: s
    for s in (
        VendorSpec("hubspot", "companies", "companies.json", "weekly", hubspot.RENDER),
        VendorSpec("hubspot", "contacts", "contacts.json", "weekly", hubspot.RENDER),
        VendorSpec("hubspot", "deals", "deals.json", "weekly", hubspot.RENDER),
        VendorSpec("stripe", "customers", "customers.json", "weekly", stripe.render("customers")),
        VendorSpec(
            "stripe",
            "subscriptions",
            "subscriptions.json",
            "weekly",
            stripe.render("subscriptions"),
        ),
        VendorSpec("stripe", "invoices", "invoices.json", "weekly", stripe.render("invoices")),
        VendorSpec("segment", "groups", "groups.jsonl.gz", "daily", _gz(jsonl), True),
        VendorSpec("segment", "identifies", "identifies.jsonl.gz", "daily", _gz(jsonl), True),
        VendorSpec(
            "zendesk",
            "organizations",
            "organizations.json",
            "weekly",
            zendesk.render("organizations"),
        ),
        VendorSpec("zendesk", "users", "users.json", "weekly", zendesk.render("users")),
        VendorSpec("zendesk", "tickets", "tickets.json", "weekly", zendesk.render("tickets")),
        VendorSpec("consent", "receipts", "consent_receipts.csv", "weekly", consent.RENDER),
        VendorSpec("risk", "assessments", "risk_assessments.csv", "monthly", risk.RENDER),
        TRACKS,
    )
}
CSV_LAYOUT = {
    "consent/receipts": (consent.FIELDS, consent.DELIMITER),
    "risk/assessments": (risk.FIELDS, ","),
}
FREE_TEXT = {"risk/assessments": risk.FREE_TEXT}


@dataclass
class Rendered:
    objects: dict[str, pd.DataFrame]  # vendor object -> record versions (`rec` as exported)
    truth: list[tuple[str, str, str, str, str]]  # (system, object, vendor id, account, person)


def render(ctx: Ctx) -> Rendered:
    """Every vendor object's record versions, and the truth keyed by vendor ids."""
    owners = hubspot.owner_ids(ctx)
    companies, company_ids = hubspot.companies(ctx, owners)
    contacts, contact_ids = hubspot.contacts(ctx, company_ids)
    orgs, org_ids = zendesk.organizations(ctx, company_ids)
    users, user_ids = zendesk.users(ctx, org_ids)
    receipts, receipt_ids = consent.receipts(ctx, contact_ids)
    assessments, assessment_ids = risk.assessments(ctx, company_ids)
    objects = {
        "hubspot/companies": companies,
        "hubspot/contacts": contacts,
        "hubspot/deals": hubspot.deals(ctx, company_ids, owners),
        "stripe/customers": stripe.customers(ctx, company_ids),
        "stripe/subscriptions": stripe.subscriptions(ctx),
        "stripe/invoices": stripe.invoices(ctx),
        "segment/groups": segment.groups(ctx),
        "segment/identifies": segment.identifies(ctx),
        "zendesk/organizations": orgs,
        "zendesk/users": users,
        "zendesk/tickets": zendesk.tickets(ctx, org_ids, user_ids),
        "consent/receipts": receipts,
        "risk/assessments": assessments,
    }
    same = lambda x: x  # noqa: E731
    keyed: dict[str, tuple[str, Callable[[str], str]]] = {
        "crm/accounts": ("hubspot/companies", company_ids.__getitem__),
        "crm/contacts": ("hubspot/contacts", contact_ids.__getitem__),
        "billing/customers": ("stripe/customers", same),
        "product/workspaces": ("segment/groups", same),
        "product/users": ("segment/identifies", same),
        "support/organizations": ("zendesk/organizations", org_ids.__getitem__),
        "consent/records": ("consent/receipts", receipt_ids.__getitem__),
        "risk/signals": ("risk/assessments", assessment_ids.__getitem__),
        "support/ticket_requesters": (TICKET_REQUESTERS, lambda k: _requester(k, org_ids)),
    }
    truth: list[tuple[str, str, str, str, str]] = []
    people_of: dict[str, tuple[str, str]] = {}
    for system, obj, sid, acc, person in ctx.truth:
        target, to_id = keyed[f"{system}/{obj}"]
        truth.append((*target.split("/"), str(to_id(sid)), acc, person))
        if obj == "ticket_requesters":
            people_of.setdefault(sid.partition("|")[2], (acc, person))
    for addr, uid in user_ids.items():
        truth.append(("zendesk", "users", str(uid), *people_of[addr]))
    return Rendered(objects, truth)


def _requester(key: str, orgs: dict[str, str]) -> str:
    """`<org>|<address>`: the default org id becomes the Zendesk organization's id."""
    org, _, addr = key.partition("|")
    return f"{orgs[org] if org else ''}|{addr}"


def planted(spec: VendorSpec, day: int, line: int, kind: str) -> dict:
    """One manifest entry: where a bad row was planted, what it is, the rule it breaks."""
    rel = f"{spec.source}/{spec.object}/{iso_date(day)}/{spec.filename}"
    return {"file": rel, "line": line, "kind": kind, "rule": RULES[kind]}


def write_objects(
    ctx: Ctx,
    rendered: Rendered,
    writer: _Writer,
    start: int,
    end: int,
    drift: int,
    bad: list[dict],
    summary: Summary,
) -> None:
    """Every entity object's extract files (the tracks are written with the usage events)."""
    for name, versions in rendered.objects.items():
        spec = SPECS[name]
        days = extract_days(spec, start, end)
        parts = assign_extracts(versions, days)
        summary.rows_simulated[name] = sum(len(p) for p in parts.values())
        marks = pick_bad_rows(ctx, name, parts, BAD_ROWS)
        for d in days if not spec.only_changed_days else sorted(parts):
            d = int(d)
            part = parts.get(d)
            recs = [] if part is None else [dict(r) for r in part["rec"]]
            if name == DRIFT_OBJECT and d < drift:
                recs = stripe.drop_discount(recs)
            for idx, kind in marks.get(d, []):
                # a CSV row's line counts the header; a JSON record's is its position
                bad.append(planted(spec, d, idx + (2 if name in CSV_LAYOUT else 1), kind))
            if not writer.wanted(d):
                continue
            todo = marks.get(d, [])
            data = lambda s=spec, r=recs, m=todo: _render(s, r, m)  # noqa: E731
            writer.write(spec, d, data, len(recs))


def _render(spec: VendorSpec, recs: list[dict], marks: list[tuple[int, str]]) -> bytes:
    broken: dict[int, str] = {}
    for idx, kind in marks:
        r = dict(recs[idx])
        if kind == "missing_id":
            r.pop("id", None)
        elif kind == "non_numeric_amount":
            r["amount_due"] = "N/A"
        elif kind == "extra_column":
            fields, delim = CSV_LAYOUT[spec.name]
            vals = ["" if r.get(f) is None else str(r[f]).replace(delim, " ") for f in fields]
            free = fields.index(FREE_TEXT[spec.name])
            vals[free] = f"{vals[free]}{delim} Inc"  # unquoted: one field too many
            broken[idx] = delim.join(vals)
        recs[idx] = r
    data = spec.render(recs)
    if broken:
        lines = data.decode().split("\n")
        for idx, text in broken.items():
            lines[idx + 1] = text
        data = "\n".join(lines).encode()
    return data
