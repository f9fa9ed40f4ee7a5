"""The source catalog (checks/sources.py, stacks/<stack>/catalog.yaml): the default stack's
raw contracts are today's, and every mistake in a catalog stops it loading with the file, the
object and the field it is in."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path

import pytest
import yaml

from checks.sources import CatalogError, load_catalog, raw_contracts
from resources import settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "stacks" / "default" / "catalog.yaml"

# Frozen from checks/raw.py before the catalog (commit 077f6ff), minus the accepted lists
# of billing_subscriptions.plan and product_usage_events.event_type (the vocabulary's now).
# table: (system, object, format, cadence, partition_by, subject_key, columns)
# column: (name, type, source, required, accepted, min, max, pii, identifies_person, future)
TODAY = {
    "crm_accounts": (
        "crm",
        "accounts",
        "json_array",
        "weekly",
        (),
        None,
        (
            ("id", "string", "Id", True, None, None, None, False, False, False),
            ("name", "string", "Name", True, None, None, None, False, False, False),
            ("website", "string", "Website", False, None, None, None, False, False, False),
            ("industry", "string", "Industry", False, None, None, None, False, False, False),
            (
                "number_of_employees",
                "int",
                "NumberOfEmployees",
                False,
                None,
                0,
                None,
                False,
                False,
                False,
            ),
            (
                "billing_country",
                "string",
                "BillingCountry",
                False,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
            ("owner_name", "string", "OwnerName", False, None, None, None, True, False, False),
            (
                "type",
                "string",
                "Type",
                False,
                ("Prospect", "Customer", "Former Customer"),
                None,
                None,
                False,
                False,
                False,
            ),
            ("lead_source", "string", "LeadSource", False, None, None, None, False, False, False),
            (
                "created_date",
                "timestamp",
                "CreatedDate",
                True,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "last_modified_date",
                "timestamp",
                "LastModifiedDate",
                True,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
        ),
    ),
    "crm_contacts": (
        "crm",
        "contacts",
        "json_array",
        "weekly",
        (),
        "id",
        (
            ("id", "string", "Id", True, None, None, None, False, True, False),
            ("account_id", "string", "AccountId", False, None, None, None, False, False, False),
            ("first_name", "string", "FirstName", False, None, None, None, True, False, False),
            ("last_name", "string", "LastName", False, None, None, None, True, False, False),
            ("email", "string", "Email", False, None, None, None, True, False, False),
            ("title", "string", "Title", False, None, None, None, False, False, False),
            ("phone", "string", "Phone", False, None, None, None, True, False, False),
            ("lead_source", "string", "LeadSource", False, None, None, None, False, False, False),
            (
                "created_date",
                "timestamp",
                "CreatedDate",
                True,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "last_modified_date",
                "timestamp",
                "LastModifiedDate",
                True,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
        ),
    ),
    "crm_opportunities": (
        "crm",
        "opportunities",
        "json_array",
        "weekly",
        (),
        None,
        (
            ("id", "string", "Id", True, None, None, None, False, False, False),
            ("account_id", "string", "AccountId", True, None, None, None, False, False, False),
            ("name", "string", "Name", False, None, None, None, False, False, False),
            (
                "stage_name",
                "string",
                "StageName",
                True,
                ("prospecting", "qualification", "proposal", "closed_won", "closed_lost"),
                None,
                None,
                False,
                False,
                False,
            ),
            ("amount", "float", "Amount", False, None, 0, None, False, False, False),
            ("close_date", "date", "CloseDate", False, None, None, None, False, False, True),
            ("owner_name", "string", "OwnerName", False, None, None, None, True, False, False),
            (
                "type",
                "string",
                "Type",
                False,
                ("new_business", "expansion"),
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "created_date",
                "timestamp",
                "CreatedDate",
                True,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "last_modified_date",
                "timestamp",
                "LastModifiedDate",
                True,
                None,
                None,
                None,
                False,
                False,
                False,
            ),
        ),
    ),
    "billing_customers": (
        "billing",
        "customers",
        "csv",
        "weekly",
        (),
        None,
        (
            ("customer_id", "string", None, True, None, None, None, False, False, False),
            ("name", "string", None, False, None, None, None, False, False, False),
            ("email", "string", None, False, None, None, None, True, False, False),
            ("crm_account_id", "string", None, False, None, None, None, False, False, False),
            ("country", "string", None, False, None, None, None, False, False, False),
            ("created_at", "timestamp", None, True, None, None, None, False, False, False),
            ("updated_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
    "billing_subscriptions": (
        "billing",
        "subscriptions",
        "csv",
        "weekly",
        (),
        None,
        (
            ("subscription_id", "string", None, True, None, None, None, False, False, False),
            ("customer_id", "string", None, True, None, None, None, False, False, False),
            ("plan", "string", None, True, None, None, None, False, False, False),
            (
                "status",
                "string",
                None,
                True,
                ("trialing", "active", "past_due", "canceled"),
                None,
                None,
                False,
                False,
                False,
            ),
            ("mrr", "float", None, True, None, 0, None, False, False, False),
            ("seats", "int", None, False, None, 0, None, False, False, False),
            ("started_at", "timestamp", None, True, None, None, None, False, False, False),
            ("current_period_end", "timestamp", None, False, None, None, None, False, False, True),
            ("canceled_at", "timestamp", None, False, None, None, None, False, False, False),
            ("updated_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
    "billing_invoices": (
        "billing",
        "invoices",
        "csv",
        "weekly",
        (),
        None,
        (
            ("invoice_id", "string", None, True, None, None, None, False, False, False),
            ("customer_id", "string", None, True, None, None, None, False, False, False),
            ("subscription_id", "string", None, False, None, None, None, False, False, False),
            ("amount", "float", None, True, None, 0, None, False, False, False),
            ("currency", "string", None, True, None, None, None, False, False, False),
            (
                "status",
                "string",
                None,
                True,
                ("paid", "open", "failed", "void"),
                None,
                None,
                False,
                False,
                False,
            ),
            ("issued_at", "timestamp", None, True, None, None, None, False, False, False),
            ("paid_at", "timestamp", None, False, None, None, None, False, False, False),
        ),
    ),
    "product_workspaces": (
        "product",
        "workspaces",
        "jsonl",
        "daily",
        (),
        None,
        (
            ("workspace_id", "string", None, True, None, None, None, False, False, False),
            ("workspace_name", "string", None, False, None, None, None, False, False, False),
            ("billing_customer_id", "string", None, False, None, None, None, False, False, False),
            ("created_at", "timestamp", None, True, None, None, None, False, False, False),
            ("updated_at", "timestamp", None, True, None, None, None, False, False, False),
            ("deleted_at", "timestamp", None, False, None, None, None, False, False, False),
        ),
    ),
    "product_users": (
        "product",
        "users",
        "jsonl",
        "daily",
        (),
        "user_id",
        (
            ("user_id", "string", None, True, None, None, None, False, True, False),
            ("workspace_id", "string", None, True, None, None, None, False, False, False),
            ("email", "string", None, False, None, None, None, True, False, False),
            ("name", "string", None, False, None, None, None, True, False, False),
            (
                "role",
                "string",
                None,
                False,
                ("admin", "member", "billing"),
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "status",
                "string",
                None,
                False,
                ("active", "deactivated"),
                None,
                None,
                False,
                False,
                False,
            ),
            ("invited_by", "string", None, False, None, None, None, False, True, False),
            ("created_at", "timestamp", None, True, None, None, None, False, False, False),
            ("updated_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
    "product_usage_events": (
        "product",
        "usage_events",
        "jsonl",
        "daily",
        ("_extract_date",),
        None,
        (
            ("event_id", "string", None, True, None, None, None, False, False, False),
            ("workspace_id", "string", None, True, None, None, None, False, False, False),
            ("user_id", "string", None, False, None, None, None, False, True, False),
            ("event_type", "string", None, True, None, None, None, False, False, False),
            ("timestamp", "timestamp", None, True, None, None, None, False, False, False),
            ("session_id", "string", None, False, None, None, None, False, False, False),
            ("feature_adoption_score", "float", None, False, None, 0, 1, False, False, False),
        ),
    ),
    "support_organizations": (
        "support",
        "organizations",
        "csv",
        "weekly",
        (),
        None,
        (
            ("org_id", "string", None, True, None, None, None, False, False, False),
            ("name", "string", None, False, None, None, None, False, False, False),
            ("domain", "string", None, False, None, None, None, False, False, False),
            ("crm_account_id", "string", None, False, None, None, None, False, False, False),
            ("created_at", "timestamp", None, True, None, None, None, False, False, False),
            ("updated_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
    "support_tickets": (
        "support",
        "tickets",
        "csv",
        "weekly",
        (),
        None,
        (
            ("ticket_id", "string", None, True, None, None, None, False, False, False),
            ("org_id", "string", None, False, None, None, None, False, False, False),
            ("requester_email", "string", None, False, None, None, None, True, False, False),
            ("requester_name", "string", None, False, None, None, None, True, False, False),
            (
                "priority",
                "string",
                None,
                True,
                ("low", "medium", "high", "critical"),
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "topic",
                "string",
                None,
                False,
                ("compliance", "integration", "billing", "onboarding", "feature_request"),
                None,
                None,
                False,
                False,
                False,
            ),
            (
                "status",
                "string",
                None,
                True,
                ("open", "pending", "solved", "closed"),
                None,
                None,
                False,
                False,
                False,
            ),
            ("created_at", "timestamp", None, True, None, None, None, False, False, False),
            ("solved_at", "timestamp", None, False, None, None, None, False, False, False),
            ("resolution_hours", "float", None, False, None, 0, None, False, False, False),
            ("updated_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
    "consent_records": (
        "consent",
        "records",
        "json_array",
        "weekly",
        (),
        "record_id",
        (
            ("record_id", "string", None, True, None, None, None, False, True, False),
            ("email", "string", None, False, None, None, None, True, False, False),
            ("subject_ref", "string", None, False, None, None, None, False, True, False),
            ("scope", "string", None, True, None, None, None, False, False, False),
            ("status", "string", None, True, None, None, None, False, False, False),
            ("channel", "string", None, False, None, None, None, False, False, False),
            ("recorded_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
    "risk_signals": (
        "risk",
        "signals",
        "csv",
        "monthly",
        (),
        None,
        (
            ("record_id", "string", None, True, None, None, None, False, False, False),
            ("crm_account_id", "string", None, False, None, None, None, False, False, False),
            ("company_domain", "string", None, False, None, None, None, False, False, False),
            ("company_name", "string", None, False, None, None, None, False, False, False),
            ("compliance_gap_score", "float", None, False, None, 0, 1, False, False, False),
            ("vendor_risk_flags", "int", None, False, None, 0, None, False, False, False),
            ("observed_at", "timestamp", None, True, None, None, None, False, False, False),
        ),
    ),
}
DESCRIPTIONS = {
    "crm_accounts": (
        "CRM account records (weekly JSON export), one row per record version as "
        "exported. Grain: one exported record; key: (_file_sha256, _line). Source of "
        "truth for firmographics."
    ),
    "crm_contacts": "CRM contacts (weekly JSON export), one row per exported record version.",
    "crm_opportunities": (
        "CRM opportunities (weekly JSON export): new business and expansion deals by stage."
    ),
    "billing_customers": (
        "Billing customers (weekly CSV): who pays. crm_account_id is filled only for some."
    ),
    "billing_subscriptions": (
        "Billing subscriptions (weekly CSV): plan, status and MRR per record version."
    ),
    "billing_invoices": "Billing invoices (weekly CSV): amounts and payment status.",
    "product_workspaces": (
        "Product workspaces (daily JSONL): the product surface where usage happens."
    ),
    "product_users": "Product users (daily JSONL): logins per workspace, with role and status.",
    "product_usage_events": (
        "Product usage events (daily gzip JSONL). Grain: one event as delivered; late "
        "events land in a later extract with their original timestamp."
    ),
    "support_organizations": (
        "Support organizations (weekly CSV): the helpdesk's companies, keyed by domain."
    ),
    "support_tickets": (
        "Support tickets (weekly CSV), one row per ticket version (opened, then solved)."
    ),
    "consent_records": (
        "Consent records (weekly JSON): grants and revocations per person and scope."
    ),
    "risk_signals": (
        "Third-party risk signals (monthly CSV): compliance gaps and vendor risk flags per company."
    ),
}
COLUMN_DESCRIPTIONS = {
    ("crm_accounts", "id"): "CRM account id.",
    ("crm_contacts", "id"): "CRM contact id.",
    ("crm_opportunities", "close_date"): "Actual or expected close date.",
    ("product_users", "invited_by"): "user_id of the inviting user.",
    ("product_usage_events", "user_id"): "The product user who acted.",
    (
        "consent_records",
        "subject_ref",
    ): "The person in another system: crm:<contact id> or product:<user id>.",
}


def _frozen(c) -> tuple:
    cols = tuple(
        (
            x.name,
            x.type,
            x.source,
            x.required,
            x.accepted,
            x.min,
            x.max,
            x.pii,
            x.identifies_person,
            x.future,
        )
        for x in c.columns
        if not x.name.startswith("_")
    )
    return (c.source, c.object, c.format, c.cadence, tuple(c.partition_by), c.subject_key, cols)


def test_the_default_catalog_declares_todays_raw_tables():
    """Same tables, columns, sources, types, rules, cadences, layout, subject keys and
    descriptions as the raw layer declared in code before the catalog."""
    contracts = raw_contracts(load_catalog(DEFAULT))
    assert [c.table for c in contracts] == list(TODAY)
    for c in contracts:
        assert _frozen(c) == TODAY[c.table], c.table
        assert c.description == DESCRIPTIONS[c.table]
        assert c.personal_record == (c.subject_key is not None)
        assert c.primary_key == ("_source_file", "_line")
        described = {x.name: x.description for x in c.columns if x.description}
        expected = {n: d for (t, n), d in COLUMN_DESCRIPTIONS.items() if t == c.table}
        assert {n: d for n, d in described.items() if not n.startswith("_")} == expected
    # The vocabulary owns plan and event names: no contract lists them.
    by_table = {c.table: {x.name: x for x in c.columns} for c in contracts}
    assert by_table["billing_subscriptions"]["plan"].accepted is None
    assert by_table["product_usage_events"]["event_type"].accepted is None


def test_the_active_catalog_follows_the_settings(monkeypatch, tmp_path):
    monkeypatch.delenv(settings.SOURCE_CATALOG, raising=False)
    monkeypatch.delenv(settings.STACK, raising=False)
    assert settings.catalog_path() == DEFAULT
    assert settings.vocabulary_path() == DEFAULT.parent / "vocabulary.yaml"
    stack = tmp_path / "acme"
    stack.mkdir()
    monkeypatch.setenv(settings.STACK, str(stack))  # a path: a stack folder anywhere
    assert settings.catalog_path() == stack / "catalog.yaml"
    monkeypatch.setenv(settings.STACK, "vendor")  # a name: under stacks/
    assert settings.stack_dir() == ROOT / "stacks" / "vendor"
    own = tmp_path / "mine.yaml"
    monkeypatch.setenv(settings.SOURCE_CATALOG, str(own))  # the file setting wins
    assert settings.catalog_path() == own


def test_roles_of_the_default_catalog():
    """Roles as the layers above read them: catalog order within a role is trust order."""
    catalog = load_catalog(DEFAULT)
    companies = catalog.by_role("company")
    assert [o.source for o in companies] == [
        "crm/accounts",
        "billing/customers",
        "product/workspaces",
        "support/organizations",
    ]
    assert [o.source for o in companies if o.role.options.get("anchor")] == ["crm/accounts"]
    assert [o.source for o in companies if o.role.options.get("workspace")] == [
        "product/workspaces"
    ]
    consent = catalog.object("consent/records").role
    assert [r.to for r in consent.refs["person"]] == ["crm/contacts", "product/users"]
    # Defaults filled in once: the record's id column and its declared timestamps.
    accounts = catalog.object("crm/accounts").role.fields
    assert (accounts["id"], accounts["updated_at"]) == ("id", "last_modified_date")
    assert "updated_at" not in catalog.object("billing/invoices").role.fields  # none declared
    stream = catalog.object("product/usage_events").role
    assert stream.fields["properties"] == ("workspace_id", "session_id", "feature_adoption_score")
    with pytest.raises(CatalogError, match="no object 'crm/leads'"):
        catalog.object("crm/leads")


# -- mistakes ---------------------------------------------------------------------------------


def _entry(doc: dict, source: str) -> dict:
    return next(o for o in doc["objects"] if f"{o['system']}/{o['object']}" == source)


def _column(doc: dict, source: str, name: str) -> dict:
    return next(c for c in _entry(doc, source)["columns"] if c["name"] == name)


def _set(source: str, key: str, value):
    return lambda doc: _entry(doc, source).__setitem__(key, value)


def _col(source: str, name: str, key: str, value):
    return lambda doc: _column(doc, source, name).__setitem__(key, value)


def _role(source: str, **keys):
    return lambda doc: _entry(doc, source)["role"].update(keys)


def _twice(doc: dict) -> None:
    cols = _entry(doc, "crm/accounts")["columns"]
    cols.append(dict(cols[1]))


def _no_description(doc: dict) -> None:
    del _entry(doc, "billing/invoices")["description"]


def _missing_role_field(doc: dict) -> None:
    del _entry(doc, "billing/subscriptions")["role"]["fields"]["mrr"]


def _missing_ref(doc: dict) -> None:
    del _entry(doc, "billing/invoices")["role"]["refs"]["company"]


def _same_table(doc: dict) -> None:
    _entry(doc, "risk/signals")["table"] = "consent_records"


def _same_asset_name(doc: dict) -> None:
    """crm/accounts_x and crm_accounts/x would both be landing/crm_accounts_x."""
    twin = copy.deepcopy(_entry(doc, "crm/accounts"))
    twin.update(system="crm_accounts", object="x", table="other", landing="elsewhere/x")
    del twin["role"]
    accounts = _entry(doc, "crm/accounts")
    accounts.update(object="accounts_x", landing="crm/accounts")
    for o in (twin, accounts):  # renamed objects name the vendor's object they pull
        if "connector" in o:
            o["connector"] = {**o["connector"], "object": "accounts"}
    for o in doc["objects"]:  # references to the renamed object follow it
        for refs in (o.get("role") or {}).get("refs", {}).values():
            for r in refs:
                r["to"] = "crm/accounts_x" if r["to"] == "crm/accounts" else r["to"]
    doc["objects"].append(twin)


def _same_landing(doc: dict) -> None:
    _entry(doc, "risk/signals")["landing"] = "consent/records"


MISTAKES = {
    # name: (mutation, object or None (file-level), field, words in the message)
    "unknown top-level key": (lambda d: d.update(sources=[]), None, "sources", "unknown key"),
    "wrong version": (lambda d: d.update(version=2), None, "version", "must be 1"),
    "unknown object key": (
        _set("crm/accounts", "primary", "id"),
        "crm/accounts",
        "primary",
        "unknown key",
    ),
    "no description": (_no_description, "billing/invoices", "description", "required"),
    "unknown format": (_set("crm/accounts", "format", "xml"), "crm/accounts", "format", "xml"),
    "unknown cadence": (
        _set("crm/accounts", "cadence", "hourly"),
        "crm/accounts",
        "cadence",
        "hourly",
    ),
    "csv dialect on json": (
        _set("crm/accounts", "csv", {"delimiter": ";"}),
        "crm/accounts",
        "csv",
        "only for format csv",
    ),
    "two-character delimiter": (
        _set("billing/customers", "csv", {"delimiter": ";;"}),
        "billing/customers",
        "csv.delimiter",
        "one character",
    ),
    "records_path on csv": (
        _set("billing/customers", "records_path", "results"),
        "billing/customers",
        "records_path",
        "only for format json_array",
    ),
    "unknown column type": (
        _col("crm/accounts", "name", "type", "text"),
        "crm/accounts",
        "columns.name.type",
        "'text'",
    ),
    "unknown column key": (
        _col("crm/accounts", "name", "nullable", True),
        "crm/accounts",
        "columns.name.nullable",
        "unknown key",
    ),
    "column named twice": (_twice, "crm/accounts", "columns.name", "declared twice"),
    "unknown unit": (
        _col("crm/accounts", "created_date", "unit", "unix_nanos"),
        "crm/accounts",
        "columns.created_date.unit",
        "unix_nanos",
    ),
    "unit on a string": (
        _col("crm/accounts", "name", "unit", "unix_seconds"),
        "crm/accounts",
        "columns.name.unit",
        "only for timestamp",
    ),
    "scale on a string": (
        _col("crm/accounts", "name", "scale", 0.01),
        "crm/accounts",
        "columns.name.scale",
        "only for int and float",
    ),
    "bad JSON path": (
        _col("crm/accounts", "name", "source", "props..name"),
        "crm/accounts",
        "columns.name.source",
        "dotted path",
    ),
    "id naming no column": (_set("crm/accounts", "id", "Id"), "crm/accounts", "id", "'Id'"),
    "subject_key naming no column": (
        _set("crm/contacts", "subject_key", "contact_id"),
        "crm/contacts",
        "subject_key",
        "no declared column",
    ),
    "timestamp naming no column": (
        _set("crm/accounts", "timestamps", {"updated": "modified"}),
        "crm/accounts",
        "timestamps.updated",
        "no declared column",
    ),
    "timestamp that is no time": (
        _set("crm/accounts", "timestamps", {"updated": "name"}),
        "crm/accounts",
        "timestamps.updated",
        "not a time",
    ),
    "unknown role": (_role("crm/accounts", name="account"), "crm/accounts", "role.name", "account"),
    "role field unknown to the role": (
        _role("crm/accounts", fields={"revenue": "name"}),
        "crm/accounts",
        "role.fields.revenue",
        "unknown field of role company",
    ),
    "required role field missing": (
        _missing_role_field,
        "billing/subscriptions",
        "role.fields.mrr",
        "required by role subscription",
    ),
    "role field naming no column": (
        _role("crm/accounts", fields={"name": "account_name"}),
        "crm/accounts",
        "role.fields.name",
        "does not bind",
    ),
    "role expression that does not bind": (
        _role(
            "billing/invoices",
            fields={"amount": "amount_due * 1", "status": "status", "issued_at": "issued_at"},
        ),
        "billing/invoices",
        "role.fields.amount",
        "does not bind",
    ),
    "required ref missing": (
        _missing_ref,
        "billing/invoices",
        "role.refs.company",
        "required by role invoice",
    ),
    "ref to no object": (
        _role("billing/customers", refs={"same_as": [{"expr": "crm_account_id", "to": "crm/x"}]}),
        "billing/customers",
        "role.refs.same_as.to",
        "no object",
    ),
    "ref to an object of the wrong role": (
        _role(
            "crm/contacts", refs={"company": [{"expr": "account_id", "to": "crm/opportunities"}]}
        ),
        "crm/contacts",
        "role.refs.company.to",
        "has role deal, not company",
    ),
    "unknown role option": (
        _role("crm/contacts", anchor=True),
        "crm/contacts",
        "role.anchor",
        "unknown key",
    ),
    "two objects, one table": (_same_table, "risk/signals", "table", "consent_records"),
    "a table of the raw layer's own": (
        _set("risk/signals", "table", "quarantine"),
        "risk/signals",
        "table",
        "raw layer's own",
    ),
    "two objects, one landing asset name": (_same_asset_name, "crm_accounts/x", "system", "crm"),
    "two objects, one landing folder": (
        _same_landing,
        "risk/signals",
        "landing",
        "consent/records",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_catalog_mistake_names_its_file_object_and_field(mistake, tmp_path):
    mutate, obj, field, words = MISTAKES[mistake]
    doc = copy.deepcopy(yaml.safe_load(DEFAULT.read_text()))
    mutate(doc)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    where = f"object {obj}: " if obj else ""
    prefix = f"{path}: {where}field {field}: "
    assert str(err.value).startswith(prefix), str(err.value)
    assert words in str(err.value)


def test_the_code_location_does_not_load_with_a_broken_catalog(tmp_path, monkeypatch):
    doc = yaml.safe_load(DEFAULT.read_text())
    _column(doc, "crm/accounts", "name")["type"] = "text"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv(settings.SOURCE_CATALOG, str(path))
    with pytest.raises(CatalogError, match=r"object crm/accounts: field columns\.name\.type"):
        runpy.run_path(str(ROOT / "platform" / "definitions.py"))


def test_an_edited_catalog_is_read_again(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(DEFAULT.read_text())
    assert load_catalog(path).object("crm/accounts").cadence == "weekly"
    doc = yaml.safe_load(DEFAULT.read_text())
    _entry(doc, "crm/accounts")["cadence"] = "daily"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    import os

    os.utime(path, ns=(1, 1))  # another modification time, whatever the clock's resolution
    assert load_catalog(path).object("crm/accounts").cadence == "daily"


def test_the_catalog_is_read_when_the_code_location_is_built_not_at_import(tmp_path):
    """Every module of `assets` imports without a catalog; building the definitions fails
    naming the missing file and the settings that choose it."""
    import os
    import subprocess
    import sys

    missing = tmp_path / "nowhere" / "catalog.yaml"
    script = f"""
import importlib, pkgutil, runpy
import assets
for m in pkgutil.walk_packages(assets.__path__, "assets."):
    if not m.name.endswith("__main__"):  # a command, run only as one
        importlib.import_module(m.name)
print("imported")
try:
    runpy.run_path({str(ROOT / "platform" / "definitions.py")!r})
except Exception as exc:
    print(f"built: {{type(exc).__name__}}: {{exc}}")
"""
    env = {
        **os.environ,
        settings.SOURCE_CATALOG: str(missing),
        "LAKEHOUSE_LAKE_ROOT": str(tmp_path / "lake"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.splitlines()
    assert out[0] == "imported"
    assert out[-1].startswith(f"built: CatalogError: {missing}: field objects: ")
    assert settings.SOURCE_CATALOG in out[-1] and settings.STACK in out[-1]
