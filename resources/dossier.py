"""Everything the lake knows about one account or one person, on one screen.

Each section is one query over the `layer.table` views with the canonical id as `$id` (and the
profile's `as_of`, the freshest day of events, as `$as_of`). A section whose tables are not in
the lake yet says so instead of failing the others. Only what the lake holds is shown: emails
are salted hashes there, and stay so.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from resources.lookup import ACCOUNT, PERSON, Kind, Match
from resources.query import LakeQuery
from resources.render import cell, record, render

WIDTH = 110  # characters a section's table aims to fit in
CELL = 48  # longest cell shown in a section (every value is whole in `lakehouse sql`)
EVENT_WINDOW_DAYS = 90
_JSON_LIST = "array_to_string(from_json(coalesce({0}, '[]'), '[\"VARCHAR\"]'), '; ')"


@dataclass(frozen=True)
class Section:
    title: str
    tables: tuple[str, ...]  # layer.table views the query reads
    sql: str
    limit: int = 8
    detail: str | None = None  # a long column printed under its row instead of in the table


def _reasons(column: str) -> str:
    return _JSON_LIST.format(column)


def _scores(model: str) -> Section:
    return Section(
        f"{model.capitalize()} score, latest per role",
        (f"ml.{model}_scores",),
        f"""SELECT role, model_version AS version, scored_at, probability, risk_band,
                {_reasons("reasons")} AS reasons
            FROM ml.{model}_scores WHERE account_id = $id
            QUALIFY row_number() OVER (PARTITION BY role ORDER BY scored_at DESC,
                try_cast(model_version AS INT) DESC, probability, reasons) = 1
            ORDER BY role DESC""",
        detail="reasons",
    )


def _events(key: str) -> Section:
    people = ", count(DISTINCT person_id) AS people" if key == "account_id" else ""
    return Section(
        f"Events, last {EVENT_WINDOW_DAYS} days to as_of (and all time)",
        ("events.events",),
        f"""SELECT event_name,
                count(*) FILTER (WHERE event_date > $as_of - {EVENT_WINDOW_DAYS}
                    AND event_date <= $as_of) AS last_{EVENT_WINDOW_DAYS}d,
                count(*) AS all_time{people}, max(occurred_at) AS last_at
            FROM events.events WHERE {key} = $id
            GROUP BY event_name
            ORDER BY last_{EVENT_WINDOW_DAYS}d DESC, all_time DESC, event_name""",
        limit=12,
    )


def _source_records(entity: str) -> Section:
    return Section(
        "Source records (identity links)",
        ("entities.identity_links",),
        f"""SELECT system || '/' || object AS source, rule, count(*) AS records,
                min(confidence) AS confidence, min(linked_at) AS first_linked,
                string_agg(source_id, ', ' ORDER BY source_id) AS source_ids
            FROM entities.identity_links
            WHERE entity_type = '{entity}' AND canonical_id = $id
            GROUP BY ALL ORDER BY source, rule""",
        limit=12,
    )


ACCOUNT_SECTIONS = (
    _source_records("account"),
    Section(
        "Identity: merges into this account and pairs waiting for review",
        ("entities.identity_merges", "entities.identity_review"),
        """SELECT action AS kind, old_id AS other, NULL::DOUBLE AS probability,
                recorded_at AS "when" FROM entities.identity_merges
            WHERE entity_type = 'account' AND $id IN (old_id, surviving_id)
            UNION ALL
            SELECT 'review ' || pair_id, CASE WHEN left_canonical_id = $id THEN right_record
                ELSE left_record END, match_probability, queued_at
            FROM entities.identity_review
            WHERE entity_type = 'account' AND $id IN (left_canonical_id, right_canonical_id)
            ORDER BY "when" DESC, kind, other""",
    ),
    Section(
        "People and current roles",
        ("entities.relationship", "entities.person", "c360.customer_360_people"),
        """SELECT r.person_id, p.full_name, c.title,
                string_agg(DISTINCT r.role, ', ' ORDER BY r.role) AS roles,
                min(r.valid_from) AS since, c.last_seen_at
            FROM entities.relationship r
            LEFT JOIN entities.person p USING (person_id)
            LEFT JOIN c360.customer_360_people c USING (person_id)
            WHERE r.account_id = $id AND r.is_current
            GROUP BY ALL ORDER BY roles, p.full_name NULLS LAST, person_id""",
        limit=12,
    ),
    Section(
        "Subscriptions",
        ("entities.subscription",),
        """SELECT subscription_id, plan_tier, mrr, seats, status, started_at, ended_at,
                first_plan_tier AS first_plan, upgraded_at
            FROM entities.subscription WHERE account_id = $id
            ORDER BY ended_at IS NULL DESC, started_at DESC, subscription_id""",
    ),
    Section(
        "Plan, MRR and status history (latest first)",
        ("entities.attribute_history", "entities.subscription"),
        """SELECT h.valid_from, h.valid_to, h.entity_id AS subscription, h.attribute, h.value
            FROM entities.attribute_history h
            JOIN entities.subscription s ON h.entity_id = s.subscription_id
            WHERE h.entity_type = 'subscription' AND s.account_id = $id
            ORDER BY h.valid_from DESC, h.attribute, h.entity_id, h.value""",
        limit=10,
    ),
    _events("account_id"),
    Section(
        "Lifecycle (latest first)",
        ("events.account_lifecycle",),
        """SELECT state, valid_from, valid_to, rule, rule_set_version
            FROM events.account_lifecycle WHERE account_id = $id
            ORDER BY valid_from DESC, valid_to DESC NULLS FIRST, state""",
    ),
    _scores("churn"),
    _scores("expansion"),
    Section(
        "What the CRM receives",
        ("reverse_etl.crm_account_updates",),
        f"""SELECT crm_account_id, next_best_action AS action, action_confidence AS confidence,
                churn_risk, churn_risk_band AS churn_band, expansion_propensity AS expansion,
                expansion_band, health_score AS health, consent_crm_sync AS consent,
                {_reasons("top_reasons")} AS top_reasons
            FROM reverse_etl.crm_account_updates WHERE account_id = $id
            ORDER BY crm_account_id""",
        detail="top_reasons",
    ),
    Section(
        "CRM sync attempts (latest first)",
        ("reverse_etl.sync_audit",),
        """SELECT attempted_at, status, destination, model_version, actor, error
            FROM reverse_etl.sync_audit WHERE account_id = $id
            ORDER BY attempted_at DESC, crm_account_id, status, destination, actor, error""",
        limit=5,
    ),
    Section(
        "Review queue",
        ("reverse_etl.review_queue",),
        """SELECT queued_at, crm_account_id, next_best_action, action_confidence, threshold,
                status
            FROM reverse_etl.review_queue WHERE account_id = $id
            ORDER BY queued_at DESC, crm_account_id, next_best_action, status""",
    ),
)

PERSON_SECTIONS = (
    _source_records("person"),
    Section(
        "Accounts and roles",
        ("entities.relationship", "entities.account"),
        """SELECT r.account_id, a.name AS account, r.role, r.valid_from, r.valid_to,
                r.is_current, r.source_record
            FROM entities.relationship r LEFT JOIN entities.account a USING (account_id)
            WHERE r.person_id = $id
            ORDER BY r.is_current DESC, r.valid_from DESC, r.account_id, r.role""",
        limit=12,
    ),
    _events("person_id"),
)


@dataclass(frozen=True)
class Subject:
    kind: Kind
    profile: str  # the c360 table holding its profile row
    fallback: str  # the entity table when the profile is not built yet
    title: str  # profile column naming it
    sections: Sequence[Section]


SUBJECTS = {
    "account": Subject(
        ACCOUNT, "c360.customer_360_accounts", "entities.account", "name", ACCOUNT_SECTIONS
    ),
    "person": Subject(
        PERSON, "c360.customer_360_people", "entities.person", "full_name", PERSON_SECTIONS
    ),
}


def show(q: LakeQuery, subject: Subject, match: Match, out: TextIO) -> None:
    """Print the profile row, then every section, for the canonical id `match.id`."""
    table, profile = _profile(q, subject, match.id)
    name = profile.get(subject.title) or "(no name)"
    out.write(f"{subject.kind.entity.capitalize()} {match.id}: {name}\n")
    out.write(f"  matched by {match.how}\n\n")
    out.write(f"Profile ({table})\n")
    record(
        [(k, v) for k, v in profile.items() if k not in (subject.kind.key, subject.title)],
        out,
        WIDTH,
    )
    params = {"id": match.id, "as_of": profile.get("as_of") or _freshest_day(q)}
    for section in subject.sections:
        out.write("\n")
        _section(q, section, params, out)


def _profile(q: LakeQuery, subject: Subject, id: str) -> tuple[str, dict[str, Any]]:
    """The 360 row; the entity row when the 360 is not built yet or predates the entity."""
    for table in (subject.profile, subject.fallback):
        if q.has(table):
            rows = q.rows(f"SELECT * FROM {table} WHERE {subject.kind.key} = $id", {"id": id})
            if rows:
                return table, rows[0]
    return subject.fallback, {}


def _freshest_day(q: LakeQuery) -> dt.date:
    if not q.has("events.events"):
        return dt.datetime.now(dt.UTC).date()
    day = q.rows("SELECT max(event_date) AS d FROM events.events")[0]["d"]
    return day or dt.datetime.now(dt.UTC).date()


def _section(q: LakeQuery, section: Section, params: dict[str, Any], out: TextIO) -> None:
    missing = [t for t in section.tables if not q.has(t)]
    if missing:
        out.write(f"{section.title}: not in the lake yet ({', '.join(missing)})\n")
        return
    used = {k: v for k, v in params.items() if f"${k}" in section.sql}
    cur = q.execute(section.sql, used)
    columns = [d[0] for d in cur.description or []]
    rows = cur.fetchall()
    if not rows:
        out.write(f"{section.title}: none\n")
        return
    out.write(f"{section.title}: {len(rows):,}\n")
    shown = rows[: section.limit]
    keep = [i for i, c in enumerate(columns) if c != section.detail]
    _indented([columns[i] for i in keep], [[r[i] for i in keep] for r in shown], out)
    if section.detail is not None:
        at = columns.index(section.detail)
        for row in shown:
            if row[at]:
                out.write(f"    {cell(row[0])} {section.detail}: {cell(row[at])}\n")
    if len(rows) > section.limit:
        out.write(f"  … {len(rows) - section.limit:,} more ({', '.join(section.tables)})\n")


def _indented(columns: list[str], rows: list[list[Any]], out: TextIO) -> None:
    buffer = io.StringIO()
    render(columns, rows, "text", buffer, max_width=CELL)
    for line in buffer.getvalue().splitlines():
        out.write(f"  {line}\n")
