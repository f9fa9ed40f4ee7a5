"""Values from the layers' configuration reach SQL quoted: an event type, a canonical name or a
consent scope with an apostrophe (a source's own vocabulary) builds events and profiles like
any other, instead of breaking or changing the query."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa

from assets.c360.profiles import C360Rules, person_consent_sql
from assets.events.mapping import EventSource, Ref, source_sql, view
from resources.duckdb import connect

DAY = date(2026, 3, 2)


def test_a_stream_event_type_with_a_quote_becomes_its_canonical_event():
    src = EventSource(
        source="partner/activity",
        table="raw/partner_activity",
        id="activity_id",
        at="happened_at",
        name_from="kind",
        names={"owner's report": "owner's_report_viewed", "login": "session_started"},
        account=(Ref("org_id", "partner/orgs"),),
        person=(),
        properties=(("org_id", "org_id"),),
    )
    con = connect()
    con.register(
        view(src.table),
        pa.table(
            {
                "activity_id": ["a1", "a2", "a3"],
                "kind": ["owner's report", "login", "owner''s report"],
                "happened_at": pa.array(
                    ["2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z", "2026-03-02T12:00:00Z"]
                ).cast(pa.timestamp("us", tz="UTC")),
                "org_id": ["o'1", "o2", "o3"],
                "_ingested_at": pa.array(["2026-03-03T00:00:00Z"] * 3).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "_line": [1, 2, 3],
                "_extract_date": pa.array([DAY] * 3, pa.date32()),
            }
        ),
    )
    rows = con.sql(source_sql(src, str(DAY), str(DAY), 2)).to_arrow_table().sort_by("event_id")
    got = rows.select(["event_id", "event_name", "account_ref", "source_system"]).to_pylist()
    assert got == [
        {
            "event_id": "partner/activity:a1",
            "event_name": "owner's_report_viewed",
            "account_ref": "partner/orgs:o'1",
            "source_system": "partner",
        },
        {
            "event_id": "partner/activity:a2",
            "event_name": "session_started",
            "account_ref": "partner/orgs:o2",
            "source_system": "partner",
        },
        # a doubled quote is a different raw value, not in the mapping: no event
    ]
    assert json.loads(rows["properties"][0].as_py()) == {"org_id": "o'1"}


def test_a_consent_scope_with_a_quote_is_its_own_flag():
    con = connect()
    at = pa.array(["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z"]).cast(
        pa.timestamp("us", tz="UTC")
    )
    con.register(
        "ev",
        pa.table(
            {
                "person_id": ["p1", "p1"],
                "event_name": ["consent_granted", "consent_revoked"],
                "occurred_at": at,
                "event_date": pa.array([date(2026, 3, 1)] * 2, pa.date32()),
                "properties": [
                    json.dumps({"scope": "partner's_offers"}),
                    json.dumps({"scope": "email_marketing"}),
                ],
            }
        ),
    )
    rules = C360Rules({}, {}, ("partner's_offers", "email_marketing"))
    row = con.sql(person_consent_sql(rules, DAY)).to_arrow_table().to_pylist()
    assert row == [
        {
            "person_id": "p1",
            "consent_partner's_offers": True,
            "consent_email_marketing": False,
            "last_consent_at": at[1].as_py(),
        }
    ]
