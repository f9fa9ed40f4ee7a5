"""The customer 360 profiles, built in DuckDB from the entities, the events and the lifecycle.

Survivorship is generated from c360.yaml over the catalog's roles: one candidate row per
(profile, field, source record), the winner picked by source trust (catalog order) then recency,
the winning source recorded per field. Windows (7/30/90 days) end at `as_of`, the last day the
event table holds (not the wall clock), so a profile describes the data as of its freshest
complete day. What counts as usage, a session, an
urgent ticket and a billed subscription is the vocabulary's (checks/vocabulary.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from assets.c360.scores import score_columns
from assets.entities.rules import EntityRules, Rules
from assets.events.mapping import view
from checks.roles import ROLES
from checks.sources import Catalog, load_catalog
from checks.vocabulary import Vocabulary, load_vocabulary
from resources.duckdb import EXACT
from resources.settings import C360_RULES as C360_PATH
from resources.settings import read
from resources.sql import ident, in_list, literal

DEFAULT_C360 = Path(__file__).with_name("c360.yaml")
ROLE_ORDER = ("admin", "billing_owner", "champion", "end_user", "contact", "former_user")


@dataclass(frozen=True)
class C360Rules:
    """Survivorship candidates per profile field (`{source, expr}`, trust order), derived from
    c360.yaml's role fields over the catalog (assets/roles.py `survivorship`)."""

    accounts: dict[str, list[dict[str, str]]]
    people: dict[str, list[dict[str, str]]]
    consent_scopes: tuple[str, ...]


def c360_path() -> Path:
    """The c360 rules file: `LAKEHOUSE_C360_RULES`, read when asked (never at import)."""
    return Path(read(C360_PATH) or DEFAULT_C360)


def _entries(path: Path, entity: str, name: str, spec: Any) -> list[dict[str, str]]:
    """A profile field's role fields as `[{from: <role>.<field>, sql}]`."""
    where = f"{path}: field {entity}.{name}"
    if not isinstance(spec, dict) or not spec.get("from"):
        raise ValueError(f"{where}: needs `from: [<role>.<field>, ...]`")
    if "source" in spec or any(isinstance(e, dict) and "source" in e for e in spec["from"]):
        raise ValueError(f"{where}: names a source object; name role fields (`from`) instead")
    out = []
    for e in spec["from"]:
        item = (
            {"from": e, "sql": spec.get("sql", "{}")}
            if isinstance(e, str)
            else {"from": e.get("field", ""), "sql": e.get("sql", spec.get("sql", "{}"))}
        )
        role_name, _, field = item["from"].partition(".")
        if role_name not in ROLES or field not in ROLES[role_name].fields:
            raise ValueError(f"{where}.from: {item['from']!r} is no role field")
        out.append(item)
    return out


def load_c360(path: str | Path | None = None, catalog: Catalog | None = None) -> C360Rules:
    """The c360 rules at `path` (default: `c360_path()`) over `catalog` (default: the active
    one), read when called: when the code location is built and when a profile's run starts."""
    from assets.roles import survivorship

    path = Path(path) if path else c360_path()
    if not path.is_file():
        raise FileNotFoundError(f"c360 rules {path} not found (set {C360_PATH} to a file)")
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    catalog = catalog or load_catalog()
    fields = {
        entity: {n: _entries(path, entity, n, f) for n, f in spec[entity].items()}
        for entity in ("accounts", "people")
    }
    return C360Rules(
        survivorship(catalog, fields["accounts"]),
        survivorship(catalog, fields["people"]),
        tuple(spec.get("consent_scopes", ())),
    )


