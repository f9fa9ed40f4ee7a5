"""The roles a source object can play for the layers above the raw layer, declared once.

A role says what an object means (a company record, a subscription, an event stream, ...):
which fields the layers above read (each field typed, some required), which references to other
objects it may carry, which options it takes, and which platform events its records emit. The
catalog maps an object's columns onto one role (`role:` in catalog.yaml); the loader validates
that mapping against this table, and identity, events, customer 360, the entity tables and the
privacy layer derive everything they read from it (assets/roles.py), so no layer above the raw
layer names a source object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from checks.contract import ColumnType

if TYPE_CHECKING:
    from checks.vocabulary import Vocabulary

# The timestamps every role may map; unmapped, they default to the object's `timestamps`.
CREATED_AT, UPDATED_AT = "created_at", "updated_at"


@dataclass(frozen=True)
class RoleField:
    name: str
    type: ColumnType = "string"
    required: bool = False
    many: bool = False  # a list of columns (event properties, signal scores)
    description: str = ""


@dataclass(frozen=True)
class RefSpec:
    """A reference a role may carry: an expression holding another object's id."""

    name: str
    to: tuple[str, ...]  # roles the referenced object may play
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class RecordEvent:
    """A platform event read off a record of the role (assets/events/mapping.py).

    `at`: the role field stamping it; `when`: (field, status class) — the event exists while the
    field's value is one of the class's values (the vocabulary's, see `status_values`);
    `changed`: the event fires at each version where this field changed.
    """

    name: str
    at: str
    when: tuple[str, str] | None = None
    changed: str | None = None


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    fields: tuple[RoleField, ...]
    refs: tuple[RefSpec, ...] = ()
    options: tuple[str, ...] = ()
    events: tuple[RecordEvent, ...] = ()
    scope: str = "account"  # whom its events concern first: account or person
    # Event properties: (key, source) with source a role field, `id` (the record's id) or
    # `ref:<name>` (the raw value of a reference). A `many` field adds its columns by name.
    properties: tuple[tuple[str, str], ...] = ()

    def field(self, name: str) -> RoleField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"role {self.name} has no field {name!r}")

    def ref(self, name: str) -> RefSpec:
        for r in self.refs:
            if r.name == name:
                return r
        raise KeyError(f"role {self.name} has no reference {name!r}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def required_refs(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.refs if r.required)

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.events)


def _f(name: str, type: ColumnType = "string", required: bool = False, **kw) -> RoleField:
    return RoleField(name, type, required, **kw)


def _ts(name: str, required: bool = False) -> RoleField:
    return RoleField(name, "timestamp", required)


