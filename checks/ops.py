"""Operations contracts: what the platform records about its own runs."""

from __future__ import annotations

from checks.contract import Column, TableContract, ts

MAX_ERROR = 2000  # characters of an error message kept

RUN_FAILURES = TableContract(
    layer="ops",
    table="run_failures",
    description=(
        "One row per failed step of a failed run (or one per run that failed before any step): "
        "when, which job and run, which asset, and the error. Written by run_failures_sensor. "
        "Key: (run_id, step)."
    ),
    columns=(
        ts("failed_at", "When the sensor saw the failure.", required=True),
        Column("run_id", required=True, description="The Dagster run that failed."),
        Column("job", required=True, description="The run's job."),
        Column("step", description="Dagster step key; null when the run failed outside a step."),
        Column("asset", description="Asset the step materializes (layer/table), when known."),
        Column(
            "error",
            required=True,
            description=f"The error message, first {MAX_ERROR:,} characters.",
        ),
    ),
    primary_key=("run_id", "step"),
)
