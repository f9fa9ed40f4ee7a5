"""What the layers above the raw layer read, derived from the source catalog's roles.

The catalog says which role each object plays and which of its columns (or SQL expressions over
its raw table) fill the role's fields (checks/roles.py). From that alone this module derives:
the identity sources, anchors and references (assets/entities/rules.py), the event sources
(assets/events/mapping.py), the customer 360 survivorship candidates (assets/c360/profiles.py)
and the role views the entity tables are built on (`register_roles`). Nothing above the raw
layer names a source object: a company whose catalog maps other systems onto the same roles
builds the same graph. Catalog order within a role is trust order; an object's
`trusted_for: [field, ...]` option puts it first for those fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb

from checks.contract import SQL_TYPES
from checks.roles import (
    COMPANY_ROLES,
    CREATED_AT,
    PERSON_IDENTITY_FIELDS,
    ROLES,
    UPDATED_AT,
    requester_object,
    status_values,
)
from checks.sources import Catalog, RoleRef, SourceObject
from checks.vocabulary import Vocabulary
from resources.sql import ident, literal


def view(table: str) -> str:
    """The DuckDB view of a `<layer>/<table>` (assets/entities/records.py registers it)."""
    return "v_" + table.replace("/", "__")


def raw_table(obj: SourceObject) -> str:
    return f"raw/{obj.table}"


def mapped(obj: SourceObject, field: str) -> str | None:
    """The SQL of `field` over the object's raw table, or None when the catalog maps none."""
    if obj.role is None:
        return None
    value = obj.role.fields.get(field)
    if value is None or isinstance(value, list | tuple):
        return None
    return str(value)


def many(obj: SourceObject, field: str) -> tuple[str, ...]:
    """The columns of a list field (event properties, signal scores)."""
    value = obj.role.fields.get(field) if obj.role else None
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (str(value),)


def record_id(obj: SourceObject) -> str:
    """The SQL of a record's id: the role's `id` field when mapped, else the object's `id`."""
    return mapped(obj, "id") or obj.id


def option(obj: SourceObject, name: str, default=None):
    return obj.role.options.get(name, default) if obj.role else default


def order_by(obj: SourceObject) -> str:
    """What orders an object's record versions (latest wins): its `updated_at`, else the
    catalog's `timestamps.updated`, else the role's own stamp, else the extract date."""
    stamp = ROLES[obj.role.role].stamp if obj.role else None
    return (
        mapped(obj, UPDATED_AT)
        or obj.updated
        or (mapped(obj, stamp) if stamp else None)
        or "_extract_date"
    )


def created(obj: SourceObject) -> str:
    """When a record began: its `created_at`, else `timestamps.created`, else its extract date
    (the first version's, as versions are read in order)."""
    return mapped(obj, CREATED_AT) or obj.created or "_extract_date"


def field_sql(obj: SourceObject, field: str) -> str | None:
    """A role field's SQL, with the timestamps' defaults."""
    if field == CREATED_AT:
        return created(obj)
    if field == UPDATED_AT:
        return order_by(obj)
    return mapped(obj, field)


def refs(obj: SourceObject, name: str) -> tuple[RoleRef, ...]:
    return tuple(obj.role.refs.get(name, ())) if obj.role else ()


def ref_key_sql(references: Sequence[RoleRef]) -> str:
    """The record key (`<system>/<object>:<id>`) of the first reference that holds a value."""
    if not references:
        return "NULL::VARCHAR"
    keys = [
        f"CASE WHEN nullif(trim(({r.expr})::VARCHAR), '') IS NOT NULL "
        f"THEN {literal(r.to + ':')} || trim(({r.expr})::VARCHAR) END"
        for r in references
    ]
    return keys[0] if len(keys) == 1 else f"coalesce({', '.join(keys)})"


def ref_value_sql(references: Sequence[RoleRef]) -> str:
    """The value of the first reference that holds one (as it arrived, when there is one)."""
    if not references:
        return "NULL::VARCHAR"
    if len(references) == 1:
        return f"({references[0].expr})"
    vals = [f"nullif(trim(({r.expr})::VARCHAR), '')" for r in references]
    return vals[0] if len(vals) == 1 else f"coalesce({', '.join(vals)})"


def is_login(obj: SourceObject) -> bool:
    """A person object is a product login when it maps the person's role in the product."""
    return obj.role is not None and obj.role.role == "person" and bool(mapped(obj, "product_role"))


# -- ticket requesters: person records without an id of their own ------------------------------


def requester_source(obj: SourceObject) -> str:
    return f"{obj.system}/{requester_object(obj.object)}"