def survivorship_sql(
    fields: dict[str, list[dict[str, str]]], rules: EntityRules, etype: str
) -> str:
    """canonical_id, one column per field, and `survivorship` (field -> winning source, JSON)."""
    parts = []
    for field, sources in fields.items():
        for rank, s in enumerate(sources):
            src = rules.source(s["source"])
            where = f"WHERE ({src.where})" if src.where else ""
            parts.append(
                f"""SELECT l.canonical_id AS id, {literal(field)} AS field,
                    ({s["expr"]})::VARCHAR AS value, {rank} AS rank,
                    {literal(src.source)} AS source,
                    ({src.order_by})::TIMESTAMPTZ AS seen
                FROM (SELECT * FROM {view(src.table)} {where} QUALIFY row_number() OVER (
                        PARTITION BY ({src.id})::VARCHAR
                        ORDER BY {src.order_by} DESC, _extract_date DESC, _line DESC) = 1) r
                JOIN links l ON l.entity_type = {literal(etype)}
                    AND l.record_key = {literal(src.source + ":")} || ({src.id})::VARCHAR
                WHERE l.canonical_id IS NOT NULL"""
            )
    picks = ", ".join(
        f"max(value) FILTER (WHERE field = {literal(f)}) AS {ident(f)}" for f in fields
    )
    return f"""
        SELECT id AS canonical_id, {picks},
            to_json(map(list(field ORDER BY field), list(source ORDER BY field)))::VARCHAR
                AS survivorship
        FROM (SELECT id, field, first(value ORDER BY rank, seen DESC NULLS LAST) AS value,
                first(source ORDER BY rank, seen DESC NULLS LAST) AS source
              FROM ({" UNION ALL ".join(parts)})
              WHERE nullif(trim(value), '') IS NOT NULL GROUP BY id, field)
        GROUP BY id"""


def billed_subscription(vocab: Vocabulary) -> str:
    """SQL over entities/subscription: in force and billed, so its MRR counts."""
    return f"status IN {in_list(vocab.billed_statuses)}"


def _day(as_of: date) -> str:
    return f"DATE {literal(as_of)}"


def _windows(prefix: str, cond: str, as_of: date) -> str:
    return ", ".join(
        f"count(*) FILTER (WHERE {cond} AND event_date > {_day(as_of)} - {n}) AS {prefix}_{n}d"
        for n in (7, 30, 90)
    )


def engagement_sql(key: str, as_of: date, vocab: Vocabulary) -> str:
    """Per `key` (account_id or person_id) of `ev`: sessions and usage events in the 7/30/90
    days ending `as_of`, and (accounts) the people active in the last 30, as the vocabulary
    counts them: the one engagement definition both profiles share."""
    usage, session = vocab.counting_sql("usage"), vocab.counting_sql("session")
    people = (
        f""", count(DISTINCT person_id) FILTER (WHERE {usage}
            AND event_date > {_day(as_of)} - 30) AS active_people_30d"""
        if key == "account_id"
        else ""
    )
    return f"""SELECT {key}, {_windows("sessions", session, as_of)},
            {_windows("events", usage, as_of)}{people}
        FROM ev WHERE {key} IS NOT NULL
            AND event_date > {_day(as_of)} - 90 AND event_date <= {_day(as_of)}
        GROUP BY 1"""


