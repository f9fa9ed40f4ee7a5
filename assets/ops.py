"""Operations: failed runs, recorded where people look. The run-failure sensor appends one row
per failed step to `ops/run_failures` (a Delta table) and reports it as an event of that asset,
so the UI's asset page lists every failure with its run, asset and error."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetMaterialization,
    AssetSpec,
    DefaultSensorStatus,
    MetadataValue,
    RunFailureSensorContext,
    asset_check,
    run_failure_sensor,
)

from assets.gated import SUITE_CHECK, table_key, tags_of
from assets.metadata import OWNER, definition_metadata
from checks.gate import validate
from checks.ops import MAX_ERROR, RUN_FAILURES
from resources.lake import LakeResource

KEY = table_key(RUN_FAILURES)

# Written by a sensor, not a run: an external asset, with the contract's shared metadata.
run_failures_spec = AssetSpec(
    key=KEY,
    description=RUN_FAILURES.description,
    group_name=RUN_FAILURES.group_name,
    kinds={"delta", "great_expectations"},
    owners=[OWNER],
    tags=tags_of(RUN_FAILURES),
    metadata=definition_metadata(RUN_FAILURES),
)


@asset_check(
    asset=KEY,
    name=SUITE_CHECK,
    description=f"Great Expectations suite of {RUN_FAILURES.name}: the sensor runs it on each "
    "batch before appending it and reports the result here; run it to validate the table.",
)
def run_failures_suite(lake: LakeResource) -> AssetCheckResult:
    """The whole table as it stands, by its contract's suite."""
    c = RUN_FAILURES
    gate = validate(c.name, c.suite(), lake.read(c.layer, c.table).cast(c.schema))
    return gate.check_result(KEY, SUITE_CHECK, lake.data_docs)


def failure_rows(context: RunFailureSensorContext, now: datetime) -> list[dict]:
    run = context.dagster_run
    steps = context.get_step_failure_events()
    base = {"failed_at": now, "run_id": run.run_id, "job": run.job_name}
    if not steps:
        message = context.failure_event.message or "run failed"
        return [{**base, "step": None, "asset": None, "error": message[:MAX_ERROR]}]
    rows = []
    for event in steps:
        error = event.event_specific_data.error
        text = error.message if error else (event.message or "step failed")
        asset = event.asset_key.to_user_string() if event.asset_key else None
        if asset is None and event.step_key and "__" in event.step_key:
            asset = event.step_key.replace("__", "/")
        rows.append({**base, "step": event.step_key, "asset": asset, "error": text[:MAX_ERROR]})
    return rows


@run_failure_sensor(
    name="run_failures_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    description="Every failed run -> rows in ops/run_failures and an event on that asset.",
)
def run_failures_sensor(context: RunFailureSensorContext, lake: LakeResource) -> None:
    """Validates the rows with the table's suite before appending them: a batch that breaks it
    fails the tick (the table keeps its previous version) with the suite's report."""
    rows = failure_rows(context, datetime.now(UTC))
    c = RUN_FAILURES
    table = pa.Table.from_pylist(rows, c.schema)
    gate = validate(c.name, c.suite(), table)
    if not gate.passed:
        failed = gate.check_result(KEY, SUITE_CHECK, lake.data_docs)
        context.instance.report_runless_asset_event(_evaluation(failed))
        raise gate.failure(f"{c.name} ({table.num_rows} rows)")
    lake.publish(c.layer, c.table, table, description=c.description)
    run = context.dagster_run
    context.instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key=KEY,
            description=f"run {run.run_id} of {run.job_name} failed",
            metadata={
                "run_id": run.run_id,
                "job": run.job_name,
                "failed_assets": MetadataValue.json(sorted({r["asset"] or "" for r in rows})),
                "error": MetadataValue.md("```\n" + rows[0]["error"][:800] + "\n```"),
            },
        )
    )
    context.instance.report_runless_asset_event(
        _evaluation(gate.check_result(KEY, SUITE_CHECK, lake.data_docs))
    )


def _evaluation(result: AssetCheckResult) -> AssetCheckEvaluation:
    """A check result reported outside a run (a sensor has no step to yield it from)."""
    return AssetCheckEvaluation(
        asset_key=KEY,
        check_name=SUITE_CHECK,
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
    )


assets = [run_failures_spec, run_failures_suite]
sensors = [run_failures_sensor]
