"""Settings come from the environment as Dagster `EnvVar`s; unset ones keep the embedded default.

An `EnvVar` is resolved when a run starts and shown by name (never by value) in the UI, which is
what secrets need; the embedded default must still run with nothing set.
"""

from __future__ import annotations

import os

from dagster import EnvVar

LAKE_ROOT = "LAKEHOUSE_LAKE_ROOT"
LANDING_ROOT = "LAKEHOUSE_LANDING_ROOT"


def from_env(**fields: str) -> dict[str, EnvVar]:
    """Map resource fields to the environment variables that are set."""
    return {field: EnvVar(var) for field, var in fields.items() if os.environ.get(var)}
