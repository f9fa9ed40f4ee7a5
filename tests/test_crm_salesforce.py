"""Salesforce as the CRM destination, against its stand-in org: what a RevOps engineer relies on.

Every account update reaches its Account's lakehouse fields exactly once, through the org's
REQUEST_LIMIT_EXCEEDED refusals, in sObject Collections of at most 200; a record the org
refuses inside a collection is audited failed alone and succeeds on the next sync; nothing
unmatched creates an account; missing custom fields and a wrong token fail naming what to fix.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from assets.reverse_etl.sync import sync
from checks.reverse_etl import CRM_ACCOUNT_UPDATES, SYNC_STATE
from resources.crm import CrmResource
from resources.crm_http import Retry
from resources.destinations_salesforce import (
    FIELDS,
    SalesforceDestination,
    SalesforceDestinationError,
)
from sample_company.standins.salesforce import API, SalesforceStandIn

TOKEN = "00Dxx0000001gPL!test"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
STAMP = datetime(2026, 1, 1, tzinfo=UTC)
IDS = [f"001Lk{i:010d}" for i in range(450)]
PLANTED = IDS[3], IDS[250], IDS[449]


def updates(ids: list[str], churn: float = 0.3) -> pa.Table:
    rows = [
        {
            "crm_account_id": cid,
            "account_id": f"acc_{n}",
            "churn_risk": churn,
            "churn_risk_band": "medium",
            "expansion_propensity": 0.1,
            "expansion_band": "low",
            "lifecycle_stage": "paying",
            "health_score": 70,
            "next_best_action": "monitor",
            "top_reasons": json.dumps(["usage fell 10% month over month"]),
            "churn_model_version": "3",
            "expansion_model_version": "2",
            "data_age_days": 1,
            "identity_confidence": 1.0,
            "consent_crm_sync": True,
            "model_reliability": 1.0,
            "data_freshness": 1.0,
            "action_confidence": 0.9,
            "confidence_note": "model 1.00 x data 1.00 x identity 0.90",
        }
        for n, cid in enumerate(ids)
    ]
    return (
        pa.Table.from_pylist(rows)
        .select(CRM_ACCOUNT_UPDATES.schema.names)
        .cast(CRM_ACCOUNT_UPDATES.schema)
    )


@pytest.fixture
def org():
    with SalesforceStandIn(token=TOKEN) as standin:
        standin.clock = NOW
        for cid in IDS:
            standin.versions["Account"][cid] = [(STAMP, {"Id": cid, "Name": f"Company {cid}"})]
        yield standin


def destination(org, **kw) -> SalesforceDestination:
    waits = kw.pop("sleep", lambda s: None)
    return SalesforceDestination(org.url, TOKEN, retry=Retry(backoff=0.5, sleep=waits), **kw)


def run(table, state, dest, sync_id):
    return sync(table, state, dest, threshold=0.5, now=NOW, sync_id=sync_id)


def test_sync_through_request_limits_delivers_each_record_once(org):
    org.faults.rate_limit_every = 3  # 403 REQUEST_LIMIT_EXCEEDED
    for cid in PLANTED:
        org.reject[cid] = 1
    waits: list[float] = []
    table = updates(IDS)
    first = run(table, SYNC_STATE.schema.empty_table(), destination(org, sleep=waits.append), "1")
    failed = {
        r["crm_account_id"]: r["error"] for r in first.audit.to_pylist() if r["status"] == "failed"
    }
    assert set(failed) == set(PLANTED)
    assert all(e.startswith("UNABLE_TO_LOCK_ROW") for e in failed.values())
    assert [r.status for r in org.log].count(403) > 0 and waits  # refused, waited, retried
    second = run(table, first.state, destination(org), "2")
    assert second.counts["sent"] == 3 and second.counts["failed"] == 0
    assert org.writes == Counter(dict.fromkeys(IDS, 1))  # every account set exactly once
    sent = Counter(
        r["crm_account_id"]
        for s in (first, second)
        for r in s.audit.to_pylist()
        if r["status"] == "sent"
    )
    assert sent == Counter(dict.fromkeys(IDS, 1))
    assert org.written[IDS[0]] == {
        "Churn_Risk__c": 0.3,
        "Churn_Risk_Band__c": "medium",
        "Expansion_Propensity__c": 0.1,
        "Lifecycle_Stage__c": "paying",
        "Health_Score__c": 70,
        "Next_Best_Action__c": "monitor",
        "Action_Confidence__c": 0.9,
        "Top_Reasons__c": "usage fell 10% month over month",
        "Churn_Model_Version__c": "3",
        "Expansion_Model_Version__c": "2",
    }
    # collections of at most 200: 450 records in 3 accepted calls, then 1 for the retry
    accepted = [r for r in org.requests("composite/sobjects") if r.status == 200]
    assert len(accepted) == 4


def test_limit_that_does_not_lift_fails_the_batch_for_the_next_sync(org):
    org.faults.rate_limit_every = 1  # every call refused
    result = run(updates(IDS[:5]), SYNC_STATE.schema.empty_table(), destination(org), "1")
    assert result.counts["failed"] == 5 and result.counts["sent"] == 0
    assert all("REQUEST_LIMIT_EXCEEDED" in r["error"] for r in result.audit.to_pylist())
    assert result.state.num_rows == 0 and org.writes == Counter()


def test_unknown_id_fails_alone_and_creates_nothing(org):
    table = updates([IDS[0], "001Lk9999999999", IDS[1]])
    result = run(table, SYNC_STATE.schema.empty_table(), destination(org), "1")
    status = {r["crm_account_id"]: (r["status"], r["error"]) for r in result.audit.to_pylist()}
    assert status[IDS[0]][0] == status[IDS[1]][0] == "sent"
    assert status["001Lk9999999999"][0] == "failed"
    assert "INVALID_CROSS_REFERENCE_KEY" in status["001Lk9999999999"][1]
    assert "001Lk9999999999" not in org.written


def test_upsert_by_external_id_field(org):
    field = "Lakehouse_Key__c"
    org.fields["Account"][field] = "string"
    org.external_ids["Account"].add(field)
    for n, cid in enumerate(IDS[:3]):
        org.written[cid] = {field: f"acc-key-{n}"}
    dest = destination(org, external_id=field)
    results = dest.upsert(
        [
            {**r, "crm_account_id": f"acc-key-{n}"}
            for n, r in enumerate(updates(IDS[:2]).to_pylist())
        ]
        + [{**updates(["x"]).to_pylist()[0], "crm_account_id": "acc-key-unmatched"}],
        "crm_account_id",
    )
    assert [r.ok for r in results] == [True, True, False]
    assert "REQUIRED_FIELD_MISSING" in results[2].error  # never creates an account
    assert org.writes == Counter({IDS[0]: 1, IDS[1]: 1})
    assert [r.path for r in org.requests("composite")] == [
        f"{API}/composite/sobjects/Account/{field}"
    ]
    with pytest.raises(SalesforceDestinationError, match="not an External ID"):
        destination(org, external_id="Name").upsert(updates(IDS[:1]).to_pylist(), "crm_account_id")


def test_missing_custom_fields_are_named_before_anything_is_sent(org):
    del org.fields["Account"]["Top_Reasons__c"], org.fields["Account"]["Health_Score__c"]
    with pytest.raises(SalesforceDestinationError) as failure:
        destination(org).upsert(updates(IDS[:3]).to_pylist(), "crm_account_id")
    assert "Health_Score__c" in str(failure.value) and "Top_Reasons__c" in str(failure.value)
    assert org.writes == Counter()


def test_wrong_token_names_the_setting(org):
    dest = SalesforceDestination(org.url, "00Dwrong!token", retry=Retry(backoff=0))
    with pytest.raises(SalesforceDestinationError) as failure:
        dest.upsert(updates(IDS[:2]).to_pylist(), "crm_account_id")
    text = str(failure.value)
    assert "LAKEHOUSE_SALESFORCE_TOKEN" in text and "INVALID_SESSION_ID" in text
    assert "00Dwrong!token" not in text and TOKEN not in text
    with pytest.raises(ValueError, match="LAKEHOUSE_SALESFORCE_INSTANCE_URL"):
        CrmResource(kind="salesforce", salesforce_token="x").destination("/tmp/lake")


def test_delete_clears_the_fields_and_erase_has_nothing(org):
    dest = destination(org)
    dest.upsert(updates(IDS[:3]).to_pylist(), "crm_account_id")
    assert all(r.ok for r in dest.delete(IDS[:2], "crm_account_id"))
    assert org.written[IDS[0]] == dict.fromkeys(FIELDS.values())
    assert org.written[IDS[2]]["Churn_Risk__c"] == 0.3
    assert dest.erase(["someone@example.com"]).ok


def test_crm_resource_builds_it_from_settings(org):
    dest = CrmResource(
        kind="salesforce", salesforce_instance_url=org.url, salesforce_token=TOKEN
    ).destination("/tmp/lake")
    assert dest.name == f"salesforce:{org.url}/Account" and TOKEN not in dest.name
    assert all(r.ok for r in dest.upsert(updates(IDS[:2]).to_pylist(), "crm_account_id"))