def requester_id(obj: SourceObject) -> str | None:
    """A requester's id: the ticket's company reference and the salted hash of the address
    (no clear email leaves the raw layer; `pii_hash` comes from resources/pii.py)."""
    email = mapped(obj, "requester_email")
    if not email:
        return None
    company = refs(obj, "company")
    org = f"({company[0].expr})" if company else "NULL"
    return f"coalesce({org}, '') || '|' || pii_hash(({email}))"


def person_sources(catalog: Catalog) -> list[tuple[str, SourceObject]]:
    """(record source, object) of every person record, trust order: person objects, ticket
    requesters, consent records."""
    out = [(o.source, o) for o in catalog.by_role("person")]
    out += [(requester_source(o), o) for o in catalog.by_role("ticket") if requester_id(o)]
    out += [(o.source, o) for o in catalog.by_role("consent")]
    return out


# -- identity ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentitySources:
    """The identity rules' per-source lists (assets/entities/rules.py `Source`, `Ref`)."""

    accounts: tuple
    anchors: tuple[str, ...]
    references: tuple
    persons: tuple


def identity_sources(catalog: Catalog) -> IdentitySources:
    from assets.entities.rules import Ref, Source

    def r(refs_: Iterable[RoleRef]) -> tuple[Ref, ...]:
        return tuple(Ref(x.expr, x.to) for x in refs_)

    def fields(obj: SourceObject, names: dict[str, str]) -> dict[str, str]:
        return {k: v for k, f in names.items() if (v := mapped(obj, f))}

    accounts = []
    for o in catalog.objects:
        if o.role is None or o.role.role not in COMPANY_ROLES:
            continue
        if o.role.role == "company":
            f = fields(o, {"name": "name", "website": "domain", "country": "country"})
            f |= fields(o, {"email": "email"})
            links = r(refs(o, "same_as"))
        else:  # a signal names the company it is about
            f = fields(o, {"name": "company_name", "website": "company_domain"})
            links = r(refs(o, "company"))
        accounts.append(
            Source(
                o.source,
                raw_table(o),
                record_id(o),
                order_by(o),
                f,
                links,
                attributes=dict(o.role.attributes),
            )
        )
    anchors = tuple(o.source for o in catalog.by_role("company") if option(o, "anchor"))
    company_sources = {o.source for o in catalog.by_role("company")}
    references = tuple(
        (raw_table(o), Ref(x.expr, x.to))
        for o in catalog.objects
        if o.role is not None and o.role.role not in (*COMPANY_ROLES, "person", "consent")
        for x in refs(o, "company")
        if x.to in company_sources
    )
    persons = []
    name_fields = {f: f for f in PERSON_IDENTITY_FIELDS}
    for source, o in person_sources(catalog):
        role = o.role.role
        if role == "person":
            persons.append(
                Source(
                    source,
                    raw_table(o),
                    record_id(o),
                    order_by(o),
                    fields(o, name_fields),
                    r(refs(o, "same_as")),
                    account=r(refs(o, "company")),
                    attributes=dict(o.role.attributes),
                )
            )
        elif role == "ticket":
            email = mapped(o, "requester_email")
            persons.append(
                Source(
                    source,
                    raw_table(o),
                    requester_id(o),
                    order_by(o),
                    fields(o, {"full_name": "requester_name", "email": "requester_email"}),
                    account=r(refs(o, "company")),
                    where=f"({email}) IS NOT NULL",
                )
            )
        else:  # consent: an address and the person in another system
            persons.append(
                Source(
                    source,
                    raw_table(o),
                    record_id(o),
                    order_by(o),
                    fields(o, {"email": "email"}),
                    r(refs(o, "person")),
                )
            )
    return IdentitySources(tuple(accounts), anchors, references, tuple(persons))


def account_objects(catalog: Catalog) -> set[str]:
    """Record sources that denote a company (identity accounts)."""
    return {o.source for o in catalog.objects if o.role and o.role.role in COMPANY_ROLES}


def person_objects(catalog: Catalog) -> set[str]:
    """Record sources that denote a person (identity persons)."""
    return {s for s, _ in person_sources(catalog)}


def hashed_email_sources(catalog: Catalog) -> set[str]:
    """Record sources whose ids carry the salted hash of an address (ticket requesters)."""
    return {requester_source(o) for o in catalog.by_role("ticket") if requester_id(o)}


# -- events -----------------------------------------------------------------------------------


