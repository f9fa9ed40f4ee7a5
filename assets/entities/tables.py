"""The entity tables, built in DuckDB from raw record versions and the identity map.

Each builder returns one Arrow table in its contract's column order. The SQL reads raw views
(`v_raw__<table>`) and the registered `links` (record_key -> canonical_id) and `accounts_now`
(account ids) relations; `prepare` sets them up once per connection.

Survivorship (which system wins which field) is written in the SQL below and recorded per row.
Validity intervals come from the raw tables' record versions: a value holds from the version
that introduced it until the next version that changed it.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from assets.entities.records import create_macros, register_raw, text_list
from assets.entities.rules import Rules
from checks.contract import TableContract
from checks.sources import raw_contracts
from checks.vocabulary import load_vocabulary
from resources.lake import LakeResource
from resources.sql import in_list, literal

RAW_TABLES = {
    "raw/crm_accounts",
    "raw/crm_contacts",
    "raw/billing_customers",
    "raw/billing_subscriptions",
    "raw/product_workspaces",
    "raw/product_users",
    "raw/support_tickets",
}


def prepare(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, rules: Rules, links: pa.Table
) -> set[str]:
    create_macros(con, rules.normalize)
    present = register_raw(con, lake, RAW_TABLES)
    con.register("links", links)
    contracts = {c.name: c for c in raw_contracts()}
    for t in RAW_TABLES - present:  # a source not landed yet reads as empty
        con.register(f"v_{t.replace('/', '__')}", contracts[t].schema.empty_table())
    return present


def _cast(con: duckdb.DuckDBPyConnection, sql: str, contract: TableContract) -> pa.Table:
    return con.sql(sql).to_arrow_table().select(contract.schema.names).cast(contract.schema)


# Latest version per source id, and the canonical id of its record.
def _latest(view: str, id_col: str, order: str, source: str, etype: str = "account") -> str:
    return f"""(SELECT v.*, l.canonical_id FROM (
            SELECT * FROM {view}
            QUALIFY row_number() OVER (PARTITION BY {id_col} ORDER BY {order} DESC,
                _extract_date DESC, _line DESC) = 1) v
        LEFT JOIN links l ON l.entity_type = {literal(etype)}
            AND l.record_key = {literal(source + ":")} || v.{id_col})"""


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
    crm = _latest("v_raw__crm_accounts", "id", "last_modified_date", "crm/accounts")
    bill = _latest("v_raw__billing_customers", "customer_id", "updated_at", "billing/customers")
    sql = f"""
    WITH crm AS (
        -- the primary CRM record of an account: a customer over a prospect, one with a
        -- website, then the oldest
        SELECT *, row_number() OVER (PARTITION BY canonical_id ORDER BY
            (type = 'Prospect'), (website IS NULL), created_date, id) AS pick
        FROM {crm} WHERE canonical_id IS NOT NULL
    ), bill AS (
        SELECT canonical_id, arg_max(name, updated_at) AS name, arg_max(country, updated_at) AS country,
            min(created_at) AS created_at
        FROM {bill} WHERE canonical_id IS NOT NULL GROUP BY ALL
    ), src AS ({_source_ids("account")})
    SELECT c.canonical_id AS account_id, c.name, norm_domain(c.website) AS domain,
        lower(c.industry) AS industry, c.number_of_employees AS employees,
        coalesce(b.country, norm_country(c.billing_country)) AS country,
        c.type AS crm_type, c.owner_name, c.id AS primary_crm_account_id, s.source_ids,
        s.source_count, least(c.created_date, b.created_at) AS first_seen_at,
        c.last_modified_date AS updated_at,
        to_json({{'name': 'crm', 'domain': 'crm', 'industry': 'crm', 'employees': 'crm',
                  'country': CASE WHEN b.country IS NOT NULL THEN 'billing' ELSE 'crm' END,
                  'owner_name': 'crm'}})::VARCHAR AS survivorship
    FROM crm c LEFT JOIN bill b USING (canonical_id) LEFT JOIN src s USING (canonical_id)
    WHERE c.pick = 1
    ORDER BY account_id
    """
    return _cast(con, sql, contract)


def person(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    # The requester key as the identity rules build it (over support_tickets aliased t).
    req = rules.persons.source("support/ticket_requesters")
    requester = re.sub(r"\b(org_id|requester_email)\b", r"t.\1", req.id)
    contacts = _latest("v_raw__crm_contacts", "id", "last_modified_date", "crm/contacts", "person")
    users = _latest("v_raw__product_users", "user_id", "updated_at", "product/users", "person")
    sql = f"""
    WITH named AS (
        SELECT canonical_id, 1 AS rank, first_name, last_name, email, created_date AS seen,
            last_modified_date AS last_seen, 'crm' AS system FROM {contacts}
        UNION ALL
        SELECT canonical_id, CASE WHEN is_generic_domain(email_domain(email)) THEN 3 ELSE 2 END,
            nullif(trim(regexp_replace(trim(name), '\\s*\\S+$', '')), ''),
            regexp_extract(trim(name), '(\\S+)$', 1), email, created_at, updated_at, 'product'
        FROM {users}
        UNION ALL
        SELECT l.canonical_id, 4, nullif(trim(regexp_replace(trim(t.requester_name), '\\s*\\S+$', '')), ''),
            regexp_extract(trim(t.requester_name), '(\\S+)$', 1), t.requester_email, t.created_at,
            t.updated_at, 'support'
        FROM v_raw__support_tickets t JOIN links l ON l.entity_type = 'person' AND l.record_key =
            'support/ticket_requesters:' || {requester}
    ), best AS (
        SELECT canonical_id, arg_min(first_name, rank) AS first_name,
            arg_min(last_name, rank) AS last_name,
            pii_hash(arg_min(lower(trim(email)), rank) FILTER (WHERE email IS NOT NULL))
                AS email_hash,
            arg_min(system, rank) AS name_source, min(seen) AS first_seen, max(last_seen) AS last_seen
        FROM named WHERE canonical_id IS NOT NULL GROUP BY ALL
    ), src AS ({_source_ids("person")}), mails AS (
        SELECT canonical_id, to_json(list(DISTINCT h ORDER BY h)) AS email_hashes FROM (
            SELECT canonical_id, pii_hash(e) AS h FROM (
            SELECT l.canonical_id, lower(trim(c.email)) AS e FROM v_raw__crm_contacts c
                JOIN links l ON l.entity_type = 'person' AND l.record_key = 'crm/contacts:' || c.id
            UNION SELECT l.canonical_id, lower(trim(u.email)) FROM v_raw__product_users u
                JOIN links l ON l.entity_type = 'person' AND l.record_key = 'product/users:' || u.user_id
            UNION SELECT l.canonical_id, lower(trim(t.requester_email)) FROM v_raw__support_tickets t
                JOIN links l ON l.entity_type = 'person' AND l.record_key =
                    'support/ticket_requesters:' || {requester}
        )) WHERE h IS NOT NULL GROUP BY ALL
    )
    SELECT s.canonical_id AS person_id, b.first_name, b.last_name,
        nullif(trim(concat_ws(' ', b.first_name, b.last_name)), '') AS full_name,
        b.email_hash, m.email_hashes, s.source_ids, s.source_count,
        b.first_seen AS first_seen_at, b.last_seen AS last_seen_at,
        to_json({{'name': b.name_source, 'email_hash': b.name_source}})::VARCHAR AS survivorship
    FROM src s LEFT JOIN best b USING (canonical_id) LEFT JOIN mails m USING (canonical_id)
    ORDER BY person_id
    """
    return _cast(con, sql, contract)


def workspace(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    ws = _latest("v_raw__product_workspaces", "workspace_id", "updated_at", "product/workspaces")
    users = _latest("v_raw__product_users", "user_id", "updated_at", "product/users", "person")
    sql = f"""
    SELECT w.workspace_id, w.canonical_id AS account_id, w.workspace_name AS name,
        w.billing_customer_id, w.created_at, w.deleted_at, w.deleted_at IS NOT NULL AS is_deleted,
        coalesce(u.active_users, 0) AS active_users, w.updated_at
    FROM {ws} w LEFT JOIN (
        SELECT workspace_id, count(*) FILTER (WHERE status = 'active') AS active_users
        FROM {users} GROUP BY ALL) u USING (workspace_id)
    ORDER BY workspace_id
    """
    return _cast(con, sql, contract)


def subscription(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    """Plans are the vocabulary's tiers (a plan it does not know: kept as it arrived, no rank)."""
    vocab = load_vocabulary()
    sql = f"""
    WITH v AS (
        SELECT s.* REPLACE ({vocab.plan_sql("s.plan")} AS plan),
            {vocab.plan_rank_sql("s.plan")} AS tier_rank
        FROM v_raw__billing_subscriptions s
    ), agg AS (
        SELECT subscription_id, arg_min(plan, updated_at) AS first_plan_tier,
            min(updated_at) FILTER (WHERE tier_rank > first_rank) AS upgraded_at
        FROM (SELECT *, first_value(tier_rank) OVER (PARTITION BY subscription_id ORDER BY updated_at)
                AS first_rank FROM v) GROUP BY ALL
    ), cur AS (
        SELECT * FROM v QUALIFY row_number() OVER (PARTITION BY subscription_id
            ORDER BY updated_at DESC, _extract_date DESC, _line DESC) = 1
    )
    SELECT c.subscription_id, l.canonical_id AS account_id, c.customer_id AS billing_customer_id,
        c.plan AS plan_tier, c.mrr, c.seats, c.status, c.started_at,
        CASE WHEN c.status IN {in_list(vocab.subscription_statuses["canceled"])}
            THEN coalesce(c.canceled_at, c.updated_at) END AS ended_at,
        a.first_plan_tier, a.upgraded_at, c.current_period_end, c.updated_at
    FROM cur c JOIN agg a USING (subscription_id)
    LEFT JOIN links l ON l.entity_type = 'account' AND l.record_key = 'billing/customers:' || c.customer_id
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


def relationship(con: duckdb.DuckDBPyConnection, rules: Rules, contract: TableContract) -> pa.Table:
    roles = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in rules.product_roles.items())
    user_versions = f"""
        SELECT lp.canonical_id AS person_id, la.canonical_id AS account_id,
            'product/users:' || u.user_id AS source_record,
            CASE WHEN u.status = 'deactivated' THEN 'former_user'
                 ELSE CASE u.role {roles} ELSE 'end_user' END END AS value,
            CASE WHEN row_number() OVER (PARTITION BY u.user_id ORDER BY u.updated_at) = 1
                 THEN least(u.created_at, u.updated_at) ELSE u.updated_at END AS ts
        FROM v_raw__product_users u
        JOIN links lp ON lp.entity_type = 'person' AND lp.record_key = 'product/users:' || u.user_id
        JOIN links la ON la.entity_type = 'account'
            AND la.record_key = 'product/workspaces:' || u.workspace_id
        WHERE la.canonical_id IS NOT NULL"""
    contact_versions = f"""
        SELECT lp.canonical_id, la.canonical_id, 'crm/contacts:' || c.id,
            CASE WHEN list_contains({text_list(rules.former_titles)}, lower(trim(c.title))) THEN 'former_user'
                 ELSE 'contact' END,
            CASE WHEN row_number() OVER (PARTITION BY c.id ORDER BY c.last_modified_date) = 1
                 THEN least(c.created_date, c.last_modified_date) ELSE c.last_modified_date END
        FROM v_raw__crm_contacts c
        JOIN links lp ON lp.entity_type = 'person' AND lp.record_key = 'crm/contacts:' || c.id
        JOIN links la ON la.entity_type = 'account' AND la.record_key = 'crm/accounts:' || c.account_id
        WHERE la.canonical_id IS NOT NULL"""
    # The billing email names the billing owner when it is one person's address.
    billing_versions = """
        SELECT p.person_id, la.canonical_id, 'billing/customers:' || b.customer_id,
            'billing_owner',
            CASE WHEN row_number() OVER (PARTITION BY b.customer_id ORDER BY b.updated_at) = 1
                 THEN least(b.created_at, b.updated_at) ELSE b.updated_at END
        FROM v_raw__billing_customers b
        JOIN links la ON la.entity_type = 'account' AND la.record_key = 'billing/customers:' || b.customer_id
        JOIN (SELECT email_key(email) AS k, min(l.canonical_id) AS person_id
              FROM (SELECT email, 'crm/contacts:' || id AS rk FROM v_raw__crm_contacts
                    UNION ALL SELECT email, 'product/users:' || user_id FROM v_raw__product_users) r
              JOIN links l ON l.entity_type = 'person' AND l.record_key = r.rk
              WHERE email IS NOT NULL AND NOT is_role_mailbox(email) GROUP BY ALL
              HAVING count(DISTINCT l.canonical_id) = 1) p ON p.k = email_key(b.email)
        WHERE la.canonical_id IS NOT NULL"""
    versions = f"""SELECT person_id, account_id, source_record, value, ts FROM (
        {user_versions} UNION ALL {contact_versions} UNION ALL {billing_versions})
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
    def first(ts: str, created: str, part: str) -> str:
        return (
            f"CASE WHEN row_number() OVER (PARTITION BY {part} ORDER BY {ts}) = 1 "
            f"THEN least({created}, {ts}) ELSE {ts} END"
        )

    crm = f"""
        SELECT 'account' AS entity_type, l.canonical_id AS entity_id,
            'crm/accounts:' || a.id AS source_record,
            {first("a.last_modified_date", "a.created_date", "a.id")} AS ts,
            lower(a.industry) AS industry, a.owner_name AS owner, a.type AS crm_type,
            a.number_of_employees::VARCHAR AS employees
        FROM v_raw__crm_accounts a JOIN links l ON l.entity_type = 'account'
            AND l.record_key = 'crm/accounts:' || a.id WHERE l.canonical_id IS NOT NULL"""
    subs = f"""
        SELECT 'subscription' AS entity_type, s.subscription_id AS entity_id,
            'billing/subscriptions:' || s.subscription_id AS source_record,
            {first("s.updated_at", "s.started_at", "s.subscription_id")} AS ts,
            {load_vocabulary().plan_sql("s.plan")} AS plan_tier, s.mrr::VARCHAR AS mrr, s.status
        FROM v_raw__billing_subscriptions s"""
    titles = f"""
        SELECT 'person' AS entity_type, l.canonical_id AS entity_id,
            'crm/contacts:' || c.id AS source_record,
            {first("c.last_modified_date", "c.created_date", "c.id")} AS ts, c.title
        FROM v_raw__crm_contacts c JOIN links l ON l.entity_type = 'person'
            AND l.record_key = 'crm/contacts:' || c.id"""
    versions = f"""
        SELECT entity_type, entity_id, source_record, ts, attribute, value FROM (
            SELECT * FROM ({crm}) UNPIVOT INCLUDE NULLS (value FOR attribute IN
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
