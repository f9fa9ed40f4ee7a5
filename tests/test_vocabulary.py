"""The domain vocabulary: one definition of what events count as, read by every layer, with
unknown names kept and listed, and every mistake a load-time error naming file and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from vocabularies import DEFAULT, default_spec, write_vocabulary

from assets.c360.profiles import engagement_sql
from assets.entities.known import KNOWN_PLANS
from assets.events import lifecycle
from assets.features import asof
from checks.entities import IDENTITY_LINKS
from checks.vocabulary import (
    CATEGORIES,
    VocabularyError,
    load_vocabulary,
    snake_case,
    snake_case_sql,
)
from conftest import ROOT, Lakehouse

AS_OF = date(2026, 3, 31)
TS = pa.timestamp("us", tz="UTC")
ACCOUNT = "acc_1"


def _at(days_before: int) -> datetime:
    return datetime.combine(AS_OF - timedelta(days=days_before), datetime.min.time(), UTC)


# -- one definition of usage, shared by features, profiles and lifecycle -------------------------
def _events(names: list[str]) -> pa.Table:
    """One event of each name for ACCOUNT within the last 30 days, as events/events holds it."""
    n = len(names)
    at = [_at(1 + i % 20) for i in range(n)]
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "source_id": [f"s{i}" for i in range(n)],
            "event_name": names,
            "event_date": pa.array([t.date() for t in at], pa.date32()),
            "occurred_at": pa.array(at, TS),
            "account_id": [ACCOUNT] * n,
            "person_id": ["per_1"] * n,
            "properties": [json.dumps({"priority": "low"})] * n,
        }
    )


def _feature_usage(events: pa.Table) -> int:
    """features/churn_features' events_last_30d for ACCOUNT (a running, billed subscription)."""
    con = duckdb.connect()
    since = _at(400)
    con.register("ev", events)
    con.register(
        "history",
        pa.table(
            {
                "entity_type": ["subscription"] * 3,
                "entity_id": ["sub_1"] * 3,
                "attribute": ["status", "mrr", "plan_tier"],
                "value": [load_vocabulary().billed_statuses[0], "100", "any_plan"],
                "valid_from": pa.array([since] * 3, TS),
                "valid_to": pa.array([None] * 3, TS),
            }
        ),
    )
    con.register("subscription", pa.table({"subscription_id": ["sub_1"], "account_id": [ACCOUNT]}))
    con.register(
        "relationship",
        pa.table(
            {
                "person_id": pa.array([], pa.string()),
                "account_id": pa.array([], pa.string()),
                "role": pa.array([], pa.string()),
                "valid_to": pa.array([], TS),
            }
        ),
    )
    asof.prepare(con)
    rows = asof.features_as_of(con, [AS_OF]).to_pylist()
    assert [r["account_id"] for r in rows] == [ACCOUNT]
    return rows[0]["events_last_30d"]


def _profile_usage(events: pa.Table) -> int:
    """c360/customer_360_accounts' events_30d for ACCOUNT."""
    con = duckdb.connect()
    con.register("ev", events)
    sql = f"SELECT events_30d FROM ({engagement_sql('account_id', AS_OF, load_vocabulary())})"
    return con.sql(sql).fetchall()[0][0]


def _lifecycle_usage(events: pa.Table) -> int:
    """The usage the lifecycle's at_risk rule counts for ACCOUNT in its window ending AS_OF."""
    con = duckdb.connect()
    con.register(
        "_lc_accounts",
        pa.table({"account_id": [ACCOUNT], "first_seen_at": pa.array([_at(400)], TS)}),
    )
    con.register(
        "_lc_events", events.select(["account_id", "event_name", "occurred_at", "properties"])
    )
    con.register(
        "_lc_subscriptions",
        pa.table(
            {
                "subscription_id": pa.array([], pa.string()),
                "account_id": pa.array([], pa.string()),
                "mrr": pa.array([], pa.float64()),
                "status": pa.array([], pa.string()),
                "started_at": pa.array([], TS),
                "ended_at": pa.array([], TS),
            }
        ),
    )
    facts = lifecycle._facts_sql(load_vocabulary())
    sql = f"SELECT usage_w FROM ({facts}) WHERE d = $as_of"
    return int(con.sql(sql, params={"as_of": AS_OF}).fetchall()[0][0])


def _three(names: list[str]) -> dict[str, int]:
    events = _events(names)
    return {
        "features": _feature_usage(events),
        "c360": _profile_usage(events),
        "lifecycle": _lifecycle_usage(events),
    }


def test_features_profiles_and_lifecycle_count_the_same_events_as_usage():
    """Every product event, an unknown name and record events, once each: the three layers count
    the same events, exactly those the vocabulary says count as usage."""
    vocab = load_vocabulary()
    names = [*vocab.event_names, "page_viewed", "ticket_opened", "invoice_paid"]
    usage = len(vocab.events_counting("usage"))
    assert 0 < usage < len(names)
    assert _three(names) == {"features": usage, "c360": usage, "lifecycle": usage}


