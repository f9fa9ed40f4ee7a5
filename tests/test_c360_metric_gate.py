"""The account profile's metric-logic gate: the MRR total it publishes must equal the MRR of the
active subscriptions it covers. A profile whose MRR drifts from the subscriptions (a join that
loses or inflates one account's revenue) must fail the gate, name the rule and the gap, and
leave the published table at its previous Delta version."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import duckdb
import pytest

import assets.c360
from conftest import Lakehouse, check_evaluations, load_definitions

ACCOUNTS_360 = ("c360", "customer_360_accounts")
MRR_RULE = "column='mrr_total_difference'"
ACTIVE = ("active", "past_due")  # still billed: the README's "active subscriptions' MRR"


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> Lakehouse:
    """A small company built up to a published, passing account profile."""
    from assets.events.mapping import load_mapping
    from assets.events.runs import first_day, pending_ranges
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("c360_gate")
    generate(root / "landing", accounts=30, days=40, seed=7, end_date=date(2026, 10, 31))
    house = Lakehouse(root / "lake", root / "landing", load_definitions())
    assert house.materialize().success
    for first, last in pending_ranges(
        house.lake, house.resources["pii"], load_mapping(), first_day(house.defs)
    ):
        assert house.materialize_days(first, last).success
    result = house.materialize("events/account_lifecycle", "/".join(ACCOUNTS_360))
    assert result.success and check_evaluations(result)["/".join(ACCOUNTS_360)].passed
    return house


def _billed_mrr_by_account(house: Lakehouse) -> dict[str, float]:
    """Each account's MRR from the raw billing extracts (latest version of each subscription,
    active or past due), mapped to accounts through the identity links: not from the entities
    or the profile under test."""
    con = duckdb.connect()
    con.register("subs", house.lake.dataset("raw", "billing_subscriptions"))
    con.register("links", house.lake.dataset("entities", "identity_links"))
    rows = con.execute(
        """WITH latest AS (SELECT * FROM subs QUALIFY row_number() OVER (
                PARTITION BY subscription_id ORDER BY updated_at DESC, _extract_date DESC,
                _line DESC) = 1)
        SELECT l.canonical_id, sum(s.mrr) FROM latest s
        JOIN links l ON l.record_key = 'billing/customers:' || s.customer_id
        WHERE s.status IN (?, ?) AND l.canonical_id IS NOT NULL GROUP BY 1""",
        list(ACTIVE),
    ).fetchall()
    return {account: float(mrr) for account, mrr in rows}


def _tampered(account_id: str, mrr: str) -> Callable[..., str]:
    """accounts_sql, with `account_id`'s MRR replaced by the SQL expression `mrr`."""
    original = assets.c360.accounts_sql

    def accounts_sql(*args, **kwargs) -> str:
        return (
            f"SELECT * REPLACE (CASE WHEN account_id = '{account_id}' THEN {mrr} ELSE mrr END "
            f"AS mrr) FROM ({original(*args, **kwargs)}) ORDER BY account_id"
        )

    return accounts_sql


@pytest.mark.parametrize(
    ("how", "mrr"),
    [
        ("five cents more", "mrr + 0.05"),  # just past the rounding tolerance (0.01)
        ("its revenue lost", "0.0"),  # a subscription a join missed
    ],
)
def test_a_profile_mrr_off_from_subscriptions_fails_the_account_gate(
    profiled: Lakehouse, monkeypatch: pytest.MonkeyPatch, how: str, mrr: str
):
    house = profiled
    billed = _billed_mrr_by_account(house)
    account, account_mrr = max(billed.items(), key=lambda kv: kv[1])
    assert account_mrr > 1
    gap = {"five cents more": 0.05, "its revenue lost": account_mrr}[how]
    version = house.lake.version(*ACCOUNTS_360)
    before = house.lake.read(*ACCOUNTS_360)

    monkeypatch.setattr(assets.c360, "accounts_sql", _tampered(account, mrr))
    result = house.materialize("/".join(ACCOUNTS_360))

    assert not result.success
    gate = check_evaluations(result)["/".join(ACCOUNTS_360)]
    assert not gate.passed
    failed = gate.metadata["failed"].value
    assert len(failed) == 1 and MRR_RULE in failed[0], failed  # that rule, and only it
    # the run's failure names the rule and by how much the totals disagree
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    line = next(x for x in message.splitlines() if MRR_RULE in x)
    assert line.startswith("[FAIL]"), line
    reported = float(re.search(r"e\.g\. \[([-0-9.e]+)\]", line).group(1))
    assert reported == pytest.approx(gap, abs=1e-6), line
    # nothing was published: same Delta version, same rows
    assert house.lake.version(*ACCOUNTS_360) == version
    assert house.lake.read(*ACCOUNTS_360).equals(before)
