"""Values from the layers' configuration reach SQL quoted: an event type, a canonical name or a
consent scope with an apostrophe (a source's own vocabulary) builds events and profiles like
any other, instead of breaking or changing the query."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
from vocabularies import write_vocabulary

from assets.c360.profiles import C360Rules, person_consent_sql
from assets.events.mapping import EventSource, Ref, source_sql, view
from checks.vocabulary import load_vocabulary
from resources.duckdb import connect

DAY = date(2026, 3, 2)


def test_a_stream_event_type_with_a_quote_becomes_its_canonical_event(tmp_path):
    vocab = load_vocabulary(
        write_vocabulary(
            tmp_path,
            events={
                "owners_report_viewed": {"from": ["owner's report"], "counts_as": ["usage"]},
                "session_started": {"from": ["login"], "counts_as": ["usage", "session"]},
            },
        )
    )
    src = EventSource(
        source="partner/activity",
        table="raw/partner_activity",
        id="activity_id",
        at="happened_at",
        name_from="kind",
        account=(Ref("org_id", "partner/orgs"),),
        person=(),
        properties=(("org_id", "org_id"),),
    )
    con = connect()
    con.register(
        view(src.table),
        pa.table(
            {
                "activity_id": ["a1", "a2", "a3", "a4"],
                "kind": ["owner's report", "login", "owner''s report", "Owner's Export"],
                "happened_at": pa.array([f"2026-03-02T{h}:00:00Z" for h in (10, 11, 12, 13)]).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "org_id": ["o'1", "o2", "o3", "o4"],
                "_ingested_at": pa.array(["2026-03-03T00:00:00Z"] * 4).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "_line": [1, 2, 3, 4],
                "_extract_date": pa.array([DAY] * 4, pa.date32()),
            }
        ),
    )
    sql = source_sql(src, str(DAY), str(DAY), 2, vocabulary=vocab)
    rows = con.sql(sql).to_arrow_table().sort_by("event_id")
    got = rows.select(["event_id", "event_name", "account_ref", "source_system"]).to_pylist()
    assert got == [
        {
            "event_id": "partner/activity:a1",
            "event_name": "owners_report_viewed",
            "account_ref": "partner/orgs:o'1",
            "source_system": "partner",
        },
        {
            "event_id": "partner/activity:a2",
            "event_name": "session_started",
            "account_ref": "partner/orgs:o2",
            "source_system": "partner",
        },
        {  # a doubled quote is another raw value, the same name once snake_cased
            "event_id": "partner/activity:a3",
            "event_name": "owners_report_viewed",
            "account_ref": "partner/orgs:o3",
            "source_system": "partner",
        },
        {  # a name the vocabulary does not know: kept under its snake_cased name
            "event_id": "partner/activity:a4",
            "event_name": "owner_s_export",
            "account_ref": "partner/orgs:o4",
            "source_system": "partner",
        },
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
