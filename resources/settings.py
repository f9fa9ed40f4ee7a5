"""Settings come from the environment as Dagster `EnvVar`s; unset ones keep the embedded default.

An `EnvVar` is resolved when a run starts and shown by name (never by value) in the UI, which is
what secrets need; the embedded default must still run with nothing set.
"""

from __future__ import annotations

import os

from dagster import EnvVar

LAKE_ROOT = "LAKEHOUSE_LAKE_ROOT"
LANDING_ROOT = "LAKEHOUSE_LANDING_ROOT"
LANDING_IGNORE = "LAKEHOUSE_LANDING_IGNORE"  # comma-separated name patterns of partial files
FUTURE_TOLERANCE = "LAKEHOUSE_FUTURE_TOLERANCE_HOURS"  # how far past the clock a date may lie


def from_env(**fields: str) -> dict[str, EnvVar]:
    """Map resource fields to the environment variables that are set."""
    return {field: EnvVar(var) for field, var in fields.items() if os.environ.get(var)}


def int_from_env(**fields: str) -> dict[str, EnvVar]:
    """As `from_env`, for integer fields."""
    return {field: EnvVar.int(var) for field, var in fields.items() if os.environ.get(var)}
