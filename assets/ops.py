"""Operations: failed runs, recorded where people look. The run-failure sensor appends one row
per failed step to `ops/run_failures` (a Delta table) and reports it as an event of that asset,
so the UI's asset page lists every failure with its run, asset and error."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DefaultSensorStatus,
    MetadataValue,
    RunFailureSensorContext,
    run_failure_sensor,
)

from assets.metadata import OWNER
from checks.contract import Column, TableContract
from resources.lake import LakeResource

RUN_FAILURES = TableContract(
    layer="ops",
    table="run_failures",
    description=(
        "One row per failed step of a failed run (or one per run that failed before any step): "
        "when, which job and run, which asset, and the error. Written by run_failures_sensor."
    ),
    columns=(
        Column("failed_at", "timestamp", required=True),
        Column("run_id", required=True),
        Column("job", required=True),
        Column("step", description="Dagster step key; null when the run failed outside a step."),
        Column("asset", description="Asset the step materializes (layer/table), when known."),
        Column("error", required=True, description="The error message, first 2,000 characters."),
    ),
)
KEY = AssetKey([RUN_FAILURES.layer, RUN_FAILURES.table])
MAX_ERROR = 2000

run_failures_spec = AssetSpec(
    key=KEY,
    description=RUN_FAILURES.description,
    group_name="ops",
    kinds={"delta"},
    owners=[OWNER],
    tags={"layer": "ops", "pii": "false"},
)


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
    rows = failure_rows(context, datetime.now(UTC))
    c = RUN_FAILURES
    lake.publish(c.layer, c.table, pa.Table.from_pylist(rows, c.schema), description=c.description)
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


assets = [run_failures_spec]
sensors = [run_failures_sensor]