def event_sources(catalog: Catalog, vocab: Vocabulary) -> tuple:
    """One event source per object whose role emits events (assets/events/mapping.py)."""
    from assets.events.mapping import EventSource, RecordEvent, Ref

    def r(refs_: Iterable[RoleRef]) -> tuple[Ref, ...]:
        return tuple(Ref(x.expr, x.to) for x in refs_)

    def props(o: SourceObject) -> tuple[tuple[str, str], ...]:
        spec = ROLES[o.role.role]
        out = []
        for key, src in spec.properties:
            if src == "id":
                out.append((key, record_id(o)))
            elif src.startswith("ref:"):
                out.append((key, ref_value_sql(refs(o, src[4:]))))
            else:
                out.append((key, field_sql(o, src) or "NULL"))
        keys = {k for k, _ in out}
        for f in spec.lists:  # the role's own properties first: a column named again is skipped
            out += [(c, ident(c)) for c in many(o, f) if c not in keys]
        return tuple(out)

    out = []
    for o in catalog.objects:
        if o.role is None:
            continue
        name, role = o.role.role, ROLES[o.role.role]
        own = (Ref(record_id(o), o.source),)
        account, person = r(refs(o, "company")), ()
        if name == "event_stream":  # named through the vocabulary (mapping.source_sql)
            out.append(
                EventSource(
                    source=o.source,
                    table=raw_table(o),
                    id=record_id(o),
                    account=account,
                    person=r(refs(o, "person")),
                    properties=props(o),
                    at=mapped(o, "at"),
                    name_from=mapped(o, "name"),
                )
            )
            continue
        if name == "company" and not option(o, "workspace"):
            continue
        if name == "person" and not is_login(o):
            continue
        if not role.events:
            continue
        if name in ("company", "signal"):
            account = own
        if name == "person":
            person = own
        if name == "consent":
            account, person = (), own
        if name == "ticket" and (rid := requester_id(o)):
            person = (Ref(rid, requester_source(o)),)
        events = []
        for ev in role.events:
            at = field_sql(o, ev.at)
            if not at:
                continue  # the object does not record that moment
            when = None
            if ev.when:
                col, key = ev.when
                values = status_values(key, vocab)
                expr = field_sql(o, col)
                when = (
                    f"({expr}) IN ({', '.join(literal(v) for v in values)})"
                    if expr and values
                    else "false"
                )
            changed = field_sql(o, ev.changed) if ev.changed else None
            if ev.changed and not changed:
                continue
            events.append(RecordEvent(ev.name, at, when, changed, ev.changed))
        out.append(
            EventSource(
                source=o.source,
                table=raw_table(o),
                id=record_id(o),
                account=account,
                person=person,
                properties=props(o),
                scope=role.scope,
                order_by=order_by(o),
                events=tuple(events),
            )
        )
    return tuple(out)


# -- customer 360 survivorship ----------------------------------------------------------------


def survivorship(
    catalog: Catalog, fields: dict[str, list[dict[str, str]]]
) -> dict[str, list[dict[str, str]]]:
    """Per profile field: its candidates `{source, expr}` in trust order. `fields` (c360.yaml)
    gives each profile field's role fields (`role.field`) and optional SQL around the value
    (`sql`, `{}` standing for it); the objects mapping one are taken in catalog order, those
    `trusted_for` the profile field first."""
    out: dict[str, list[dict[str, str]]] = {}
    for name, entries in fields.items():
        ranked = []
        for pos, o in enumerate(catalog.objects):
            if o.role is None:
                continue
            first = name in (option(o, "trusted_for") or ())
            for k, entry in enumerate(entries):
                role, field = entry["from"].split(".", 1)  # c360.yaml: <role>.<field>
                if o.role.role != role or not (expr := mapped(o, field)):
                    continue
                value = entry.get("sql", "{}").replace("{}", f"({expr})")
                source = requester_source(o) if role == "ticket" else o.source
                ranked.append(((not first, pos, k), {"source": source, "expr": value}))
        out[name] = [c for _, c in sorted(ranked, key=lambda x: x[0])]
    return out


# -- role views -------------------------------------------------------------------------------


def _view_fields(role) -> tuple[str, ...]:
    """A role view's field columns: every field but the id and the list fields."""
    return tuple(f for f in role.fields if f != "id" and f not in role.lists)


