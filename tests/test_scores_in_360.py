"""The account 360 carries each champion model's score of its own day, or says why not."""

from __future__ import annotations

import json
from datetime import date, datetime

import duckdb
import pyarrow as pa
import pytest

from checks.ml import CHURN_SCORES
from conftest import Lakehouse, check_evaluations

SCORES_SCHEMA = CHURN_SCORES.schema
ACCOUNTS_360 = ("c360", "customer_360_accounts")
KINDS = ("churn", "expansion")


@pytest.mark.parametrize("kind", KINDS)
def test_the_360_carries_the_champions_score_of_its_day(full_lake: Lakehouse, kind: str):
    lake = full_lake.lake
    profile = lake.read(*ACCOUNTS_360)
    [as_of] = set(profile["as_of"].to_pylist())
    scores = lake.read("ml", f"{kind}_scores").to_pylist()
    champion = {
        r["account_id"]: r
        for r in scores
        if r["role"] == "champion" and not r["shadow"] and r["scored_at"] == as_of
    }
    assert champion, f"no champion {kind} scores of {as_of}"
    rows = {r["account_id"]: r for r in profile.to_pylist()}
    # every account the champion scored that day has exactly that probability in the 360
    got = {a: rows[a][f"{kind}_probability"] for a in champion}
    assert got == {a: r["probability"] for a, r in champion.items()}
    for account, score in champion.items():
        row = rows[account]
        assert row[f"{kind}_band"] == score["risk_band"]
        assert row[f"{kind}_model_version"] == score["model_version"]
        assert row[f"{kind}_scored_at"] == as_of
        assert json.loads(row[f"{kind}_reasons"]) == json.loads(score["reasons"])
        assert row[f"{kind}_unscored_reason"] is None
    # every other account has no score, and says why
    others = [r for a, r in rows.items() if a not in champion]
    assert others  # leads and churned accounts are outside every scoring population
    for row in others:
        assert row[f"{kind}_probability"] is None and row[f"{kind}_band"] is None
        assert row[f"{kind}_unscored_reason"].startswith(f"not in the {kind} scoring population")


def test_an_all_null_score_column_fails_the_360_gate(
    full_lake: Lakehouse, monkeypatch: pytest.MonkeyPatch
):
    """A profile that lost its scores (a join that matches nothing) without saying why is not
    published: the table keeps its version."""
    import assets.c360

    lake = full_lake.lake
    version = lake.version(*ACCOUNTS_360)
    original = assets.c360.accounts_sql

    def scoreless(*args, **kwargs) -> str:
        return (
            f"SELECT * REPLACE (NULL::DOUBLE AS churn_probability) "
            f"FROM ({original(*args, **kwargs)}) ORDER BY account_id"
        )

    monkeypatch.setattr(assets.c360, "accounts_sql", scoreless)
    result = full_lake.materialize("/".join(ACCOUNTS_360))
    assert not result.success
    gate = check_evaluations(result)["/".join(ACCOUNTS_360)]
    assert not gate.passed
    assert any("scores_neither_given_nor_explained" in f for f in gate.metadata["failed"].value)
    assert lake.version(*ACCOUNTS_360) == version


def _score(account: str, day: date, role: str, p: float, version: str) -> dict:
    return {
        "account_id": account,
        "scored_at": day,
        "model_name": "m",
        "model_version": version,
        "role": role,
        "shadow": role != "champion",
        "probability": p,
        "risk_band": "high" if p >= 0.5 else "low",
        "reasons": "[]",
        "scored_run_at": datetime(2026, 11, 1),
    }


def _profile_scores(as_of: date, churn: list[dict] | None, expansion: list[dict] | None) -> dict:
    from assets.c360.scores import scores_sql

    con = duckdb.connect()
    con.register("account", pa.table({"account_id": ["acc_1", "acc_2", "acc_3"]}))
    present = set()
    for kind, rows in (("churn", churn), ("expansion", expansion)):
        if rows is not None:
            con.register(f"{kind}_scores", pa.Table.from_pylist(rows, schema=SCORES_SCHEMA))
            present.add(kind)
    out = con.sql(scores_sql(as_of, present)).to_arrow_table().to_pylist()
    return {r["account_id"]: r for r in out}


def test_only_the_champions_score_of_the_profiles_day_counts():
    day, before = date(2026, 10, 31), date(2026, 10, 30)
    churn = [
        _score("acc_1", day, "champion", 0.2, "3"),
        _score("acc_1", day, "challenger", 0.9, "4"),  # shadow: never in the profile
        _score("acc_2", before, "champion", 0.7, "3"),  # another day: not the profile's
    ]
    expansion = [_score("acc_1", before, "champion", 0.1, "2")]
    rows = _profile_scores(day, churn, expansion)
    assert (rows["acc_1"]["churn_probability"], rows["acc_1"]["churn_model_version"]) == (0.2, "3")
    assert rows["acc_2"]["churn_probability"] is None
    assert rows["acc_2"]["churn_unscored_reason"].startswith("not in the churn scoring population")
    # the expansion model has not scored the profile's day at all: no score, and why
    for account in rows:
        assert rows[account]["expansion_probability"] is None
        assert rows[account]["expansion_unscored_reason"] == (
            "no expansion scores of 2026-10-31: the latest are of 2026-10-30 "
            "(run ml/expansion_scores)"
        )
    # before any model scored
    empty = _profile_scores(day, None, [])
    assert {r["churn_unscored_reason"] for r in empty.values()} == {"no churn model has scored yet"}
    assert {r["expansion_unscored_reason"] for r in empty.values()} == {
        "no expansion model has scored yet"
    }


def test_the_daily_refresh_builds_the_360_after_the_scores_and_the_crm_after_the_360(defs):
    from dagster import AssetKey

    from assets.automation import DAILY_REFRESH

    graph = defs.resolve_asset_graph()
    daily = {k.to_user_string() for k in DAILY_REFRESH.resolve(graph)}
    profile = graph.get(AssetKey(list(ACCOUNTS_360)))
    parents = {k.to_user_string() for k in profile.parent_keys}
    assert {"ml/churn_scores", "ml/expansion_scores"} <= parents
    assert {"ml/churn_scores", "ml/expansion_scores", "/".join(ACCOUNTS_360)} <= daily
    children = {k.to_user_string() for k in profile.child_keys}
    assert "reverse_etl/crm_account_updates" in children
