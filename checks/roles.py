"""Roles: what a source object means to the layers above raw, declared once as data.

A catalog object (stacks/<stack>/catalog.yaml) names its role and maps the role's fields onto its
columns; the loader (checks/sources.py) validates the mapping against this table, and the layers
above (identity, events, the 360, entities, privacy) derive everything they read from the roles
(assets/roles.py) instead of restating them. Every role also has an `id` field (the object's `id`
column unless mapped) and the timestamps `created_at`/`updated_at` default to the object's
declared timestamps.

Per role: its fields (required, optional, list fields, each one's type), its references to other
objects, its options, the platform events its records emit, and the event properties they carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from checks.contract import ColumnType

if TYPE_CHECKING:
    from checks.vocabulary import Vocabulary

# The timestamps every role may map; unmapped, they default to the object's `timestamps`.
CREATED_AT, UPDATED_AT = "created_at", "updated_at"


@dataclass(frozen=True)
class RecordEvent:
    """A platform event read off a record of the role (assets/events/mapping.py).

    `at`: the role field stamping it; `when`: (field, status class): the event exists while the
    field holds one of the class's values (`status_values`); `changed`: the event fires at each
    version where this field changed.
    """

    name: str
    at: str
    when: tuple[str, str] | None = None
    changed: str | None = None


@dataclass(frozen=True)
class Role:
    """One role's shape: which fields a mapping must and may name, its refs and options."""

    required: tuple[str, ...] = ()  # fields a mapping must name
    optional: tuple[str, ...] = ()  # fields a mapping may name
    lists: tuple[str, ...] = ()  # fields (among the above) that take a list of columns
    refs: tuple[str, ...] = ()  # ref fields: references to another object's `id`
    required_refs: tuple[str, ...] = ()  # refs a mapping must give
    # ref field -> role the referenced object must have; "same" = this object's own role.
    ref_roles: tuple[tuple[str, str], ...] = ()
    options: tuple[str, ...] = ()  # options (boolean unless listed in list_options)
    # options that take a list of profile field names (`trusted_for: [country]`)
    list_options: tuple[str, ...] = ()
    types: dict[str, ColumnType] = field(default_factory=dict)  # non-text fields
    events: tuple[RecordEvent, ...] = ()  # platform events its records emit
    scope: str = "account"  # whom its events concern first: account or person
    # The field that stamps a record when it maps no `updated_at` and the object declares no
    # `timestamps.updated` (an invoice is issued, a signal observed): orders its versions.
    stamp: str | None = None
    # Event properties: (key, source) with source a role field, `id` (the record's id) or
    # `ref:<name>` (the value of a reference); a list field adds its columns by name.
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id", *self.required, *self.optional)

    def ref_role(self, ref: str, own: str) -> str:
        role = dict(self.ref_roles).get(ref, ref)
        return own if role == "same" else role

    def type_of(self, name: str) -> ColumnType:
        """A field's type: declared, else a timestamp for `*_at`, else text."""
        if name in self.types:
            return self.types[name]
        return "timestamp" if name.endswith("_at") else "string"

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.events)


# Roles whose records are a company (identity accounts); person records are person objects,
# ticket requesters and consent records (assets/roles.py `person_sources`).
COMPANY_ROLES = ("company", "signal")

# The role fields a person record carries for identity, one column each, under these names on
# every source (assets/entities/records.py); a field a source does not map is NULL there.
PERSON_IDENTITY_FIELDS = (
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "date_of_birth",
    "postcode",
    "address",
    "city",
    "national_id",
    "gender",
)
# Roles whose mapping may add identity attributes of its own (`role.attributes: {name: SQL}`):
# anything else a company keeps about a person or a company, compared and blocked on by name.
ATTRIBUTE_ROLES = ("person", "company")
# Columns the identity step derives itself: an attribute may not take one of these names.
IDENTITY_COLUMNS = (
    "record_key",
    "system",
    "object",
    "source_id",
    "first_name_raw",
    "last_name_raw",
    "email_key",
    "email_local",
    "email_domain",
    "role_mailbox",
    "account_ref",
    "account_id",
    "link_keys",
    "first_seen_at",
    "last_seen_at",
    "is_anchor",
    "name",
    "name_norm",
    "name_token",
    "domain",
    "domain_stem",
    "website",
    "country",
    "country_raw",
    "unique_id",
    "source_dataset",
    "i",
    "root",
)

