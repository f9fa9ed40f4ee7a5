"""HubSpot as the CRM destination, against its write stand-in: what a RevOps engineer relies on.

Every consented, confident account update reaches its company's properties exactly once, through
429s with Retry-After; a company HubSpot refuses inside a 207 batch is audited failed alone and
succeeds on the next sync; the lakehouse's properties are created once, when missing; a wrong
token fails naming the setting; the real sync asset drives it end to end.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import requests

from assets.reverse_etl.sync import sync
from checks.reverse_etl import CRM_ACCOUNT_UPDATES, SYNC_STATE
from resources.crm import CrmResource
from resources.crm_http import Retry
from resources.destinations_hubspot import PROPERTIES, HubSpotDestination, HubSpotDestinationError
from sample_company.standins.hubspot_write import HubSpotWriteStandIn

TOKEN = "pat-na1-test-9c1e"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
IDS = [str(35349000000 + i) for i in range(250)]
PLANTED = IDS[7], IDS[120], IDS[233]  # refused once each inside a 207


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
            "top_reasons": json.dumps(["usage fell 10% month over month", "2 open tickets"]),
            "churn_model_version": "3",
            "expansion_model_version": None,
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
def portal():
    with HubSpotWriteStandIn(companies=IDS, token=TOKEN) as standin:
        standin.faults.retry_after = 0
        yield standin


def destination(portal, **retry) -> HubSpotDestination:
    return HubSpotDestination(TOKEN, portal.url, retry=Retry(**{"backoff": 0, **retry}))


def run(table, state, dest, sync_id):
    return sync(table, state, dest, threshold=0.5, now=NOW, sync_id=sync_id)


def test_sync_through_rate_limits_delivers_each_record_once(portal):
    portal.faults.rate_limit_every = 3
    for cid in PLANTED:
        portal.reject[cid] = 1
    table = updates(IDS)
    first = run(table, SYNC_STATE.schema.empty_table(), destination(portal), "s1")
    audit = first.audit.to_pylist()
    failed = {r["crm_account_id"]: r["error"] for r in audit if r["status"] == "failed"}
    assert set(failed) == set(PLANTED) and all("CONFLICT" in e for e in failed.values())
    assert first.counts["sent"] == len(IDS) - 3
    assert [r.status for r in portal.log].count(429) > 0
    # the next sync sends only the three, and they succeed
    second = run(table, first.state, destination(portal), "s2")
    assert second.counts == {**second.counts, "sent": 3, "failed": 0}
    assert {r["crm_account_id"] for r in second.audit.to_pylist()} == set(PLANTED)
    assert portal.writes == Counter(dict.fromkeys(IDS, 1))  # every company set exactly once
    sent = Counter(
        r["crm_account_id"]
        for s in (first, second)
        for r in s.audit.to_pylist()
        if r["status"] == "sent"
    )
    assert sent == Counter(dict.fromkeys(IDS, 1))
    company = portal.companies[IDS[0]]
    assert company["lakehouse_churn_risk"] == 0.3 and company["lakehouse_health_score"] == 70
    assert company["lakehouse_top_reasons"] == "usage fell 10% month over month\n2 open tickets"
    assert company["lakehouse_expansion_model_version"] == ""  # None clears the property
    # batches of at most 100 inputs: 3 accepted calls for 250 companies, then 1 for the retry
    updates_ok = [r for r in portal.requests("batch/update") if r.status in (200, 207)]
    assert len(updates_ok) == 4


def test_retry_after_is_honoured(portal):
    portal.faults.retry_after = 2
    portal.faults.rate_limit_every = 2
    waits: list[float] = []
    dest = destination(portal, sleep=waits.append)
    results = dest.upsert(updates(IDS[:150]).to_pylist(), "crm_account_id")
    assert all(r.ok for r in results)
    assert waits and set(waits) == {2.0}  # each 429 waited what HubSpot asked
    assert portal.writes == Counter(dict.fromkeys(IDS[:150], 1))


def test_properties_created_once_when_missing(portal):
    portal.properties["lakehouse_health_score"] = {
        "name": "lakehouse_health_score",
        "type": "number",
        "fieldType": "number",
        "groupName": "companyinformation",
    }
    dest = destination(portal)
    dest.upsert(updates(IDS[:5]).to_pylist(), "crm_account_id")
    names = [p[0] for p in PROPERTIES.values()]
    assert sorted(dest.created) == sorted(n for n in names if n != "lakehouse_health_score")
    assert portal.groups["lakehouse"]["label"] == "Lakehouse scores"
    assert portal.properties["lakehouse_churn_risk"]["type"] == "number"
    assert portal.properties["lakehouse_top_reasons"]["fieldType"] == "textarea"
    posts = len([r for r in portal.log if r.method == "POST" and "properties" in r.path])
    again = destination(portal)  # the next sync: every property is there
    again.upsert(updates(IDS[:5], churn=0.4).to_pylist(), "crm_account_id")
    assert again.created == []
    assert len([r for r in portal.log if r.method == "POST" and "properties" in r.path]) == posts
    assert posts == len(names) - 1 + 1  # nine properties and the group


def test_unknown_company_is_audited_failed_alone(portal):
    table = updates([IDS[0], "99999999999", IDS[1]])
    result = run(table, SYNC_STATE.schema.empty_table(), destination(portal), "s")
    status = {r["crm_account_id"]: (r["status"], r["error"]) for r in result.audit.to_pylist()}
    assert status[IDS[0]] == ("sent", None) and status[IDS[1]] == ("sent", None)
    assert status["99999999999"][0] == "failed" and "OBJECT_NOT_FOUND" in status["99999999999"][1]
    assert "99999999999" not in result.state["crm_account_id"].to_pylist()


def test_wrong_token_names_the_setting(portal):
    dest = HubSpotDestination("pat-wrong-123", portal.url, retry=Retry(backoff=0))
    with pytest.raises(HubSpotDestinationError) as failure:
        dest.upsert(updates(IDS[:2]).to_pylist(), "crm_account_id")
    assert "LAKEHOUSE_HUBSPOT_TOKEN" in str(failure.value)
    assert "INVALID_AUTHENTICATION" in str(failure.value)
    assert "pat-wrong-123" not in str(failure.value) and TOKEN not in str(failure.value)
    assert portal.writes == Counter()
    with pytest.raises(ValueError, match="LAKEHOUSE_HUBSPOT_TOKEN"):
        CrmResource(kind="hubspot").destination("/tmp/lake")


def test_delete_clears_the_properties_and_erase_has_nothing(portal):
    dest = destination(portal)
    dest.upsert(updates(IDS[:3]).to_pylist(), "crm_account_id")
    results = dest.delete(IDS[:2], "crm_account_id")
    assert all(r.ok for r in results)
    assert portal.companies[IDS[0]]["lakehouse_churn_risk"] == ""
    assert portal.companies[IDS[2]]["lakehouse_churn_risk"] == 0.3
    assert IDS[0] in portal.companies  # the company itself stays
    assert dest.erase(["someone@example.com"]).ok


def test_standin_serves_a_vendor_landing_and_hubspot_bodies(tmp_path):
    from sample_company.generate import generate

    generate(tmp_path, accounts=12, days=20, stack="vendor")
    with HubSpotWriteStandIn(tmp_path, token=TOKEN) as standin:
        assert len(standin.companies) >= 10
        cid = next(iter(standin.companies))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{standin.url}/crm/v3/objects/companies/batch/update"
        too_many = {"inputs": [{"id": cid, "properties": {"name": "x"}}] * 101}
        answer = requests.post(url, json=too_many, headers=headers)
        assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"
        unknown = {"inputs": [{"id": cid, "properties": {"nope": "x"}}]}
        answer = requests.post(url, json=unknown, headers=headers)
        assert answer.status_code == 400 and "PROPERTY_DOESNT_EXIST" in answer.json()["message"]
        answer = requests.post(url, json=unknown)
        assert answer.status_code == 401
        assert answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_the_sync_asset_sends_to_hubspot(portal, tmp_path):
    """sync_to_crm, as Dagster runs it, with the hubspot kind configured."""
    from dagster import AssetKey, DagsterInstance, materialize

    from assets.reverse_etl import sync_to_crm
    from resources.lake import LakeResource

    lake = LakeResource(root=str(tmp_path / "lake"))
    c = CRM_ACCOUNT_UPDATES
    lake.publish(c.layer, c.table, updates(IDS[:120]), description=c.description)
    portal.faults.rate_limit_every = 4
    portal.reject[IDS[5]] = 1
    crm = CrmResource(kind="hubspot", hubspot_token=TOKEN, hubspot_base_url=portal.url)
    for _ in range(2):
        result = materialize(
            [sync_to_crm],
            resources={"lake": lake, "crm": crm},
            instance=DagsterInstance.ephemeral(),
            selection=[
                AssetKey(["reverse_etl", "sync_audit"]),
                AssetKey(["reverse_etl", "sync_state"]),
                AssetKey(["reverse_etl", "review_queue"]),
            ],
        )
        assert result.success
    audit = lake.read("reverse_etl", "sync_audit").to_pylist()
    statuses = Counter((r["crm_account_id"], r["status"]) for r in audit)
    assert statuses[(IDS[5], "failed")] == 1 and statuses[(IDS[5], "sent")] == 1
    assert Counter(r["crm_account_id"] for r in audit if r["status"] == "sent") == Counter(
        dict.fromkeys(IDS[:120], 1)
    )
    assert portal.writes == Counter(dict.fromkeys(IDS[:120], 1))
    assert {r["destination"] for r in audit} == {f"hubspot:{portal.url}/companies"}
