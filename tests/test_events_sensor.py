"""events_days_sensor on a small company with a real Dagster instance: new raw rows launch one
events_days run per range of exactly the days they touched, once; a re-evaluated tick launches
nothing twice; days already queued wait; once the runs completed a tick says why it skips; a
failed raw gate upstream stops it until the gate passes."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, build_sensor_context, materialize

from assets.automation import STAGE_TAG
from assets.events.mapping import load_mapping
from assets.events.runs import EVENTS_KEY, LAUNCHED_BY, pending_ranges
from assets.events.sensor import events_days_sensor
from conftest import Lakehouse

END = date(2026, 10, 31)
NEW_DAY, LATE_DAY, NEXT_DAY = END + timedelta(days=1), END - timedelta(days=5), END + timedelta(2)


@pytest.fixture(scope="module")
def house(tmp_path_factory, defs):
    """A small company with its raw layer, entities and every event day built."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("events_sensor")
    generate(root / "landing", accounts=10, days=20, seed=8, end_date=END)
    h = Lakehouse(root / "lake", root / "landing", defs)
    h.instance = DagsterInstance.ephemeral()
    assert _ingest(h).success
    for first, last in _pending(h):
        assert h.materialize_days(first, last, instance=h.instance).success
    assert _pending(h) == []
    return h


def _ingest(h: Lakehouse):
    """What the events read: the raw tables and the entities upstream of them (the rest of
    the ingest job does not change what this sensor decides, and would only add time)."""
    from dagster import AssetSelection

    events = AssetSelection.assets(EVENTS_KEY)
    upstream = (events.upstream() - events).required_multi_asset_neighbors()
    keys = upstream.resolve(h.defs.resolve_asset_graph())
    return h.materialize(*(k.to_user_string() for k in sorted(keys)), instance=h.instance)


def _pending(h: Lakehouse) -> list[tuple[date, date]]:
    return pending_ranges(h.lake, h.resources["pii"], load_mapping(), None)


def _tick(h: Lakehouse, cursor: str | None):
    ctx = build_sensor_context(
        instance=h.instance,
        cursor=cursor,
        resources={"lake": h.lake, "pii": h.resources["pii"]},
        definitions=h.defs,
    )
    return events_days_sensor(ctx)


def _ranges(result) -> list[tuple[str, str]]:
    return [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in result.run_requests
    ]


def _skip(result) -> str:
    """The skip message of a tick that launched nothing."""
    skip = getattr(result, "skip_message", None) or result.skip_reason.skip_message
    assert not getattr(result, "run_requests", None)
    return skip


def _usage_rows(h: Lakehouse, *days: date) -> str:
    """One usage event on each day, by a real user of a real workspace."""
    user = h.lake.read("raw", "product_users", columns=["user_id", "workspace_id"]).to_pylist()[0]
    return "".join(
        json.dumps(
            {
                "event_id": f"evt-sensor-{d}",
                "workspace_id": user["workspace_id"],
                "user_id": user["user_id"],
                "event_type": "report_view",
                "timestamp": f"{d}T09:00:00Z",
                "session_id": "ses_sensor",
                "feature_adoption_score": 0.5,
            }
        )
        + "\n"
        for d in days
    )


def _run(h: Lakehouse, request):
    """What the daemon does with a run request: the job's asset, with the request's tags."""
    return materialize(
        list(h.defs.assets),
        selection=[EVENTS_KEY],
        resources=h.resources,
        instance=h.instance,
        tags=dict(request.tags),
        raise_on_error=False,
    )