ROLES: dict[str, Role] = {
    "company": Role(
        optional=(
            "name",
            "domain",
            "country",
            "industry",
            "employees",
            "lifecycle_stage",
            "owner",
            "marketing_source",
            "email",
            CREATED_AT,
            UPDATED_AT,
            "deleted_at",
        ),
        refs=("same_as",),
        ref_roles=(("same_as", "same"),),
        # anchor: the system of record (founds canonical accounts); workspace: the product
        # surface where usage happens (rows of entities/workspace, workspace_* events);
        # trusted_for: profile fields this object is trusted for above catalog order.
        options=("anchor", "workspace", "trusted_for"),
        list_options=("trusted_for",),
        types={"employees": "int"},
        events=(
            RecordEvent("workspace_created", CREATED_AT),
            RecordEvent("workspace_deleted", "deleted_at"),
        ),
        properties=(("workspace_id", "id"),),
    ),
    "person": Role(
        optional=(
            *PERSON_IDENTITY_FIELDS,  # text; assets/entities/records.py normalizes each by kind
            "title",
            "product_role",  # mapped: the object's records are product logins
            "status",  # active / deactivated
            "invited_by",
            "marketing_source",
            CREATED_AT,
            UPDATED_AT,
        ),
        refs=("company", "same_as"),
        ref_roles=(("same_as", "same"),),
        options=("trusted_for",),
        list_options=("trusted_for",),
        # Only product logins (objects mapping `product_role`) emit it (assets/roles.py).
        events=(RecordEvent("user_signed_up", CREATED_AT),),
        properties=(
            ("workspace_id", "ref:company"),
            ("role", "product_role"),
            ("invited_by", "invited_by"),
        ),
    ),
    "membership": Role(
        optional=("role", "status", "at"),
        refs=("person", "company"),
        required_refs=("person", "company"),
        types={"at": "timestamp"},
    ),
    "subscription": Role(
        required=("plan", "status", "mrr"),
        optional=("seats", "started_at", "current_period_end", "canceled_at", UPDATED_AT),
        refs=("company",),
        required_refs=("company",),
        types={"mrr": "float", "seats": "int", "current_period_end": "timestamp"},
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
    "invoice": Role(
        required=("amount", "status", "issued_at"),
        optional=("currency", "paid_at"),
        refs=("company", "subscription"),
        required_refs=("company",),
        types={"amount": "float"},
        stamp="issued_at",
        events=(
            RecordEvent("invoice_issued", "issued_at"),
            RecordEvent("invoice_paid", "paid_at", when=("status", "invoice.paid")),
            RecordEvent("invoice_payment_failed", "issued_at", when=("status", "invoice.failed")),
        ),
        properties=(
            ("subscription_id", "ref:subscription"),
            ("amount", "amount"),
            ("currency", "currency"),
            ("status", "status"),
        ),
    ),
    "deal": Role(
        required=("stage",),
        optional=(
            "name",
            "amount",
            "close_date",
            "kind",  # new_business / expansion
            "owner",
            CREATED_AT,
            UPDATED_AT,
        ),
        refs=("company",),
        required_refs=("company",),
        types={"amount": "float", "close_date": "date"},
        events=(
            RecordEvent("opportunity_created", CREATED_AT),
            RecordEvent("opportunity_won", "close_date", when=("stage", "deal.won")),
            RecordEvent("opportunity_lost", "close_date", when=("stage", "deal.lost")),
        ),
        properties=(("stage", "stage"), ("kind", "kind"), ("amount", "amount")),
    ),
    "event_stream": Role(
        required=("name", "at"),
        optional=("session", "properties"),
        lists=("properties",),
        refs=("company", "person"),
        types={"at": "timestamp"},
        stamp="at",
        properties=(("workspace_id", "ref:company"), ("session_id", "session")),
    ),
    "ticket": Role(
        required=("priority", "status"),
        optional=(
            "requester_email",
            "requester_name",
            "topic",
            CREATED_AT,
            "solved_at",
            "resolution_hours",
            UPDATED_AT,
        ),
        refs=("company",),
        types={"resolution_hours": "float"},
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
    "consent": Role(
        required=("scope", "status", "recorded_at"),  # status: granted / revoked
        optional=("email", "channel"),
        refs=("person",),
        events=(
            RecordEvent("consent_granted", "recorded_at", when=("status", "consent.granted")),
            RecordEvent("consent_revoked", "recorded_at", when=("status", "consent.revoked")),
        ),
        scope="person",
        stamp="recorded_at",
        properties=(("scope", "scope"), ("channel", "channel"), ("status", "status")),
    ),
    "signal": Role(
        required=("at",),
        # The two scores the feature marts read, by these names on every stack (a feed's own
        # scale is translated in the mapping, e.g. a percentage / 100); `scores` carries any
        # other numeric columns along as event properties under their own names.
        optional=(
            "company_name",
            "company_domain",
            "compliance_gap_score",  # 0..1: share of required controls missing
            "vendor_risk_flags",  # count of open third-party risk flags
            "scores",
        ),
        lists=("scores",),
        refs=("company",),
        types={"at": "timestamp", "compliance_gap_score": "float", "vendor_risk_flags": "int"},
        stamp="at",
        events=(RecordEvent("risk_assessed", "at"),),
        properties=(
            ("compliance_gap_score", "compliance_gap_score"),
            ("vendor_risk_flags", "vendor_risk_flags"),
        ),
    ),
}

# Status values the platform itself defines (the consent and person roles' own words); the
# others are the company's, read from the vocabulary (`status_values`).
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
