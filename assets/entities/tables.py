"""The entity tables, built in DuckDB from the catalog's role views and the identity map.

Each builder returns one Arrow table in its contract's column order. The SQL reads role views
(`role_company`, `role_person`, `role_subscription`, ...: every version of every object playing
the role, its fields under the role's names; assets/roles.py), `role_requester` (ticket
requesters as person records) and the registered `links` (record_key -> canonical_id); `prepare`
sets them up once per connection. No builder names a source object: an account's primary record
comes from `anchor: true` company objects, workspaces from `workspace: true` ones, product
logins are the person objects that map `product_role`, and where several objects give one
value, catalog order is trust order.

Survivorship (which record wins which field) is written in the SQL below and recorded per row.
Validity intervals come from the record versions: a value holds from the version that
introduced it until the next version that changed it.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from assets.entities.names import first_name_sql, last_name_sql
from assets.entities.records import create_macros, register_raw, text_list
from assets.entities.rules import Rules
from assets.roles import (
    mapped,
    register_roles,
    requester_id,
    requester_source,
    requesters_view_sql,
    role_tables,
    view,
)
from checks.contract import TableContract
from checks.roles import status_values
from checks.sources import Catalog, load_catalog
from checks.vocabulary import load_vocabulary
from resources.lake import LakeResource
from resources.sql import in_list, literal


def prepare(
    con: duckdb.DuckDBPyConnection,
    lake: LakeResource,
    rules: Rules,
    links: pa.Table,
    catalog: Catalog | None = None,
) -> set[str]:
    catalog = catalog or load_catalog()
    create_macros(con, rules.normalize)
    tables = role_tables(catalog)
    present = register_raw(con, lake, tables)
    con.register("links", links)
    for o in catalog.objects:  # a source not landed yet reads as empty
        t = f"raw/{o.table}"
        if t in tables and t not in present:
            con.register(view(t), o.contract.schema.empty_table())
    register_roles(con, catalog)
    con.execute(f"CREATE OR REPLACE TEMP VIEW role_requester AS {requesters_view_sql(catalog)}")
    return present


def _cast(con: duckdb.DuckDBPyConnection, sql: str, contract: TableContract) -> pa.Table:
    return con.sql(sql).to_arrow_table().select(contract.schema.names).cast(contract.schema)


def _latest(role_view: str, etype: str = "account", where: str = "true") -> str:
    """Latest version per record of a role view, and the canonical id of its record."""
    return f"""(SELECT v.*, l.canonical_id FROM (
            SELECT * FROM {role_view} WHERE {where}
            QUALIFY row_number() OVER (PARTITION BY _source, id ORDER BY _ts DESC,
                _extract_date DESC, _line DESC) = 1) v
        LEFT JOIN links l ON l.entity_type = {literal(etype)} AND l.record_key = v._key)"""


def _mapping(catalog: Catalog, role: str, field: str) -> str:
    """SQL: the rows of objects of `role` that map `field` (an unmapped field is no value)."""
    sources = [o.source for o in catalog.by_role(role) if mapped(o, field)]
    return f"_source IN {in_list(sources)}" if sources else "false"


def _source_ids(entity_type: str) -> str:
    """Per canonical id: its source ids grouped by system/object (JSON) and how many."""
    return f"""
        SELECT canonical_id,
            to_json(map_from_entries(list({{'k': system || '/' || object, 'v': ids}} ORDER BY system, object))) AS source_ids,
            sum(n) AS source_count
        FROM (SELECT canonical_id, system, object, list(source_id ORDER BY source_id) AS ids,
                count(*) AS n
              FROM links WHERE entity_type = {literal(entity_type)} AND canonical_id IS NOT NULL
              GROUP BY ALL)
        GROUP BY ALL
    """


def account(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    catalog = load_catalog()
    trusted = [
        o.source
        for o in catalog.by_role("company")
        if "country" in (o.role.options.get("trusted_for") or ())
    ]
    sql = f"""
    WITH rec AS ({_latest("role_company")}), pri AS (
        -- the primary record of an account, from the system of record (`anchor`): a customer
        -- over another stage, one with a domain, then the oldest
        SELECT *, row_number() OVER (PARTITION BY canonical_id ORDER BY _pos,
            CASE WHEN lifecycle_stage IS NULL THEN 2
                 WHEN lower(lifecycle_stage) LIKE '%customer%' THEN 0 ELSE 1 END,
            (domain IS NULL), created_at, id) AS pick
        FROM rec WHERE _anchor AND canonical_id IS NOT NULL
    ), country AS (
        -- the country by trust: objects `trusted_for` it first, then catalog order; within an
        -- object its latest record; from the system of record, the primary record's
        SELECT canonical_id, arg_min(country, (NOT list_contains({text_list(trusted)}, _source),
                _pos)) AS country,
            arg_min(_system, (NOT list_contains({text_list(trusted)}, _source), _pos)) AS system
        FROM (SELECT canonical_id, _source, _pos, _system,
                arg_max(norm_country(country), _ts) AS country
              FROM rec WHERE canonical_id IS NOT NULL AND NOT _anchor GROUP BY ALL
              UNION ALL
              SELECT canonical_id, _source, _pos, _system, norm_country(country)
              FROM pri WHERE pick = 1)
        WHERE country IS NOT NULL GROUP BY ALL
    ), seen AS (
        SELECT l.canonical_id, min(c.created_at) AS first_seen_at
        FROM role_company c JOIN links l ON l.entity_type = 'account' AND l.record_key = c._key
        WHERE l.canonical_id IS NOT NULL GROUP BY ALL
    ), src AS ({_source_ids("account")})
    SELECT c.canonical_id AS account_id, c.name, norm_domain(c.domain) AS domain,
        lower(c.industry) AS industry, c.employees, k.country,
        c.lifecycle_stage AS crm_type, c.owner AS owner_name, c.id AS primary_crm_account_id,
        s.source_ids, s.source_count, f.first_seen_at, c.updated_at,
        to_json({{'name': c._system, 'domain': c._system, 'industry': c._system,
                  'employees': c._system, 'country': coalesce(k.system, c._system),
                  'owner_name': c._system}})::VARCHAR AS survivorship
    FROM pri c LEFT JOIN country k USING (canonical_id) LEFT JOIN src s USING (canonical_id)
    LEFT JOIN seen f USING (canonical_id)
    WHERE c.pick = 1
    ORDER BY account_id
    """
    return _cast(con, sql, contract)


# The person's own fields (entities/person), each read from these role fields; a name read
# from a full name is split as the identity records split it (assets/entities/names.py).
PERSON_FIELDS = ("first_name", "last_name", "email")


def _person_candidates(catalog: Catalog) -> dict[str, list[tuple[str, str, str]]]:
    """Per person field: (role view, record source, SQL over the view) in trust order: person
    objects `trusted_for` the field first, then catalog order (a mapped first or last name
    before one read from a full name), then ticket requesters. Only what the catalog maps."""
    ranked: dict[str, list[tuple[tuple, tuple[str, str, str]]]] = {f: [] for f in PERSON_FIELDS}
    for pos, o in enumerate(catalog.objects):
        if o.role is None or o.role.role not in ("person", "ticket"):
            continue
        trusted = o.role.options.get("trusted_for") or ()
        if o.role.role == "person":
            first, last, full = (mapped(o, f) for f in ("first_name", "last_name", "full_name"))
            exprs = {
                "first_name": [("first_name", first), ("full_name", full)],
                "last_name": [("last_name", last), ("full_name", full)],
                "email": [("email", mapped(o, "email"))],
            }
            where, source = "role_person", o.source
        else:
            if not requester_id(o):
                continue
            full = mapped(o, "requester_name")
            exprs = {
                "first_name": [("full_name", full)],
                "last_name": [("full_name", full)],
                "email": [("email", mapped(o, "requester_email"))],
            }
            where, source = "role_requester", requester_source(o)
        for field, options in exprs.items():
            for k, (column, present) in enumerate(options):
                if not present:
                    continue
                if field == "first_name":
                    sql = first_name_sql(None if column == "full_name" else column, "full_name")
                elif field == "last_name":
                    sql = last_name_sql(None if column == "full_name" else column, "full_name")
                else:
                    sql = column
                key = (o.role.role != "person", field not in trusted, pos, k)
                ranked[field].append((key, (where, source, sql)))
    return {f: [c for _, c in sorted(v, key=lambda x: x[0])] for f, v in ranked.items()}


def person(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    """One row per canonical person, every field by survivorship over the catalog's mapping
    (`_person_candidates`): the most trusted source that gives a value, its latest record;
    for the email, a personal address over a mail provider's within one source."""
    catalog = load_catalog()
    candidates = _person_candidates(catalog)
    people = _latest("role_person", "person")
    requesters = """(SELECT t.*, l.canonical_id FROM role_requester t
        JOIN links l ON l.entity_type = 'person' AND l.record_key = t._key)"""
    views = {"role_person": people, "role_requester": requesters}
    parts = []
    for field, cands in candidates.items():
        for rank, (where, source, sql) in enumerate(cands):
            value = f"nullif(trim(({sql})::VARCHAR), '')"
            order = (
                f"2 * {rank}"
                if field != "email"
                else (
                    f"2 * {rank} + CASE WHEN is_generic_domain(email_domain({value})) THEN 1 ELSE 0 END"
                )
            )
            parts.append(
                f"""SELECT canonical_id, {literal(field)} AS field, {value} AS value,
                    {order} AS rank, _system AS system, _ts AS seen
                FROM {views[where]} WHERE _source = {literal(source)}
                    AND canonical_id IS NOT NULL"""
                if where == "role_person"
                else f"""SELECT canonical_id, {literal(field)}, {value}, {order}, _system, _ts
                FROM {views[where]} WHERE _key LIKE {literal(source + ":%")}"""
            )
    values = " UNION ALL ".join(parts) or (
        "SELECT NULL::VARCHAR AS canonical_id, NULL::VARCHAR AS field, NULL::VARCHAR AS value, "
        "0 AS rank, NULL::VARCHAR AS system, NULL::TIMESTAMPTZ AS seen WHERE false"
    )
    emails = [
        f"SELECT canonical_id, lower(trim(({sql})::VARCHAR)) AS e FROM {views[where]}"
        + (f" WHERE _source = {literal(source)}" if where == "role_person" else "")
        for where, source, sql in candidates["email"]
    ]
    mails = (
        f"""SELECT canonical_id, to_json(list(DISTINCT h ORDER BY h)) AS email_hashes FROM (
            SELECT canonical_id, pii_hash(e) AS h FROM ({" UNION ".join(emails)})
            WHERE canonical_id IS NOT NULL) WHERE h IS NOT NULL GROUP BY ALL"""
        if emails
        else "SELECT NULL::VARCHAR AS canonical_id, NULL::VARCHAR AS email_hashes WHERE false"
    )
    sql = f"""
    WITH won AS (
        SELECT canonical_id, field, first(value ORDER BY rank, seen DESC NULLS LAST) AS value,
            first(system ORDER BY rank, seen DESC NULLS LAST) AS system
        FROM ({values}) WHERE value IS NOT NULL GROUP BY ALL
    ), best AS (
        SELECT canonical_id,
            max(value) FILTER (WHERE field = 'first_name') AS first_name,
            max(value) FILTER (WHERE field = 'last_name') AS last_name,
            max(value) FILTER (WHERE field = 'email') AS email,
            to_json(map(list(CASE field WHEN 'email' THEN 'email_hash' ELSE field END
                    ORDER BY field), list(system ORDER BY field)))::VARCHAR AS survivorship
        FROM won GROUP BY ALL
    ), seen AS (
        SELECT canonical_id, min(created) AS first_seen, max(ts) AS last_seen FROM (
            SELECT l.canonical_id, p.created_at AS created, p.updated_at AS ts
            FROM role_person p JOIN links l ON l.entity_type = 'person' AND l.record_key = p._key
            UNION ALL
            SELECT canonical_id, _created, _ts FROM {requesters})
        WHERE canonical_id IS NOT NULL GROUP BY ALL
    ), src AS ({_source_ids("person")}), mails AS ({mails})
    SELECT s.canonical_id AS person_id, b.first_name, b.last_name,
        nullif(trim(concat_ws(' ', b.first_name, b.last_name)), '') AS full_name,
        pii_hash(lower(trim(b.email))) AS email_hash, m.email_hashes, s.source_ids,
        s.source_count, f.first_seen AS first_seen_at, f.last_seen AS last_seen_at,
        coalesce(b.survivorship, '{{}}') AS survivorship
    FROM src s LEFT JOIN best b USING (canonical_id) LEFT JOIN mails m USING (canonical_id)
    LEFT JOIN seen f USING (canonical_id)
    ORDER BY person_id
    """
    return _cast(con, sql, contract)