def test_another_vocabulary_changes_what_counts_as_usage_with_no_code_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Another product's events and usage definition, set by the setting alone."""
    path = write_vocabulary(
        tmp_path,
        events={
            "dashboard_opened": {"from": ["Dashboard Opened"], "counts_as": ["usage", "session"]},
            "alert_muted": {"counts_as": ["usage"]},
            "report_exported": {"counts_as": ["retention_signal"]},  # not usage here
        },
    )
    monkeypatch.setenv("LAKEHOUSE_VOCABULARY", str(path))
    names = ["dashboard_opened", "alert_muted", "report_exported", "session_started"]
    # session_started is not this company's event: it counts as nothing now
    assert _three(names) == {"features": 2, "c360": 2, "lifecycle": 2}


# -- unknown names: kept, counted, listed, never a gate failure --------------------------------
DAY = date(2026, 3, 2)


def _write_raw_events(h: Lakehouse, event_types: list[str]) -> None:
    """raw/product_usage_events as the raw layer writes it (typed columns and lineage)."""
    n = len(event_types)
    at = [datetime(2026, 3, 2, 9, i, tzinfo=UTC) for i in range(n)]
    table = pa.table(
        {
            "event_id": [f"evt-{i}" for i in range(n)],
            "workspace_id": ["ws_1"] * n,
            "user_id": ["u_1"] * n,
            "event_type": event_types,
            "timestamp": pa.array(at, TS),
            "session_id": ["s1"] * n,
            "feature_adoption_score": [0.5] * n,
            "_payload": ["{}"] * n,
            "_source_file": ["product/usage_events/2026-03-02/usage_events.jsonl"] * n,
            "_line": list(range(1, n + 1)),
            "_file_sha256": ["0" * 64] * n,
            "_extract_date": pa.array([DAY] * n, pa.date32()),
            "_ingested_at": pa.array([datetime(2026, 3, 3, tzinfo=UTC)] * n, TS),
        }
    )
    write_deltalake(
        h.lake.uri("raw", "product_usage_events"), table, partition_by=["_extract_date"]
    )
    now = datetime(2026, 3, 3, tzinfo=UTC)
    links = [
        ("account", "product", "workspaces", "ws_1", ACCOUNT),
        ("person", "product", "users", "u_1", "per_1"),
    ]
    rows = {
        "entity_type": [r[0] for r in links],
        "system": [r[1] for r in links],
        "object": [r[2] for r in links],
        "source_id": [r[3] for r in links],
        "record_key": [f"{r[1]}/{r[2]}:{r[3]}" for r in links],
        "canonical_id": [r[4] for r in links],
        "rule": ["own_record"] * 2,
        "confidence": [1.0] * 2,
        "linked_at": pa.array([now] * 2, TS),
    }
    schema = IDENTITY_LINKS.schema
    write_deltalake(
        h.lake.uri("entities", "identity_links"),
        pa.table(
            {f.name: pa.array(rows.get(f.name, [None] * 2), f.type) for f in schema}, schema=schema
        ),
    )


def _checks(result) -> dict[str, object]:
    """check name -> its evaluation, for events/events in a run."""
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.asset_key.to_user_string() == "events/events"
    }


def test_an_unknown_event_name_is_kept_counted_listed_and_passes_the_gate(lakehouse: Lakehouse):
    from dagster import AssetCheckSeverity

    h = lakehouse
    _write_raw_events(h, ["Page Viewed", "page-viewed", "report_view", "Report View", "NPSSent"])
    result = h.materialize_days(DAY.isoformat(), DAY.isoformat())
    assert result.success
    checks = _checks(result)
    assert checks["gx_suite"].passed  # never a gate failure
    known = checks["events_known_names"]
    assert not known.passed and known.severity == AssetCheckSeverity.WARN
    listed = known.metadata["unknown_event_names"].value
    assert listed == {"nps_sent": 1, "page_viewed": 2}
    names = h.lake.read("events", "events")["event_name"].to_pylist()
    assert sorted(names) == [
        "nps_sent",
        "page_viewed",
        "page_viewed",
        "report_viewed",
        "report_viewed",
    ]
    meta = next(
        e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    )
    assert meta["unknown_event_names"].value == listed