def test_new_raw_rows_launch_their_days_once(house):
    h = house
    settled = _tick(h, None)
    assert _skip(settled).startswith("no event day pending")

    # a new day and an event six days late arrive; the ingest runs raw, then the entities
    h.drop(f"product/usage_events/{NEW_DAY}/usage_events.jsonl", _usage_rows(h, NEW_DAY, LATE_DAY))
    assert h.materialize(
        "landing/product_usage_events", "raw/product_usage_events", instance=h.instance
    ).success
    waiting = _tick(h, settled.cursor)  # the entities have not followed the new raw rows yet
    assert "entities/identity_links has not followed raw/product_usage_events" in _skip(waiting)
    assert _ingest(h).success

    first = _tick(h, settled.cursor)
    assert first.run_requests and events_days_sensor.job_name == "events_days"
    assert _ranges(first) == [(str(LATE_DAY), str(LATE_DAY)), (str(NEW_DAY), str(NEW_DAY))]
    for request in first.run_requests:
        assert request.tags[STAGE_TAG] == "events_days"
        assert request.tags[LAUNCHED_BY] == "events_days_sensor"
        assert request.run_key

    # the next tick, and a tick evaluated again (daemon restart before the cursor was stored):
    # nothing new to launch, and the same run keys, which Dagster launches once
    assert _skip(_tick(h, first.cursor)).startswith("no table the events read changed")
    again = _tick(h, settled.cursor)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]

    # days already queued (a backfill from the UI) wait for that run; the others go
    late, _ = first.run_requests
    queued = DagsterRun(
        job_name="events_days", run_id="queued", status=DagsterRunStatus.NOT_STARTED, tags=late.tags
    )
    h.instance.add_run(queued)
    assert _ranges(_tick(h, settled.cursor)) == [(str(NEW_DAY), str(NEW_DAY))]
    h.instance.delete_run("queued")

    for request in first.run_requests:
        assert _run(h, request).success
    assert _pending(h) == []
    done = _tick(h, None)
    assert _skip(done).startswith("no event day pending: none to build")
    got = h.lake.read("events", "events", columns=["source_id", "event_date"]).to_pylist()
    assert {
        (r["source_id"], r["event_date"]) for r in got if r["source_id"].startswith("evt-sensor")
    } == {
        (f"evt-sensor-{NEW_DAY}", NEW_DAY),
        (f"evt-sensor-{LATE_DAY}", LATE_DAY),
    }


def _contacts(with_id: bool) -> str:
    return json.dumps(
        [
            {
                "Id": f"003S{i:011d}" if with_id else None,
                "AccountId": None,
                "FirstName": "Sensor",
                "LastName": f"Person{i}",
                "Email": f"sensor.person{i}@example.org",
                "CreatedDate": f"{NEXT_DAY}T10:00:00Z",
                "LastModifiedDate": f"{NEXT_DAY}T10:00:00Z",
            }
            for i in range(20)
        ]
    )


def test_a_failed_raw_gate_upstream_launches_nothing_until_it_passes(house):
    h = house
    settled = _tick(h, None)
    h.drop(f"product/usage_events/{NEXT_DAY}/usage_events.jsonl", _usage_rows(h, NEXT_DAY))
    h.drop(f"crm/contacts/{NEXT_DAY}/contacts.json", _contacts(with_id=False))  # every Id null
    assert not _ingest(h).success
    assert _pending(h) == [(NEXT_DAY, NEXT_DAY)]  # new rows wait...
    blocked = _tick(h, settled.cursor)  # ...but not on a failed gate
    assert "the gate of raw/crm_contacts failed" in _skip(blocked)

    h.drop(f"crm/contacts/{NEXT_DAY}/contacts.json", _contacts(with_id=True))  # re-delivered
    assert _ingest(h).success
    follows = _tick(h, settled.cursor)
    assert _ranges(follows) == [(str(NEXT_DAY), str(NEXT_DAY))]


def test_days_past_the_loaded_partitions_are_held_back_not_requested():
    """A frozen extract that received newer data: the days the code location has partitions
    for are launched, the rest are named for a reload (a request for them would fail)."""
    from assets.events.days import Span
    from assets.events.sensor import clip

    loaded = Span(date(2026, 1, 1), END)
    inside, beyond = clip(
        [(date(2026, 10, 20), date(2026, 11, 3)), (date(2026, 11, 10), date(2026, 11, 10))], loaded
    )
    assert inside == [(date(2026, 10, 20), END)]
    assert beyond == [(NEW_DAY, date(2026, 11, 3)), (date(2026, 11, 10), date(2026, 11, 10))]