def accounts_sql(
    c360: C360Rules, rules: Rules, as_of: date, vocab: Vocabulary | None = None
) -> str:
    """Expects views: links, account, subscription, relationship, lifecycle, ev (events),
    person_consent, open_tickets, account_scores and account_identity (from their _sql) and the
    survivorship sources' raw views. `vocab`: default the active vocabulary."""
    v = vocab or load_vocabulary()
    usage, session = v.counting_sql("usage"), v.counting_sql("session")
    billed = billed_subscription(v)
    recent = f"event_date > {_day(as_of)} - 90 AND event_date <= {_day(as_of)}"
    return f"""
    WITH surv AS ({survivorship_sql(c360.accounts, rules.accounts, "account")}),
    seen AS (SELECT account_id, max(event_date) AS last_recorded_on,
            max(occurred_at) FILTER (WHERE {usage}) AS last_seen_at,
            max(occurred_at) FILTER (WHERE {session}) AS last_login_at,
            min(occurred_at) FILTER (WHERE event_name = 'workspace_created') AS signup_at,
            sum(try_cast(json_extract_string(properties, '$.amount') AS {EXACT}))
                FILTER (WHERE event_name = 'invoice_paid')::DOUBLE AS paid_to_date
        FROM ev WHERE account_id IS NOT NULL AND event_date <= {_day(as_of)} GROUP BY 1),
    eng AS ({engagement_sql("account_id", as_of, v)}),
    tickets AS (SELECT account_id, count(*) AS open_tickets,
            count(*) FILTER (WHERE {v.urgent_sql("json_extract_string(properties, '$.priority')")})
                AS high_priority_open_tickets
        FROM open_tickets WHERE account_id IS NOT NULL GROUP BY 1),
    solved AS (SELECT account_id, avg(try_cast(json_extract_string(properties,
                '$.resolution_hours') AS {EXACT})) AS resolution_hours_90d
        FROM ev WHERE event_name = 'ticket_solved' AND account_id IS NOT NULL AND {recent}
        GROUP BY 1),
    rev AS (SELECT account_id,
            sum(mrr::{EXACT}) FILTER (WHERE {billed})::DOUBLE AS mrr,
            arg_max(plan_tier, mrr) FILTER (WHERE {billed}) AS plan,
            count(*) FILTER (WHERE {billed}) AS active_subscriptions
        FROM subscription WHERE account_id IS NOT NULL GROUP BY 1),
    consent AS (SELECT r.account_id,
            count(DISTINCT r.person_id) FILTER (WHERE pc.consent_email_marketing)
                AS people_consenting_email,
            max(pc.last_consent_at) AS last_consent_at
        FROM relationship r JOIN person_consent pc USING (person_id)
        WHERE r.is_current GROUP BY 1),
    life AS (SELECT account_id, state AS lifecycle_state, valid_from AS lifecycle_since
        FROM lifecycle WHERE is_current)
    SELECT a.account_id, 'crm' AS primary_source, a.source_ids, a.source_count,
        s.name, s.domain, s.industry, try_cast(s.employees AS BIGINT) AS employees, s.country,
        s.owner_name, s.survivorship, idn.identity_confidence, idn.identity_note,
        seen.last_recorded_on, seen.last_seen_at, seen.last_login_at,
        date_diff('day', seen.last_login_at::DATE, {_day(as_of)}) AS days_since_last_login,
        coalesce(eng.sessions_7d, 0) AS sessions_7d, coalesce(eng.sessions_30d, 0) AS sessions_30d,
        coalesce(eng.sessions_90d, 0) AS sessions_90d, coalesce(eng.events_7d, 0) AS events_7d,
        coalesce(eng.events_30d, 0) AS events_30d, coalesce(eng.events_90d, 0) AS events_90d,
        coalesce(eng.active_people_30d, 0) AS active_people_30d,
        rev.plan, coalesce(rev.mrr, 0.0) AS mrr, coalesce(rev.mrr, 0.0) * 12 AS arr,
        coalesce(rev.active_subscriptions, 0) AS active_subscriptions,
        coalesce(seen.paid_to_date, 0.0) AS paid_to_date,
        coalesce(seen.paid_to_date, 0.0) + 12 * coalesce(rev.mrr, 0.0) AS lifetime_value_est,
        coalesce(tickets.open_tickets, 0) AS open_tickets,
        coalesce(tickets.high_priority_open_tickets, 0) AS high_priority_open_tickets,
        solved.resolution_hours_90d,
        s.marketing_source, a.first_seen_at AS first_touch_at, seen.signup_at,
        coalesce(consent.people_consenting_email, 0) AS people_consenting_email,
        consent.last_consent_at,
        life.lifecycle_state, life.lifecycle_since,
        {", ".join(f"sc.{c}" for c in score_columns())},
        {_day(as_of)} AS as_of
    FROM account a
    LEFT JOIN surv s ON s.canonical_id = a.account_id
    LEFT JOIN seen USING (account_id) LEFT JOIN eng USING (account_id)
    LEFT JOIN tickets USING (account_id) LEFT JOIN solved USING (account_id)
    LEFT JOIN rev USING (account_id) LEFT JOIN consent USING (account_id)
    LEFT JOIN life USING (account_id)
    LEFT JOIN account_scores sc ON sc.account_id = a.account_id
    LEFT JOIN account_identity idn ON idn.account_id = a.account_id
    ORDER BY a.account_id"""