def role_view_sql(catalog: Catalog, role_name: str) -> str:
    """`role_<name>`: every version of every object of the role, one row each: `_source`,
    `_system`, `_object`, `_pos` (trust order), `_anchor`, `_workspace`, `_login`, `id`,
    `_key` (its record key), each field (typed; NULL when unmapped), each reference as
    `<ref>_key` (record key of the first that holds a value) and `<ref>_id` (its raw value),
    `_ts` (version order), `_extract_date`, `_line`."""
    role = ROLES[role_name]
    parts = []
    for pos, o in enumerate(catalog.objects):
        if o.role is None or o.role.role != role_name:
            continue
        cols = [
            f"{literal(o.source)} AS _source",
            f"{literal(o.system)} AS _system",
            f"{literal(o.object)} AS _object",
            f"{pos} AS _pos",
            f"{'true' if option(o, 'anchor') else 'false'} AS _anchor",
            f"{'true' if option(o, 'workspace') else 'false'} AS _workspace",
            f"{'true' if is_login(o) else 'false'} AS _login",
            f"({record_id(o)})::VARCHAR AS id",
            f"{literal(o.source + ':')} || ({record_id(o)})::VARCHAR AS _key",
        ]
        for name in _view_fields(role):
            expr = field_sql(o, name) or "NULL"
            cols.append(f"CAST({expr} AS {SQL_TYPES[role.type_of(name)]}) AS {ident(name)}")
        for ref in role.refs:
            cols.append(f"{ref_key_sql(refs(o, ref))} AS {ident(ref + '_key')}")
            cols.append(f"{ref_value_sql(refs(o, ref))} AS {ident(ref + '_id')}")
        cols += [
            f"CAST({order_by(o)} AS TIMESTAMPTZ) AS _ts",
            "_extract_date",
            "_line",
        ]
        parts.append(f"SELECT {', '.join(cols)} FROM {view(raw_table(o))}")
    if not parts:  # no object plays the role: an empty view of the same shape
        cols = ["NULL::VARCHAR AS _source", "NULL::VARCHAR AS _system", "NULL::VARCHAR AS _object"]
        cols += ["0 AS _pos", "false AS _anchor", "false AS _workspace", "false AS _login"]
        cols += ["NULL::VARCHAR AS id", "NULL::VARCHAR AS _key"]
        cols += [f"NULL::{SQL_TYPES[role.type_of(n)]} AS {ident(n)}" for n in _view_fields(role)]
        for ref in role.refs:
            cols += [f"NULL::VARCHAR AS {ident(ref + s)}" for s in ("_key", "_id")]
        cols += ["NULL::TIMESTAMPTZ AS _ts", "NULL::DATE AS _extract_date", "0 AS _line"]
        return f"SELECT {', '.join(cols)} WHERE false"
    return " UNION ALL ".join(parts)


def register_roles(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, roles: Iterable[str] | None = None
) -> None:
    """Create the temp views `role_<name>` over the raw views already registered."""
    for name in roles or ROLES:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {ident('role_' + name)} AS {role_view_sql(catalog, name)}"
        )


def requesters_view_sql(catalog: Catalog) -> str:
    """`role_requester`: every version of every ticket's requester, as a person record: `_key`
    (the identity record key), `_system`, `_pos`, full_name, email, company_key, `_created`,
    `_ts`."""
    parts = []
    for pos, o in enumerate(catalog.by_role("ticket")):
        rid = requester_id(o)
        if not rid:
            continue
        name = mapped(o, "requester_name") or "NULL"
        parts.append(
            f"""SELECT {literal(requester_source(o) + ":")} || ({rid}) AS _key,
                {literal(o.system)} AS _system, {pos} AS _pos,
                ({name})::VARCHAR AS full_name, ({mapped(o, "requester_email")})::VARCHAR AS email,
                {ref_key_sql(refs(o, "company"))} AS company_key,
                CAST({created(o)} AS TIMESTAMPTZ) AS _created,
                CAST({order_by(o)} AS TIMESTAMPTZ) AS _ts
            FROM {view(raw_table(o))} WHERE ({mapped(o, "requester_email")}) IS NOT NULL"""
        )
    if not parts:
        return (
            "SELECT NULL::VARCHAR AS _key, NULL::VARCHAR AS _system, 0 AS _pos, "
            "NULL::VARCHAR AS full_name, NULL::VARCHAR AS email, NULL::VARCHAR AS company_key, "
            "NULL::TIMESTAMPTZ AS _created, NULL::TIMESTAMPTZ AS _ts WHERE false"
        )
    return " UNION ALL ".join(parts)


def role_tables(catalog: Catalog) -> set[str]:
    """Every raw table some role reads."""
    return {raw_table(o) for o in catalog.objects if o.role}


# -- privacy: erasure requests arrive as consent records --------------------------------------


def consent_object(catalog: Catalog) -> SourceObject:
    """The consent object erasure requests land in: the first of the consent role."""
    found = catalog.by_role("consent")
    if not found:
        raise ValueError(
            f"{catalog.path}: no object plays the consent role: erasure requests have nowhere "
            "to land (map your consent export onto it: catalog.yaml `role: {name: consent}`)"
        )
    return found[0]


def subject_column(obj: SourceObject) -> str | None:
    """The column naming the person in another system (`crm:<id>`): the declared column its
    `person` references read."""
    exprs = " ".join(r.expr for r in refs(obj, "person"))
    return next(
        (c.name for c in obj.columns if re.search(rf"\b{re.escape(c.name)}\b", exprs)), None
    )
