"""Lifecycle rules on hand-built accounts: each state on chosen days is what its definition says."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

import duckdb
import pyarrow as pa
import pytest

from assets.events.lifecycle import (
    STATES,
    account_lifecycle,
    describe_rules,
    rule_set_version,
    rules,
    state_at,
)
from checks.vocabulary import load_vocabulary

D0 = date(2025, 1, 1)
AS_OF_N = 399
TS = pa.timestamp("us", tz="UTC")


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def ts(n: int, at: time = time(12)) -> datetime:
    return datetime.combine(day(n), at, tzinfo=UTC)


AS_OF = day(AS_OF_N)

FIRST_SEEN = {
    "lead": 0,
    "trial": 0,
    "on_time": 0,  # 2nd invite on the 14th day after its first workspace: activated
    "too_late": 0,  # 2nd invite on the 15th day: never activated
    "trialing_sub": 0,
    "free_plan": 0,
    "grower": 0,
    "tickets": 0,
    "usage_drop": 0,
    "usage_19": 0,
    "churner": 0,
    "cancel_event_only": 0,
    "late_lead": 30,  # created a workspace before the CRM knew it
    "future": 500,  # first seen after as_of: no rows
}

EVENTS: list[tuple[str, str, datetime, dict | None]] = [
    ("trial", "workspace_created", ts(5), None),
    ("trial", "user_invited", ts(6), None),
    ("trial", "invoice_payment_failed", ts(10), None),  # not paying: not at risk
    ("on_time", "workspace_created", ts(0, time(9)), None),
    ("on_time", "user_invited", ts(1), None),
    ("on_time", "evidence_uploaded", ts(3), None),
    ("on_time", "user_invited", ts(13, time(23, 59, 59)), None),
    ("too_late", "workspace_created", ts(0), None),
    ("too_late", "user_invited", ts(1), None),
    ("too_late", "monitoring_run_completed", ts(2), None),
    ("too_late", "user_invited", ts(14, time(0, 0, 1)), None),
    ("too_late", "user_invited", ts(20), None),
    ("grower", "workspace_created", ts(0), None),
    ("grower", "user_invited", ts(1), None),
    ("grower", "user_invited", ts(2), None),
    ("grower", "monitoring_run_completed", ts(2), None),
    ("grower", "subscription_started", ts(20), {"subscription_id": "g1", "mrr": 100}),
    ("grower", "premium_feature_trial_started", ts(40), None),
    ("grower", "invoice_payment_failed", ts(100), {"subscription_id": "g1"}),
    ("grower", "invoice_payment_failed", ts(420), None),  # after as_of: ignored
    ("tickets", "ticket_opened", ts(200), {"priority": "high"}),
    ("tickets", "ticket_opened", ts(210), {"priority": "critical"}),
    ("tickets", "ticket_opened", ts(300), {"priority": "medium"}),
    ("tickets", "ticket_opened", ts(305), {"priority": "high"}),
    ("tickets", "ticket_opened", ts(306), None),
    *[("usage_drop", "session_started", ts(300), None)] * 25,
    *[("usage_drop", "api_called", ts(300), None)] * 15,
    ("usage_drop", "report_viewed", ts(340), None),
    *[("usage_19", "report_viewed", ts(300), None)] * 19,
    ("churner", "workspace_created", ts(0), None),
    ("churner", "user_invited", ts(1), None),
    ("churner", "user_invited", ts(1), None),
    ("churner", "evidence_uploaded", ts(3), None),
    ("churner", "subscription_canceled", ts(50), {"subscription_id": "c1"}),
    ("cancel_event_only", "subscription_canceled", ts(60), {"subscription_id": "x1"}),
    ("late_lead", "workspace_created", ts(20), None),
]

# subscription_id, account_id, mrr, status, started day, ended day
SUBSCRIPTIONS = [
    ("t1", "trialing_sub", 50.0, "trialing", 7, None),  # trialing never counts as paying
    ("f1", "free_plan", 0.0, "active", 5, None),  # MRR 0 is not paying
    ("g1", "grower", 100.0, "active", 20, None),
    ("k1", "tickets", 200.0, "active", 0, None),
    ("u1", "usage_drop", 200.0, "past_due", 0, None),
    ("u2", "usage_19", 200.0, "active", 0, None),
    ("c1", "churner", 100.0, "canceled", 10, 50),
    ("c2", "churner", 120.0, "active", 100, None),
    ("x1", "cancel_event_only", 80.0, "active", 10, None),  # end known only from the event
]


def inputs() -> tuple[pa.Table, pa.Table, pa.Table]:
    accounts = pa.table(
        {
            "account_id": list(FIRST_SEEN),
            "first_seen_at": pa.array([ts(n, time(8)) for n in FIRST_SEEN.values()], TS),
        }
    )
    events = pa.table(
        {
            "account_id": [e[0] for e in EVENTS],
            "event_name": [e[1] for e in EVENTS],
            "occurred_at": pa.array([e[2] for e in EVENTS], TS),
            "properties": [json.dumps(e[3]) if e[3] is not None else None for e in EVENTS],
        }
    )
    subs = pa.table(
        {
            "subscription_id": [s[0] for s in SUBSCRIPTIONS],
            "account_id": [s[1] for s in SUBSCRIPTIONS],
            "plan_tier": ["pro"] * len(SUBSCRIPTIONS),
            "mrr": [s[2] for s in SUBSCRIPTIONS],
            "status": [s[3] for s in SUBSCRIPTIONS],
            "started_at": pa.array([ts(s[4], time(10)) for s in SUBSCRIPTIONS], TS),
            "ended_at": pa.array(
                [ts(s[5], time(10)) if s[5] is not None else None for s in SUBSCRIPTIONS], TS
            ),
        }
    )
    return accounts, events, subs


def lifecycle(as_of: date = AS_OF) -> pa.Table:
    return account_lifecycle(duckdb.connect(), *inputs(), as_of)


@pytest.fixture(scope="module")
def lc() -> pa.Table:
    return lifecycle()


def intervals(lc: pa.Table, account: str) -> list[tuple[str, int, int | None]]:
    rows = [r for r in lc.to_pylist() if r["account_id"] == account]
    return [
        (
            r["state"],
            (r["valid_from"] - D0).days,
            None if r["valid_to"] is None else (r["valid_to"] - D0).days,
        )
        for r in rows
    ]


EXPECTED = {
    "lead": [("lead", 0, None)],
    "trial": [("lead", 0, 5), ("trial", 5, None)],
    "on_time": [("trial", 0, 13), ("activated", 13, None)],
    "too_late": [("trial", 0, None)],
    "trialing_sub": [("lead", 0, 7), ("trial", 7, None)],
    "free_plan": [("lead", 0, None)],
    "grower": [
        ("trial", 0, 2),
        ("activated", 2, 20),
        ("paying", 20, 40),
        ("expansion_candidate", 40, 70),  # premium trial on day 40, for 30 days
        ("paying", 70, 100),
        ("at_risk", 100, 130),  # payment failed on day 100, for 30 days
        ("paying", 130, None),
    ],
    # 2nd high/critical ticket on day 210 while the 1st (day 200) is within 30 days; the
    # medium+high pair later is only one urgent ticket
    "tickets": [("paying", 0, 210), ("at_risk", 210, 230), ("paying", 230, None)],
    # 40 usage events on day 300, 1 on day 340: days 330..359 have < half of the prior 30 days
    "usage_drop": [("paying", 0, 330), ("at_risk", 330, 360), ("paying", 360, None)],
    "usage_19": [("paying", 0, None)],  # the prior window had fewer than 20: no drop rule
    "churner": [
        ("trial", 0, 3),
        ("activated", 3, 10),
        ("paying", 10, 50),
        ("churned", 50, 100),
        ("reactivated", 100, 190),  # re-subscribed on day 100: days 100..189
        ("paying", 190, None),
    ],
    "cancel_event_only": [("lead", 0, 10), ("paying", 10, 60), ("churned", 60, None)],
    "late_lead": [("trial", 30, None)],
}


@pytest.mark.parametrize("account", sorted(EXPECTED))
def test_intervals_match_definitions(lc: pa.Table, account: str) -> None:
    assert intervals(lc, account) == EXPECTED[account]


@pytest.mark.parametrize(
    ("account", "n", "state"),
    [
        ("on_time", 12, "trial"),  # activated from the day the last step happened
        ("on_time", 13, "activated"),  # 2nd invite at 23:59:59 UTC on the 14th day
        ("too_late", 14, "trial"),  # 2nd invite on the 15th day: outside the window
        ("too_late", AS_OF_N, "trial"),
        ("trial", 10, "trial"),  # a failed payment while not paying is no risk
        ("trialing_sub", 100, "trial"),
        ("grower", 39, "paying"),
        ("grower", 69, "expansion_candidate"),
        ("grower", 70, "paying"),
        ("grower", 129, "at_risk"),
        ("tickets", 209, "paying"),
        ("tickets", 229, "at_risk"),
        ("tickets", 306, "paying"),
        ("usage_drop", 329, "paying"),
        ("usage_drop", 330, "at_risk"),
        ("usage_drop", 359, "at_risk"),
        ("churner", 49, "paying"),
        ("churner", 50, "churned"),
        ("churner", 99, "churned"),
        ("churner", 100, "reactivated"),
        ("churner", 189, "reactivated"),
        ("churner", 190, "paying"),
        ("cancel_event_only", 59, "paying"),
        ("cancel_event_only", 60, "churned"),
    ],
)
def test_state_at_past_days(lc: pa.Table, account: str, n: int, state: str) -> None:
    assert state_at(lc, account, day(n)) == state


def test_every_state_is_reached(lc: pa.Table) -> None:
    assert set(lc["state"].to_pylist()) == set(STATES)


def test_intervals_cover_first_day_to_as_of_without_gaps_or_overlaps(lc: pa.Table) -> None:
    assert set(lc["account_id"].to_pylist()) == set(FIRST_SEEN) - {"future"}
    for account, first in FIRST_SEEN.items():
        rows = intervals(lc, account)
        if account == "future":
            assert rows == []
            continue
        assert rows[0][1] == first
        assert rows[-1][2] is None
        for (state, _, end), (next_state, start, _) in pairwise(rows):
            assert end == start  # exclusive end meets the next start: no gap, no overlap
            assert state != next_state  # runs of one state are collapsed
    assert state_at(lc, "late_lead", day(29)) is None  # before the account's first day


def test_is_current_only_on_the_open_last_interval(lc: pa.Table) -> None:
    for r in lc.to_pylist():
        assert r["is_current"] == (r["valid_to"] is None)
    current = [r["account_id"] for r in lc.to_pylist() if r["is_current"]]
    assert sorted(current) == sorted(set(FIRST_SEEN) - {"future"})


@pytest.mark.parametrize("n", [0, 3, 13, 14, 45, 60, 100, 150, 215, 335, 361])
def test_past_state_is_what_was_known_then(lc: pa.Table, n: int) -> None:
    """Evaluating as of a past day gives, as current state, the state recorded for that day."""
    then = lifecycle(day(n))
    for r in then.filter(then["is_current"]).to_pylist():
        assert state_at(lc, r["account_id"], day(n)) == r["state"], r["account_id"]


def test_days_are_utc_whatever_the_session_time_zone(lc: pa.Table) -> None:
    """too_late's 2nd invite at 00:00:01 UTC is the previous day in Los Angeles."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/Los_Angeles'")
    assert account_lifecycle(con, *inputs(), AS_OF).equals(lc)


def test_rule_and_version_stamped(lc: pa.Table) -> None:
    assert lc.column_names == [
        "account_id",
        "state",
        "valid_from",
        "valid_to",
        "rule",
        "rule_set_version",
        "is_current",
    ]
    assert lc["rule"].to_pylist() == lc["state"].to_pylist()  # one rule per state
    assert set(lc["rule_set_version"].to_pylist()) == {rule_set_version(load_vocabulary())}


def test_describe_rules_one_bullet_per_state_in_precedence_order() -> None:
    bullets = [line for line in describe_rules().splitlines() if line.startswith("- ")]
    assert [b.split("**")[1] for b in bullets] == [r.state for r in rules(load_vocabulary())]
    assert list(STATES) == [
        "churned",
        "reactivated",
        "at_risk",
        "expansion_candidate",
        "paying",
        "activated",
        "trial",
        "lead",
    ]
