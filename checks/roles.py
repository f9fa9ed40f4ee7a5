"""Roles: what a source object means to the layers above raw, declared once as data.

A catalog object (stacks/<stack>/catalog.yaml) names its role and maps the role's fields onto its
columns; the loader (checks/sources.py) validates the mapping against this table, and the layers
above (identity, events, the 360, entities, privacy) read their sources from the roles instead of
restating them. Every role also has an `id` field (the object's `id` column unless mapped) and
the timestamps `created_at`/`updated_at` default to the object's declared timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    options: tuple[str, ...] = ()  # boolean options (e.g. `anchor: true`)

    @property
    def fields(self) -> tuple[str, ...]:
        return ("id", *self.required, *self.optional)

    def ref_role(self, ref: str, own: str) -> str:
        role = dict(self.ref_roles).get(ref, ref)
        return own if role == "same" else role


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
            "created_at",
            "updated_at",
            "deleted_at",
        ),
        refs=("same_as",),
        ref_roles=(("same_as", "same"),),
        # anchor: the system of record (founds canonical accounts); workspace: the product
        # surface where usage happens (rows of entities/workspace).
        options=("anchor", "workspace"),
    ),
    "person": Role(
        optional=(
            "first_name",
            "last_name",
            "full_name",
            "email",
            "phone",
            "title",
            "product_role",
            "status",
            "invited_by",
            "marketing_source",
            "created_at",
            "updated_at",
        ),
        refs=("company", "same_as"),
        ref_roles=(("same_as", "same"),),
    ),
    "membership": Role(
        optional=("role", "status", "at"),
        refs=("person", "company"),
        required_refs=("person", "company"),
    ),
    "subscription": Role(
        required=("plan", "status", "mrr"),
        optional=("seats", "started_at", "current_period_end", "canceled_at", "updated_at"),
        refs=("company",),
        required_refs=("company",),
    ),
    "invoice": Role(
        required=("amount", "status", "issued_at"),
        optional=("currency", "paid_at"),
        refs=("company", "subscription"),
        required_refs=("company",),
    ),
    "deal": Role(
        required=("stage",),
        optional=(
            "name",
            "amount",
            "close_date",
            "kind",
            "owner",
            "created_at",
            "updated_at",
        ),
        refs=("company",),
        required_refs=("company",),
    ),
    "event_stream": Role(
        required=("name", "at"),
        optional=("session", "properties"),
        lists=("properties",),
        refs=("company", "person"),
    ),
    "ticket": Role(
        required=("priority", "status"),
        optional=(
            "requester_email",
            "requester_name",
            "topic",
            "created_at",
            "solved_at",
            "resolution_hours",
            "updated_at",
        ),
        refs=("company",),
    ),
    "consent": Role(
        required=("scope", "status", "recorded_at"),
        optional=("email", "channel"),
        refs=("person",),
    ),
    "signal": Role(
        required=("at",),
        optional=("company_name", "company_domain", "scores"),
        lists=("scores",),
        refs=("company",),
    ),
}
