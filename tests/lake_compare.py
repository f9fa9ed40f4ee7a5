"""What two correct builds over the same input must agree on: every Delta table's rows, in a
canonical order, without the columns that record when or by which run they were written. The
fault suite (idempotence, crashes, concurrency) and the distributed suite compare lakes this way.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

# Columns that say when or by which run something happened: two correct runs differ there.
# Everywhere (these names mean run time in every table that has them):
VOLATILE = frozenset(
    {
        "_ingested_at",
        "_built_at",
        "ingested_at",
        "quarantined_at",
        "file_mtime_ns",
        "raw_version",
        "dagster_run_id",
        "run_id",
        "scored_run_at",
        "synced_at",
        "queued_at",
        "attempted_at",
        "decided_at",
        "validated_at",
        "delta_version",
        "dataset_version",
    }
)
# In one table only (elsewhere the same name is data, e.g. a consent record's recorded_at):
VOLATILE_IN = {
    "entities/identity_links": frozenset({"linked_at"}),  # when the run linked the record
    "entities/unmapped_ids": frozenset({"detected_at"}),  # when a run first saw the gap
    "entities/identity_merges": frozenset({"recorded_at"}),  # when the run recorded the merge
    "reverse_etl/sync_audit": frozenset({"sync_id", "actor"}),  # a uuid and the run per sync
}


def volatile(path: Path) -> frozenset[str]:
    """The run-time columns of the table at `path` (`<lake>/<layer>/<table>`)."""
    return VOLATILE | VOLATILE_IN.get("/".join(path.parts[-2:]), frozenset())


def delta_tables(lake_root: Path) -> list[Path]:
    """Every Delta table under a lake root (a folder holding `_delta_log`)."""
    return sorted(p.parent for p in lake_root.rglob("_delta_log") if p.is_dir())


def table_content(
    path: Path | str, ignore: frozenset[str] | None = None, storage_options=None
) -> pa.Table:
    """A table's rows in a canonical order, without its run-time columns (`volatile`); `path`
    is a folder or an object-store URI (with delta-rs `storage_options`)."""
    ignore = volatile(Path(str(path))) if ignore is None else ignore
    table = DeltaTable(str(path), storage_options=storage_options).to_pyarrow_table()
    table = table.select([c for c in table.column_names if c not in ignore])
    sortable = [
        c
        for c in table.column_names
        if not pa.types.is_nested(table.schema.field(c).type)
        and not pa.types.is_binary(table.schema.field(c).type)
    ]
    return table.sort_by([(c, "ascending") for c in sortable]) if sortable else table


def lake_content(lake_root: Path) -> dict[str, pa.Table]:
    return {str(p.relative_to(lake_root)): table_content(p) for p in delta_tables(lake_root)}