def workspace(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    ws = _latest("role_company", where="_workspace")
    people = _latest("role_person", "person")
    active = in_list(status_values("person.active", load_vocabulary()))
    sql = f"""
    SELECT w.id AS workspace_id, w.canonical_id AS account_id, w.name,
        w.same_as_id AS billing_customer_id, w.created_at, w.deleted_at,
        w.deleted_at IS NOT NULL AS is_deleted, coalesce(u.active_users, 0) AS active_users,
        w.updated_at
    FROM {ws} w LEFT JOIN (
        SELECT company_key, count(*) FILTER (WHERE status IN {active}) AS active_users
        FROM {people} WHERE company_key IS NOT NULL GROUP BY ALL) u ON u.company_key = w._key
    ORDER BY workspace_id
    """
    return _cast(con, sql, contract)


def subscription(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    """Plans are the vocabulary's tiers (a plan it does not know: kept as it arrived, no rank)."""
    vocab = load_vocabulary()
    canceled = in_list(status_values("subscription.canceled", vocab))
    sql = f"""
    WITH v AS (
        SELECT s.* REPLACE ({vocab.plan_sql("s.plan")} AS plan),
            {vocab.plan_rank_sql("s.plan")} AS tier_rank
        FROM role_subscription s
    ), agg AS (
        SELECT _source, id, arg_min(plan, updated_at) AS first_plan_tier,
            min(updated_at) FILTER (WHERE tier_rank > first_rank) AS upgraded_at
        FROM (SELECT *, first_value(tier_rank) OVER (PARTITION BY _source, id ORDER BY updated_at)
                AS first_rank FROM v) GROUP BY ALL
    ), cur AS (
        SELECT * FROM v QUALIFY row_number() OVER (PARTITION BY _source, id
            ORDER BY _ts DESC, _extract_date DESC, _line DESC) = 1
    )
    SELECT c.id AS subscription_id, l.canonical_id AS account_id,
        c.company_id AS billing_customer_id, c.plan AS plan_tier, c.mrr, c.seats, c.status,
        c.started_at,
        CASE WHEN c.status IN {canceled} THEN coalesce(c.canceled_at, c.updated_at) END AS ended_at,
        a.first_plan_tier, a.upgraded_at, c.current_period_end, c.updated_at
    FROM cur c JOIN agg a USING (_source, id)
    LEFT JOIN links l ON l.entity_type = 'account' AND l.record_key = c.company_key
    ORDER BY subscription_id
    """
    return _cast(con, sql, contract)


def _intervals(versions: str, key: str) -> str:
    """SCD2 from versions(<key cols>, value, ts, source_record): runs of one value -> intervals."""
    return f"""
    SELECT {key}, value, ts AS valid_from,
        lead(ts) OVER (PARTITION BY {key} ORDER BY ts) AS valid_to, source_record
    FROM (
        SELECT *, lag(value) OVER (PARTITION BY {key} ORDER BY ts) AS prev
        FROM (SELECT DISTINCT ON ({key}, ts) * FROM ({versions}) ORDER BY {key}, ts)
    ) WHERE prev IS DISTINCT FROM value
    """


def _first(ts: str, created: str, part: str) -> str:
    """A version's time; the first version's is the record's creation when that is earlier."""
    return (
        f"CASE WHEN row_number() OVER (PARTITION BY {part} ORDER BY {ts}) = 1 "
        f"THEN least({created}, {ts}) ELSE {ts} END"
    )


def relationship(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    roles = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in rules.product_roles.items())

    def product_role(expr: str) -> str:
        """A product role as a relationship role (the rules' `product_roles`; none: end user)."""
        return f"CASE {expr} {roles} ELSE 'end_user' END" if roles else "'end_user'"

    deactivated = in_list(status_values("person.deactivated", load_vocabulary()))
    part = "u._source, u.id"
    # A product login holds its product role (a deactivated one: former user) ...
    user_versions = f"""
        SELECT lp.canonical_id AS person_id, la.canonical_id AS account_id,
            u._key AS source_record,
            CASE WHEN u.status IN {deactivated} THEN 'former_user'
                 ELSE {product_role("u.product_role")} END AS value,
            {_first("u.updated_at", "u.created_at", part)} AS ts
        FROM role_person u
        JOIN links lp ON lp.entity_type = 'person' AND lp.record_key = u._key
        JOIN links la ON la.entity_type = 'account' AND la.record_key = u.company_key
        WHERE u._login AND la.canonical_id IS NOT NULL"""
    # ... another person record is a contact of its company (or a former user by title) ...
    contact_versions = f"""
        SELECT lp.canonical_id, la.canonical_id, u._key,
            CASE WHEN list_contains({text_list(rules.former_titles)}, lower(trim(u.title)))
                 THEN 'former_user' ELSE 'contact' END,
            {_first("u.updated_at", "u.created_at", part)}
        FROM role_person u
        JOIN links lp ON lp.entity_type = 'person' AND lp.record_key = u._key
        JOIN links la ON la.entity_type = 'account' AND la.record_key = u.company_key
        WHERE NOT u._login AND la.canonical_id IS NOT NULL"""
    # ... and a company record's email names its billing owner when it is one person's address.
    billing_versions = f"""
        SELECT p.person_id, la.canonical_id, b._key, 'billing_owner',
            {_first("b.updated_at", "b.created_at", "b._source, b.id")}
        FROM role_company b
        JOIN links la ON la.entity_type = 'account' AND la.record_key = b._key
        JOIN (SELECT email_key(email) AS k, min(l.canonical_id) AS person_id
              FROM role_person r
              JOIN links l ON l.entity_type = 'person' AND l.record_key = r._key
              WHERE email IS NOT NULL AND NOT is_role_mailbox(email) GROUP BY ALL
              HAVING count(DISTINCT l.canonical_id) = 1) p ON p.k = email_key(b.email)
        WHERE la.canonical_id IS NOT NULL AND b.email IS NOT NULL"""
    # ... and a membership record says it outright (a seat, a team membership).
    member_versions = f"""
        SELECT lp.canonical_id, la.canonical_id, m._key,
            CASE WHEN m.status IN {deactivated} THEN 'former_user'
                 ELSE {product_role("m.role")} END,
            coalesce(m.at, m._ts)
        FROM role_membership m
        JOIN links lp ON lp.entity_type = 'person' AND lp.record_key = m.person_key
        JOIN links la ON la.entity_type = 'account' AND la.record_key = m.company_key
        WHERE la.canonical_id IS NOT NULL"""
    versions = f"""SELECT person_id, account_id, source_record, value, ts FROM (
        {user_versions} UNION ALL {contact_versions} UNION ALL {billing_versions}
        UNION ALL {member_versions})
        WHERE ts IS NOT NULL"""
    sql = f"""
    SELECT person_id, account_id, value AS role, valid_from, valid_to,
        valid_to IS NULL AS is_current, source_record
    FROM ({_intervals(versions, "person_id, account_id, source_record")})
    ORDER BY person_id, account_id, valid_from, source_record
    """
    return _cast(con, sql, contract)


def attribute_history(
    con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract
) -> pa.Table:
    catalog = load_catalog()
    # Firmographics from the system of record, plan/MRR/status per subscription, titles.
    firms = f"""
        SELECT 'account' AS entity_type, l.canonical_id AS entity_id, a._key AS source_record,
            {_first("a.updated_at", "a.created_at", "a._source, a.id")} AS ts,
            lower(a.industry) AS industry, a.owner AS owner, a.lifecycle_stage AS crm_type,
            a.employees::VARCHAR AS employees
        FROM role_company a JOIN links l ON l.entity_type = 'account'
            AND l.record_key = a._key WHERE a._anchor AND l.canonical_id IS NOT NULL"""
    subs = f"""
        SELECT 'subscription' AS entity_type, s.id AS entity_id, s._key AS source_record,
            {_first("s.updated_at", "s.started_at", "s._source, s.id")} AS ts,
            {load_vocabulary().plan_sql("s.plan")} AS plan_tier, s.mrr::VARCHAR AS mrr, s.status
        FROM role_subscription s"""
    titles = f"""
        SELECT 'person' AS entity_type, l.canonical_id AS entity_id, c._key AS source_record,
            {_first("c.updated_at", "c.created_at", "c._source, c.id")} AS ts, c.title
        FROM role_person c JOIN links l ON l.entity_type = 'person'
            AND l.record_key = c._key WHERE {_mapping(catalog, "person", "title")}"""
    versions = f"""
        SELECT entity_type, entity_id, source_record, ts, attribute, value FROM (
            SELECT * FROM ({firms}) UNPIVOT INCLUDE NULLS (value FOR attribute IN
                (industry, owner, crm_type, employees))
            UNION ALL BY NAME
            SELECT * FROM ({subs}) UNPIVOT INCLUDE NULLS (value FOR attribute IN
                (plan_tier, mrr, status))
            UNION ALL BY NAME
            SELECT * FROM ({titles}) UNPIVOT INCLUDE NULLS (value FOR attribute IN (title))
        ) WHERE ts IS NOT NULL"""
    sql = f"""
    SELECT entity_type, entity_id, attribute, value, valid_from, valid_to,
        valid_to IS NULL AS is_current, source_record
    FROM ({_intervals(versions, "entity_type, entity_id, source_record, attribute")})
    ORDER BY entity_type, entity_id, attribute, valid_from
    """
    return _cast(con, sql, contract)
