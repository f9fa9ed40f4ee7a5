"""Action confidence: how sure the platform is of the action it sends the CRM (the model's holdout
evidence for the band, the data's freshness, the account's identity), not how risky the account
is; and the bands it starts from."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from assets.ml.bands import BandEvidence, measure
from assets.reverse_etl.confidence import EVIDENCE_SCHEMA, evidence_rows
from assets.reverse_etl.sync import sync, updates_sql
from checks.reverse_etl import CRM_ACCOUNT_UPDATES, SYNC_STATE
from conftest import Lakehouse
from resources.destinations import SQLiteDestination

AS_OF = date(2026, 10, 31)
THRESHOLD = 0.5
# A churn champion whose holdout backs its bands: 6 % base rate; 30 of 70 high-band rows
# churned, 40 of 1300 low-band ones (three held-out dates).
CHURN = BandEvidence(0.06, {"low": (1300, 40), "medium": (120, 15), "high": (70, 30)}, ("a",) * 3)
EXPANSION = BandEvidence(0.04, {"low": (1200, 10), "medium": (20, 2), "high": (30, 18)}, ("a",) * 3)


def _account(account_id: str, churn_p: float | None, **kw) -> dict:
    band = None if churn_p is None else CHURN.band(np.array([churn_p]))[0]
    row = {
        "account_id": account_id,
        "lifecycle_state": "paying" if churn_p is not None else "churned",
        "as_of": AS_OF,
        "last_recorded_on": AS_OF - timedelta(days=1),
        "identity_confidence": 1.0,
        "identity_note": None,
        "churn_probability": churn_p,
        "churn_band": band,
        "churn_model_version": None if churn_p is None else "3",
        "churn_reasons": json.dumps(["usage fell 60% month over month"]),
        "churn_unscored_reason": (
            "not in the churn scoring population on 2026-10-31 (...)" if churn_p is None else None
        ),
        "expansion_probability": None,
        "expansion_band": None,
        "expansion_model_version": None,
        "expansion_unscored_reason": "not in the expansion scoring population on 2026-10-31",
    }
    row.update(kw)
    return row


def _updates(profiles: list[dict], stale_after_days: int = 31) -> pa.Table:
    con = duckdb.connect()
    con.register("c360", pa.Table.from_pylist(profiles))
    con.register(
        "account",
        pa.table(
            {
                "account_id": [p["account_id"] for p in profiles],
                "primary_crm_account_id": [f"crm_{p['account_id']}" for p in profiles],
            }
        ),
    )
    con.register(
        "people",
        pa.table(
            {
                "person_id": [f"per_{p['account_id']}" for p in profiles],
                "accounts": [json.dumps([{"account_id": p["account_id"]}]) for p in profiles],
                "consent_crm_sync": [True] * len(profiles),
            }
        ),
    )
    evidence = evidence_rows("churn", "3", CHURN) + evidence_rows("expansion", "2", EXPANSION)
    con.register("band_evidence", pa.Table.from_pylist(evidence, schema=EVIDENCE_SCHEMA))
    table = con.sql(updates_sql(stale_after_days)).to_arrow_table()
    return table.select(CRM_ACCOUNT_UPDATES.schema.names).cast(CRM_ACCOUNT_UPDATES.schema)


def _sync(table: pa.Table, tmp_path):
    crm = SQLiteDestination(tmp_path / "crm.db")
    result = sync(
        table,
        SYNC_STATE.schema.empty_table(),
        crm,
        threshold=THRESHOLD,
        now=datetime(2026, 11, 1, tzinfo=UTC),
        sync_id="s",
    )
    return crm.rows(), {r["account_id"]: r for r in result.review.to_pylist()}


def test_high_risk_accounts_with_fresh_data_and_certain_identity_reach_the_crm(tmp_path):
    """Risky is not unsure: 0.35 and 0.9 churn risks are both confident retention calls."""
    table = _updates([_account("a", 0.35), _account("b", 0.9), _account("c", 0.02)])
    rows = {r["account_id"]: r for r in table.to_pylist()}
    assert rows["a"]["next_best_action"] == rows["b"]["next_best_action"] == "retention_call"
    assert rows["a"]["action_confidence"] == rows["b"]["action_confidence"] > 0.9
    held, review = _sync(table, tmp_path)
    assert {"crm_a", "crm_b", "crm_c"} <= set(held) and not review
    assert held["crm_a"]["next_best_action"] == "retention_call"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"last_recorded_on": AS_OF - timedelta(days=95)}, "last record 95 day(s) before as_of"),
        (
            {
                "identity_confidence": 0.12,
                "identity_note": "billing/customers:cus_9 may be this company's record "
                "(pending identity review p1, match probability 0.88)",
            },
            "billing/customers:cus_9 may be this company's record",
        ),
    ],
)
def test_stale_data_or_an_uncertain_identity_sends_the_action_to_review(tmp_path, change, why):
    table = _updates([_account("fresh", 0.6), _account("doubt", 0.6, **change)])
    held, review = _sync(table, tmp_path)
    assert "crm_fresh" in held and "crm_doubt" not in held
    reason = review["doubt"]["reason"]
    assert reason.startswith("confidence 0.") and f"below {THRESHOLD}" in reason
    assert why in reason
    assert review["doubt"]["next_best_action"] == "retention_call"


def test_a_thin_or_unproven_band_is_not_trusted():
    """A high band that held few outcomes on the holdout, or a version that recorded none,
    makes its action unsure, however high the score."""
    thin = BandEvidence(0.06, {"low": (1300, 40), "high": (6, 1)}, ("a",) * 3)
    assert thin.support("high") < THRESHOLD < CHURN.support("high")
    unproven = _updates([_account("x", 0.95, churn_model_version="9")])  # no evidence for v9
    [row] = unproven.to_pylist()
    assert row["model_reliability"] == 0 and row["action_confidence"] == 0
    assert "no holdout evidence recorded for v9" in row["confidence_note"]


def test_confidence_is_not_the_churn_probability():
    probabilities = [0.01, 0.05, 0.12, 0.25, 0.4, 0.7, 0.95]
    table = _updates([_account(f"a{i}", p) for i, p in enumerate(probabilities)])
    for row in table.to_pylist():
        assert row["action_confidence"] != pytest.approx(row["churn_risk"], abs=0.01)
        factors = row["model_reliability"] * row["data_freshness"] * row["identity_confidence"]
        assert row["action_confidence"] == pytest.approx(factors)
    # the least risky accounts are not the least sure ones
    low = [r for r in table.to_pylist() if r["churn_risk"] < 0.05]
    assert all(r["action_confidence"] > 0.9 for r in low)


def test_an_account_no_model_scores_gets_no_action():
    [row] = _updates(
        [_account("gone", None, last_recorded_on=AS_OF - timedelta(days=300))]
    ).to_pylist()
    assert row["next_best_action"] == "none" and row["action_confidence"] == 1.0
    assert row["health_score"] is None  # no churn score: no health score either
    assert row["confidence_note"].startswith("no model scores the account: not in the churn")


def test_freshness_halves_with_each_further_stale_period():
    ages = {"d31": 31, "d62": 62, "d93": 93}
    table = _updates(
        [_account(k, 0.02, last_recorded_on=AS_OF - timedelta(days=v)) for k, v in ages.items()]
    )
    freshness = {r["account_id"]: r["data_freshness"] for r in table.to_pylist()}
    assert freshness == pytest.approx({"d31": 1.0, "d62": 0.5, "d93": 0.25})
    longer = _updates([_account("d62", 0.02, last_recorded_on=AS_OF - timedelta(days=62))], 62)
    assert longer["data_freshness"].to_pylist() == [1.0]  # the setting is read at run time


@pytest.mark.parametrize("base_rate", [0.02, 0.06, 0.2, 0.45])
def test_bands_follow_the_models_base_rate(base_rate):
    """A calibrated model on a company where the outcome is rare or common: its riskiest
    accounts are high, its average accounts are not, and the high band's support comes from
    outcomes."""
    rng = np.random.default_rng(3)
    logit = rng.normal(np.log(base_rate / (1 - base_rate)), 1.2, 6000)
    p = 1 / (1 + np.exp(-logit))
    y = rng.random(p.size) < p
    evidence = measure(p, y, ["d1", "d2", "d3"])
    assert evidence.base_rate == pytest.approx(y.mean())
    assert evidence.medium < evidence.high < 1
    bands = evidence.band(p)
    assert 0.02 < bands.count("high") / p.size < 0.5
    assert evidence.band(np.array([evidence.base_rate])) == ["low"]
    assert evidence.support("high") > 0.9 and evidence.support("low") > 0.9


def test_the_model_asset_records_each_versions_band_evidence(full_lake: Lakehouse):
    from mlflow import MlflowClient

    from assets.ml import SPECS
    from assets.ml.bands import recorded
    from assets.ml.models import aliases

    uri = full_lake.resources["mlflow"].uri(str(full_lake.lake_root))
    for spec in SPECS:
        version = aliases(spec.model_name, uri)["champion"]
        evidence = recorded(spec.model_name, version, uri)
        assert evidence is not None and set(evidence.holdout) == {"low", "medium", "high"}
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        run = client.get_run(client.get_model_version(spec.model_name, version).run_id)
        holdout_rows = sum(n for n, _ in evidence.holdout.values())
        assert holdout_rows == run.data.metrics["n_holdout"]
        assert evidence.base_rate == pytest.approx(run.data.metrics["base_rate"])
        scores = full_lake.lake.read("ml", f"{spec.kind}_scores").to_pylist()
        for s in (s for s in scores if s["model_version"] == version):
            assert s["risk_band"] == evidence.band(np.array([s["probability"]]))[0]


def test_on_the_demo_lake_confidence_is_not_the_churn_risk(full_lake: Lakehouse):
    """The reported fault: a retention call's confidence was its churn probability."""
    updates = full_lake.lake.read("reverse_etl", "crm_account_updates").to_pylist()
    calls = [u for u in updates if u["next_best_action"] == "retention_call"]
    assert calls
    assert all(u["action_confidence"] != pytest.approx(u["churn_risk"]) for u in calls)


def test_evidence_counted_under_other_thresholds_is_not_used():
    """Holdout counts belong to the thresholds they were counted with: once the odds ratios
    change, a version's recorded counts are dropped (and counted again by its model asset)."""
    stored = json.loads(CHURN.to_json())
    assert BandEvidence.from_json(json.dumps(stored)) == CHURN
    stored["thresholds"]["high"] = 0.30  # the old fixed threshold
    assert BandEvidence.from_json(json.dumps(stored)).holdout == {}
