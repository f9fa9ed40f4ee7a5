"""DuckDB in process, offline: no extension is installed or auto-loaded at run time."""

from __future__ import annotations

import duckdb
from dagster import ConfigurableResource
from pydantic import Field

OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int] = dict(OFFLINE)
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")  # timestamps are UTC everywhere in the lake
    return con


class DuckDBResource(ConfigurableResource):
    """An in-memory DuckDB per use; Delta tables reach it as Arrow datasets."""

    threads: int | None = Field(default=None, description="DuckDB threads (default: all cores).")
    memory_limit: str | None = Field(default=None, description="e.g. '4GB'.")

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect(self.threads, self.memory_limit)
