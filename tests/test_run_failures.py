"""ops/run_failures is gated like every table: the run-failure sensor validates each batch with
the table's suite before appending it, reports the result as the table's `gx_suite` check, and
a batch that breaks the suite leaves the table at its previous version."""

from __future__ import annotations

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    EventRecordsFilter,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from checks.ops import RUN_FAILURES
from resources.lake import LakeResource


@asset
def breaks() -> None:
    raise RuntimeError("the source answered 500")


def _failed_run_sensor_context(instance: DagsterInstance, lake: LakeResource):
    failed = materialize([breaks], instance=instance, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name="run_failures_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
        resources={"lake": lake},
    ).for_run_failure()
    return failed, context


def _suite_results(instance: DagsterInstance) -> list[bool]:
    """The table's gx_suite results the sensor reported, oldest first."""
    records = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True
    )
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    key = AssetKey([RUN_FAILURES.layer, RUN_FAILURES.table])
    return [e.passed for e in evaluations if e.asset_key == key and e.check_name == "gx_suite"]


def test_a_failed_run_is_appended_after_its_rows_pass_the_suite(tmp_path):
    from assets.ops import run_failures_sensor

    instance, lake = DagsterInstance.ephemeral(), LakeResource(root=str(tmp_path / "lake"))
    failed, context = _failed_run_sensor_context(instance, lake)
    run_failures_sensor(context)
    rows = lake.read(RUN_FAILURES.layer, RUN_FAILURES.table).to_pylist()
    assert [(r["run_id"], r["step"]) for r in rows] == [(failed.run_id, "breaks")]
    assert 'op "breaks"' in rows[0]["error"]
    assert _suite_results(instance) == [True]


def test_rows_that_break_the_suite_are_not_appended(tmp_path, monkeypatch):
    import assets.ops as ops

    instance, lake = DagsterInstance.ephemeral(), LakeResource(root=str(tmp_path / "lake"))
    first, context = _failed_run_sensor_context(instance, lake)
    ops.run_failures_sensor(context)
    version = lake.version(RUN_FAILURES.layer, RUN_FAILURES.table)

    rows = ops.failure_rows
    monkeypatch.setattr(ops, "failure_rows", lambda *a: rows(*a) * 2)  # the same step twice
    _, again = _failed_run_sensor_context(instance, lake)
    with pytest.raises(Exception, match="failed its quality gate"):
        ops.run_failures_sensor(again)
    assert lake.version(RUN_FAILURES.layer, RUN_FAILURES.table) == version
    assert lake.read(RUN_FAILURES.layer, RUN_FAILURES.table)["run_id"].to_pylist() == [first.run_id]
    assert _suite_results(instance) == [True, False]
