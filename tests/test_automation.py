"""Declarative automation below raw, with a real Dagster instance: new raw data makes the
entities follow; a raw gate failure stops them, even when the raw table materialized since the
last tick (then eager() alone would follow); the failure is recorded in ops/run_failures."""

from __future__ import annotations

import json
from datetime import date

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    evaluate_automation_conditions,
    materialize,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from assets.automation import AUTOMATED_GROUPS
from assets.gated import SUITE_CHECK
from checks.sources import raw_contracts
from conftest import Lakehouse

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

ENTITIES = AssetSelection.groups(*AUTOMATED_GROUPS)
RAW = AssetSelection.assets(*(AssetKey(["raw", c.table]) for c in RAW_TABLES))


def _contacts(n: int, with_id: bool, first: int = 0) -> str:
    rows = [
        {
            "Id": f"003T{i:011d}" if with_id else None,
            "AccountId": None,
            "FirstName": "Test",
            "LastName": f"Person{i}",
            "Email": f"test.person{i}@example.org",
            "CreatedDate": "2026-11-20T10:00:00Z",
            "LastModifiedDate": "2026-11-20T10:00:00Z",
        }
        for i in range(first, first + n)
    ]
    return json.dumps(rows)


@pytest.fixture(scope="module")
def house(tmp_path_factory, defs):
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("automation")
    generate(root / "landing", accounts=30, days=40, seed=4, end_date=date(2026, 10, 31))
    h = Lakehouse(root / "lake", root / "landing", defs)
    h.instance = DagsterInstance.ephemeral()
    return h


def _run(h: Lakehouse, selection):
    return materialize(
        list(h.defs.assets),
        selection=selection,
        resources=h.resources,
        instance=h.instance,
        raise_on_error=False,
    )


def _requested(h: Lakehouse, cursor=None):
    result = evaluate_automation_conditions(
        defs=h.defs, instance=h.instance, asset_selection=ENTITIES, cursor=cursor
    )
    keys = ENTITIES.resolve(h.defs.resolve_asset_graph())
    return result, {k.to_user_string() for k in keys if result.get_num_requested(k)}


def test_entities_follow_raw_only_when_its_gates_passed(house):
    baseline, requested = _requested(house)  # the sensor's first tick only takes stock
    assert requested == set()
    assert _run(house, RAW).success
    first, requested = _requested(house, baseline.cursor)
    assert "entities/identity_links" in requested and "entities/person" in requested

    assert _run(house, ENTITIES).success
    settled, requested = _requested(house, first.cursor)
    assert requested == set()  # nothing new upstream: nothing to do

    # Between two ticks, raw/crm_contacts materializes a good extract, then its next extract
    # (every record lacks its id) fails the gate. The raw table did change since the last tick,
    # so eager() alone would request the entities; the latest result of its blocking gate is a
    # failure on that very materialization, so nothing may follow.
    contacts = AssetKey(["raw", "crm_contacts"])
    house.drop("crm/contacts/2026-11-19/contacts.json", _contacts(5, with_id=True, first=100))
    good = _run(house, [contacts])
    assert good.success
    house.drop("crm/contacts/2026-11-20/contacts.json", _contacts(20, with_id=False))
    failed = _run(house, [contacts])
    assert not failed.success
    materialized = house.instance.get_latest_materialization_event(contacts)
    assert materialized is not None and materialized.run_id == good.run_id  # since the tick
    gate = house.instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(contacts, SUITE_CHECK), limit=1
    )
    assert [(g.run_id, g.status) for g in gate] == [
        (failed.run_id, AssetCheckExecutionRecordStatus.FAILED)
    ]
    after_failure, requested = _requested(house, settled.cursor)
    assert requested == set()

    # the failure is recorded where people look
    from assets.ops import run_failures_sensor

    failure = next(e for e in failed.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    ctx = build_run_status_sensor_context(
        sensor_name="run_failures_sensor",
        dagster_event=failure,
        dagster_instance=house.instance,
        dagster_run=failed.dagster_run,
        resources={"lake": house.lake},
    ).for_run_failure()
    run_failures_sensor(ctx)
    rows = house.lake.read("ops", "run_failures").to_pylist()
    assert [(r["run_id"], r["asset"]) for r in rows] == [(failed.run_id, "raw/crm_contacts")]
    assert "quarantine" in rows[0]["error"] or "gx" in rows[0]["error"].lower()
    latest = house.instance.get_latest_materialization_event(AssetKey(["ops", "run_failures"]))
    assert latest is not None and latest.asset_materialization.metadata["run_id"].value == (
        failed.run_id
    )

    # a good extract passes the gate, and the entities follow again
    house.drop("crm/contacts/2026-11-20/contacts.json", _contacts(20, with_id=True))
    assert _run(house, [AssetKey(["raw", "crm_contacts"])]).success
    _, requested = _requested(house, after_failure.cursor)
    assert "entities/identity_links" in requested
