"""DuckDB in process, offline: no extension is installed or auto-loaded at run time.

Memory is bounded: DuckDB would otherwise take up to 80% of the machine per connection, and the
lakehouse's heaviest queries (a 2-year event history, the lifecycle day grid) spill to a private
temp directory instead. On the `make bench` lake the lifecycle step peaks at 2.7 GB RSS with the
2 GB default against 5.4 GB unbounded (21 s against 19 s).
"""

from __future__ import annotations

import os
import tempfile
import uuid

import duckdb
from dagster import ConfigurableResource
from pydantic import Field

OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
DEFAULT_MEMORY_LIMIT = "2GB"
# Money, scores and hours are summed as this type, not DOUBLE: DuckDB's parallel DOUBLE sums
# differ in the last bits from run to run, so identical builds gave different features (and
# training-set fingerprints). A DECIMAL sum is exact; the inputs carry at most 9 decimals.
EXACT = "DECIMAL(38, 9)"


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int] = dict(OFFLINE)
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
        # A directory of its own, created by DuckDB on the first spill and removed on close.
        config["temp_directory"] = os.path.join(
            tempfile.gettempdir(), f"lakehouse-duckdb-{uuid.uuid4().hex}"
        )
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")  # timestamps are UTC everywhere in the lake
    return con


class DuckDBResource(ConfigurableResource):
    """An in-memory DuckDB per use; Delta tables reach it as Arrow datasets."""

    threads: int | None = Field(default=None, description="DuckDB threads (default: all cores).")
    memory_limit: str | None = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="DuckDB's memory limit per connection (beyond it, queries spill to disk); "
        "None lets DuckDB take up to 80% of the machine.",
    )

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect(self.threads, self.memory_limit)