def test_a_name_the_vocabulary_learns_renames_the_days_that_held_it(
    lakehouse: Lakehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A day holding a name the vocabulary now maps is pending; rebuilt, it carries the new name
    (an unknown name kept as its canonical form needs no rebuild)."""
    from assets.events.mapping import load_mapping
    from assets.events.runs import pending_ranges

    h = lakehouse
    _write_raw_events(h, ["Page Viewed", "report_view"])
    assert h.materialize_days(DAY.isoformat(), DAY.isoformat()).success
    assert pending_ranges(h.lake, h.resources["pii"], load_mapping(), DAY) == []
    spec = default_spec()
    events = {**spec["events"], "page_opened": {"from": ["Page Viewed"], "counts_as": ["usage"]}}
    monkeypatch.setenv("LAKEHOUSE_VOCABULARY", str(write_vocabulary(tmp_path, events=events)))
    assert pending_ranges(h.lake, h.resources["pii"], load_mapping(), DAY) == [(DAY, DAY)]
    result = h.materialize_days(DAY.isoformat(), DAY.isoformat())
    assert result.success and _checks(result)["events_known_names"].passed
    names = h.lake.read("events", "events")["event_name"].to_pylist()
    assert sorted(names) == ["page_opened", "report_viewed"]
    assert pending_ranges(h.lake, h.resources["pii"], load_mapping(), DAY) == []


def test_an_unknown_plan_is_kept_with_no_tier_rank_and_listed():
    """A plan the vocabulary does not know: kept as it arrived, ranks nowhere (never an upgrade,
    no MRR band), listed by the warning check of entities/subscription."""
    vocab = load_vocabulary()
    con = duckdb.connect()
    top = vocab.top_plan
    row = con.sql(
        f"""SELECT {vocab.plan_sql("'team_pro'")} AS kept, {vocab.plan_rank_sql("'team_pro'")} AS r,
            {vocab.plan_band_sql("'team_pro'", 1)} AS ceiling,
            {vocab.plan_rank_sql(repr(top))} AS top_rank"""
    ).fetchall()[0]
    assert row == ("team_pro", None, None, len(vocab.plans))
    subs = pa.table({"plan_tier": [top, "team_pro", "team_pro", None]})
    assert KNOWN_PLANS.unknown(subs, vocab) == {"team_pro": 2}
    no_contract_lists_plans = [
        c
        for c in (
            *__import__("checks.entities", fromlist=["SUBSCRIPTION"]).SUBSCRIPTION.columns,
            *__import__("checks.features", fromlist=["CHURN_COLUMNS"]).CHURN_COLUMNS,
        )
        if c.name.endswith("plan_tier") and c.accepted is not None
    ]
    assert no_contract_lists_plans == []


def test_an_unknown_plan_passes_the_feature_mart_with_no_band():
    """An account paying on a plan the vocabulary does not know is in the mart, tier kept."""
    events = _events(["report_viewed"])
    con = duckdb.connect()
    con.register("ev", events)
    con.register(
        "history",
        pa.table(
            {
                "entity_type": ["subscription"] * 3,
                "entity_id": ["sub_1"] * 3,
                "attribute": ["status", "mrr", "plan_tier"],
                "value": [load_vocabulary().billed_statuses[0], "100", "team_pro"],
                "valid_from": pa.array([_at(400)] * 3, TS),
                "valid_to": pa.array([None] * 3, TS),
            }
        ),
    )
    con.register("subscription", pa.table({"subscription_id": ["sub_1"], "account_id": [ACCOUNT]}))
    con.register(
        "relationship",
        pa.table(
            {
                "person_id": pa.array([], pa.string()),
                "account_id": pa.array([], pa.string()),
                "role": pa.array([], pa.string()),
                "valid_to": pa.array([], TS),
            }
        ),
    )
    asof.prepare(con)
    row = asof.features_as_of(con, [AS_OF]).to_pylist()[0]
    assert (row["plan_tier"], row["mrr_tier_ceiling_pct"]) == ("team_pro", None)


# -- names and their SQL twin ------------------------------------------------------------------
def test_raw_names_resolve_exactly_then_after_snake_casing():
    vocab = load_vocabulary()
    assert vocab.canonical_event("session_start") == "session_started"
    assert vocab.canonical_event("Session Start") == "session_started"
    assert vocab.canonical_event("reportView") == "report_viewed"
    assert vocab.canonical_event("session_started") == "session_started"
    assert vocab.canonical_event("Page Viewed") is None
    raw = ["Session Start", "reportView", "APICall", "Page Viewed!", "x__Y", "a1B", "HTTPRequest"]
    con = duckdb.connect()
    sql = ", ".join(snake_case_sql(f"${i}") for i in range(1, len(raw) + 1))
    assert list(con.execute(f"SELECT {sql}", raw).fetchall()[0]) == [snake_case(r) for r in raw]
    names = ", ".join(vocab.event_name_sql(f"${i}") for i in range(1, len(raw) + 1))
    got = list(con.execute(f"SELECT {names}", raw).fetchall()[0])
    assert got == [vocab.canonical_event(r) or snake_case(r) for r in raw]
    assert got[:4] == ["session_started", "report_viewed", "api_called", "page_viewed"]


# -- mistakes are load-time errors naming the file and the field --------------------------------
def _bad(tmp_path: Path, **sections) -> str:
    path = write_vocabulary(tmp_path, **sections)
    with pytest.raises(VocabularyError) as err:
        load_vocabulary(path)
    assert str(err.value).startswith(f"{path.resolve()}: field ")
    return str(err.value).split(": field ", 1)[1]


def test_an_unknown_category_names_the_event(tmp_path: Path):
    msg = _bad(tmp_path, events={"session_started": {"counts_as": ["usage", "engagement"]}})
    assert msg.startswith("events.session_started.counts_as: unknown category 'engagement'")
    assert all(c in msg for c in CATEGORIES)


def test_an_alias_of_two_canonical_names_is_refused(tmp_path: Path):
    msg = _bad(
        tmp_path,
        events={"session_started": {"from": ["login"]}, "user_logged_in": {"from": ["login"]}},
    )
    assert msg.startswith("events.user_logged_in.from: 'login' is also a name of 'session_started'")


def test_an_alias_equal_to_another_after_snake_casing_is_refused(tmp_path: Path):
    msg = _bad(
        tmp_path,
        events={
            "report_viewed": {"from": ["Report View"]},
            "report_opened": {"from": ["reportView"]},
        },
    )
    assert msg.startswith(
        "events.report_opened.from: 'reportView' is also a name of 'report_viewed'"
    )


def test_an_event_named_twice_is_refused(tmp_path: Path):
    text = DEFAULT.read_text().replace(
        "events:\n", "events:\n  api_called: {counts_as: [usage]}\n", 1
    )
    path = tmp_path / "vocabulary.yaml"
    path.write_text(text)
    with pytest.raises(VocabularyError, match=r"field events\.api_called: named twice"):
        load_vocabulary(path)


def test_a_plan_named_twice_is_refused(tmp_path: Path):
    plans = [*default_spec()["plans"], {"name": "starter"}]
    assert _bad(tmp_path, plans=plans) == "plans.starter: named twice"


def test_a_plan_alias_of_two_plans_is_refused(tmp_path: Path):
    plans = [{"name": "basic", "from": ["basic", "legacy"]}, {"name": "pro", "from": ["legacy"]}]
    assert _bad(tmp_path, plans=plans) == "plans.pro.from: 'legacy' is also a name of 'basic'"


@pytest.mark.parametrize(
    ("sections", "field"),
    [
        ({"colour": "blue"}, "colour: unknown key"),
        (
            {"events": {"api_called": {"count_as": ["usage"]}}},
            "events.api_called.count_as: unknown key",
        ),
        ({"plans": [{"name": "pro", "tier": 2}]}, "plans[0].tier: unknown key"),
        (
            {"lifecycle": {**default_spec()["lifecycle"], "grace_days": 3}},
            "lifecycle.grace_days: unknown key",
        ),
        (
            {"deal_stages": {"won": ["won"], "lost": ["lost"], "open": []}},
            "deal_stages.open: unknown key",
        ),
    ],
)
def test_an_unknown_key_is_refused(tmp_path: Path, sections: dict, field: str):
    assert _bad(tmp_path, **sections).startswith(field)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"version": 2}, "version: unsupported version 2"),
        ({"events": {"Session Started": {}}}, "events.Session Started: 'Session Started' is not"),
        (
            {"lifecycle": {**default_spec()["lifecycle"], "window_days": 0}},
            "lifecycle.window_days:",
        ),
        ({"plans": [{"name": "pro", "mrr_band": [10, 5]}]}, "plans.pro.mrr_band: must be"),
        ({"ticket_priorities": [{"name": "p1", "urgent": "yes"}]}, "ticket_priorities.p1.urgent:"),
        ({"subscription_statuses": {"active": ["on"], "trialing": []}}, "subscription_statuses"),
    ],
)
def test_other_mistakes_name_their_field(tmp_path: Path, sections: dict, message: str):
    assert _bad(tmp_path, **sections).startswith(message)


def test_a_missing_section_is_named(tmp_path: Path):
    spec = default_spec()
    del spec["ticket_priorities"]
    path = tmp_path / "vocabulary.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(VocabularyError, match=r": field ticket_priorities: missing"):
        load_vocabulary(path)


def test_the_code_location_does_not_load_with_a_vocabulary_mistake(tmp_path: Path):
    path = write_vocabulary(tmp_path, events={"api_called": {"counts_as": ["engagement"]}})
    env = {**os.environ, "LAKEHOUSE_VOCABULARY": str(path), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import runpy; runpy.run_path({str(ROOT / 'platform' / 'definitions.py')!r})",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode != 0
    assert f"{path.resolve()}: field events.api_called.counts_as: unknown category" in run.stderr