def open_tickets_sql(as_of: date) -> str:
    """Tickets opened by as_of and not solved by then (events keep what was true when they
    happened, so 'open' is the absence of a solved event, not a status)."""
    return f"""
        SELECT o.* FROM ev o WHERE o.event_name = 'ticket_opened' AND o.event_date <= {_day(as_of)}
            AND NOT EXISTS (SELECT 1 FROM ev s WHERE s.event_name = 'ticket_solved'
                AND s.source_id = o.source_id AND s.event_date <= {_day(as_of)})"""


def person_consent_sql(c360: C360Rules, as_of: date) -> str:
    """Per person: one flag per consent scope (the latest answer) and the last consent time."""
    flags = ", ".join(
        f"""arg_max(event_name = 'consent_granted', occurred_at) FILTER (WHERE
                json_extract_string(properties, '$.scope') = {literal(s)})
                AS {ident("consent_" + s)}"""
        for s in c360.consent_scopes
    )
    return f"""
        SELECT person_id, {flags}, max(occurred_at) AS last_consent_at
        FROM ev WHERE event_name IN ('consent_granted', 'consent_revoked')
            AND person_id IS NOT NULL AND event_date <= {_day(as_of)}
        GROUP BY 1"""


def people_sql(c360: C360Rules, rules: Rules, as_of: date, vocab: Vocabulary | None = None) -> str:
    """Expects the views of accounts_sql. `vocab`: default the active vocabulary."""
    v = vocab or load_vocabulary()
    usage, session = v.counting_sql("usage"), v.counting_sql("session")
    roles = " ".join(f"WHEN {literal(r)} THEN {i}" for i, r in enumerate(ROLE_ORDER))
    flags = ", ".join(f"pc.{ident('consent_' + s)}" for s in c360.consent_scopes)
    return f"""
    WITH surv AS ({survivorship_sql(c360.people, rules.persons, "person")}),
    rel AS (SELECT person_id,
            first(account_id ORDER BY CASE role {roles} END, valid_from) AS account_id,
            first(role ORDER BY CASE role {roles} END, valid_from) AS role,
            to_json(list({{'account_id': account_id, 'role': role}}
                ORDER BY account_id, role))::VARCHAR AS accounts
        FROM relationship WHERE is_current GROUP BY 1),
    seen AS (SELECT person_id, max(occurred_at) FILTER (WHERE {usage}) AS last_seen_at,
            max(occurred_at) FILTER (WHERE {session}) AS last_login_at
        FROM ev WHERE person_id IS NOT NULL AND event_date <= {_day(as_of)} GROUP BY 1),
    eng AS ({engagement_sql("person_id", as_of, v)}),
    tickets AS (SELECT person_id, count(*) AS open_tickets FROM open_tickets
        WHERE person_id IS NOT NULL GROUP BY 1)
    SELECT p.person_id, p.source_ids, p.source_count, s.first_name, s.last_name,
        nullif(trim(concat_ws(' ', s.first_name, s.last_name)), '') AS full_name,
        p.email_hash, p.email_hashes, s.title, s.survivorship,
        rel.account_id, rel.role, rel.accounts,
        seen.last_seen_at, seen.last_login_at,
        date_diff('day', seen.last_login_at::DATE, {_day(as_of)}) AS days_since_last_login,
        coalesce(eng.sessions_7d, 0) AS sessions_7d, coalesce(eng.sessions_30d, 0) AS sessions_30d,
        coalesce(eng.sessions_90d, 0) AS sessions_90d, coalesce(eng.events_7d, 0) AS events_7d,
        coalesce(eng.events_30d, 0) AS events_30d, coalesce(eng.events_90d, 0) AS events_90d,
        coalesce(tickets.open_tickets, 0) AS open_tickets,
        {flags}, pc.last_consent_at,
        s.marketing_source, p.first_seen_at, life.state AS account_lifecycle_state,
        {_day(as_of)} AS as_of
    FROM person p
    LEFT JOIN surv s ON s.canonical_id = p.person_id
    LEFT JOIN rel USING (person_id) LEFT JOIN seen USING (person_id)
    LEFT JOIN eng USING (person_id) LEFT JOIN tickets USING (person_id)
    LEFT JOIN person_consent pc USING (person_id)
    LEFT JOIN lifecycle life ON life.account_id = rel.account_id AND life.is_current
    ORDER BY p.person_id"""