# Roles whose records are a company (identity accounts) or a person (identity persons).
COMPANY_ROLES = ("company", "signal")
PERSON_ROLES = ("person", "consent")

ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "company",
            "A company as one system knows it: CRM account, billing customer, workspace, "
            "helpdesk organization.",
            (
                _f("name"),
                _f("domain"),
                _f("country"),
                _f("industry"),
                _f("employees", "int"),
                _f("lifecycle_stage"),
                _f("owner"),
                _f("marketing_source"),
                _f("email"),
                _ts(CREATED_AT),
                _ts(UPDATED_AT),
                _ts("deleted_at"),
            ),
            refs=(
                RefSpec(
                    "same_as",
                    ("company",),
                    description="Another company object's record that is the same company.",
                ),
            ),
            options=("anchor", "workspace", "trusted_for"),
            # Only `workspace: true` objects emit these (assets/roles.py).
            events=(
                RecordEvent("workspace_created", CREATED_AT),
                RecordEvent("workspace_deleted", "deleted_at"),
            ),
            properties=(("workspace_id", "id"),),
        ),
        Role(
            "person",
            "A person as one system knows them: CRM contact, product login, helpdesk user.",
            (
                _f("first_name"),
                _f("last_name"),
                _f("full_name"),
                _f("email"),
                _f("phone"),
                _f("title"),
                _f("product_role"),
                _f("status"),
                _f("invited_by"),
                _f("marketing_source"),
                _ts(CREATED_AT),
                _ts(UPDATED_AT),
            ),
            refs=(
                RefSpec("company", ("company",), description="The company record they belong to."),
                RefSpec("same_as", ("person",), description="Another person object's record."),
            ),
            options=("trusted_for",),
            # Only product logins (objects mapping `product_role`) emit it (assets/roles.py).
            events=(RecordEvent("user_signed_up", CREATED_AT),),
            properties=(
                ("workspace_id", "ref:company"),
                ("role", "product_role"),
                ("invited_by", "invited_by"),
            ),
        ),
        Role(
            "membership",
            "A person's membership of a company over time (a seat, a team membership).",
            (_f("role"), _f("status"), _ts("at")),
            refs=(
                RefSpec("person", ("person",), required=True),
                RefSpec("company", ("company",), required=True),
            ),
        ),
        Role(
            "subscription",
            "What a company pays for: plan, status and MRR per record version.",
            (
                _f("plan", required=True),
                _f("status", required=True),
                _f("mrr", "float", required=True),
                _f("seats", "int"),
                _ts("started_at"),
                _ts("current_period_end"),
                _ts("canceled_at"),
                _ts(UPDATED_AT),
            ),
            refs=(RefSpec("company", ("company",), required=True),),
            events=(
                RecordEvent("subscription_started", "started_at"),
                RecordEvent("subscription_canceled", "canceled_at"),
                RecordEvent("plan_changed", UPDATED_AT, changed="plan"),
            ),
            properties=(
                ("subscription_id", "id"),
                ("plan", "plan"),
                ("status", "status"),
                ("mrr", "mrr"),
                ("seats", "seats"),
            ),
        ),
        Role(
            "invoice",
            "An amount billed to a company, and whether it was paid.",
            (
                _f("amount", "float", required=True),
                _f("currency"),
                _f("status", required=True),
                _ts("issued_at", required=True),
                _ts("paid_at"),
            ),
            refs=(
                RefSpec("company", ("company",), required=True),
                RefSpec("subscription", ("subscription",)),
            ),
            events=(
                RecordEvent("invoice_issued", "issued_at"),
                RecordEvent("invoice_paid", "paid_at", when=("status", "invoice.paid")),
                RecordEvent(
                    "invoice_payment_failed", "issued_at", when=("status", "invoice.failed")
                ),
            ),
            properties=(
                ("subscription_id", "ref:subscription"),
                ("amount", "amount"),
                ("currency", "currency"),
                ("status", "status"),
            ),
        ),
        Role(
            "deal",
            "A sales opportunity: new business or expansion, by stage.",
            (
                _f("name"),
                _f("stage", required=True),
                _f("amount", "float"),
                _f("close_date", "date"),
                _f("kind"),
                _f("owner"),
                _ts(CREATED_AT),
                _ts(UPDATED_AT),
            ),
            refs=(RefSpec("company", ("company",), required=True),),
            events=(
                RecordEvent("opportunity_created", CREATED_AT),
                RecordEvent("opportunity_won", "close_date", when=("stage", "deal.won")),
                RecordEvent("opportunity_lost", "close_date", when=("stage", "deal.lost")),
            ),
            properties=(("stage", "stage"), ("kind", "kind"), ("amount", "amount")),
        ),
        Role(
            "event_stream",
            "Things people did in the product, one row per event that never changes.",
            (
                _f("name", required=True),
                _ts("at", required=True),
                _f("session"),
                _f("properties", many=True),
            ),
            refs=(
                RefSpec("company", ("company",)),
                RefSpec("person", ("person",)),
            ),
            properties=(("workspace_id", "ref:company"), ("session_id", "session")),
        ),
        Role(
            "ticket",
            "A support ticket, opened and later solved; its requester is a person record.",
            (
                _f("requester_email"),
                _f("requester_name"),
                _f("priority", required=True),
                _f("topic"),
                _f("status", required=True),
                _ts(CREATED_AT),
                _ts("solved_at"),
                _f("resolution_hours", "float"),
                _ts(UPDATED_AT),
            ),
            refs=(RefSpec("company", ("company",)),),
            events=(
                RecordEvent("ticket_opened", CREATED_AT),
                RecordEvent("ticket_solved", "solved_at"),
            ),
            properties=(
                ("priority", "priority"),
                ("topic", "topic"),
                ("status", "status"),
                ("resolution_hours", "resolution_hours"),
            ),
        ),
        Role(
            "consent",
            "A person's grant or revocation of one consent scope.",
            (
                _f("email"),
                _f("scope", required=True),
                _f("status", required=True),
                _f("channel"),
                _ts("recorded_at", required=True),
            ),
            refs=(RefSpec("person", ("person",), description="The person in another system."),),
            events=(
                RecordEvent("consent_granted", "recorded_at", when=("status", "consent.granted")),
                RecordEvent("consent_revoked", "recorded_at", when=("status", "consent.revoked")),
            ),
            scope="person",
            properties=(("scope", "scope"), ("channel", "channel"), ("status", "status")),
        ),
        Role(
            "signal",
            "A third-party assessment of a company (risk, intent) with numeric scores.",
            (
                _f("company_name"),
                _f("company_domain"),
                _ts("at", required=True),
                _f("scores", "float", many=True),
            ),
            refs=(RefSpec("company", ("company",)),),
            events=(RecordEvent("risk_assessed", "at"),),
        ),
    )
}

# Status values the platform itself defines (the spec of the consent and person roles); the
# others are the company's words, read from the vocabulary (`status_values`).
PLATFORM_STATUSES: dict[str, tuple[str, ...]] = {
    "consent.granted": ("granted",),
    "consent.revoked": ("revoked",),
    "person.active": ("active",),
    "person.deactivated": ("deactivated",),
}


def status_values(key: str, vocab: Vocabulary) -> tuple[str, ...]:
    """The values of a status class (`<role>.<meaning>`): a record event exists while its
    field holds one of them (invoice paid, deal won, subscription canceled, ...)."""
    if key in PLATFORM_STATUSES:
        return PLATFORM_STATUSES[key]
    role_name, meaning = key.split(".", 1)
    by_role = {
        "invoice": vocab.invoice_statuses,
        "deal": vocab.deal_stages,
        "subscription": vocab.subscription_statuses,
    }
    return tuple(by_role[role_name].get(meaning, ()))


# Every platform event a record role can emit (stream events are named by the vocabulary).
RECORD_EVENTS: tuple[str, ...] = tuple(e.name for r in ROLES.values() for e in r.events)


def requester_object(obj: str) -> str:
    """The pseudo-object of a ticket object's requesters (`tickets` -> `ticket_requesters`):
    a requester has no id of its own, so identity keys it by company reference and email."""
    return (obj[:-1] if obj.endswith("s") else obj) + "_requesters"


def role(name: str) -> Role:
    if name not in ROLES:
        raise KeyError(f"unknown role {name!r} (known: {', '.join(ROLES)})")
    return ROLES[name]
