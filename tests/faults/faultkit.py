"""What the fault suite's tests share (`from faultkit import ...`). Every module in this folder
sets `pytestmark = pytest.mark.faults` (deselected by default; `make faults` and CI run them); the
figures each test measures go to one JSON file that `docs/reliability.md` quotes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
FIGURES = ARTIFACTS / "faults" / "figures.json"
DRIVE = Path(__file__).with_name("drive.py")

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


def record(section: str, **figures: object) -> None:
    """Write figures (counts a person reads in docs/reliability.md) under `section` of the
    suite's JSON file, replacing that section's earlier figures."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    everything = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    everything[section] = {**figures, "recorded_at": dt.datetime.now(dt.UTC).isoformat()}
    FIGURES.write_text(json.dumps(everything, indent=2, sort_keys=True, default=str) + "\n")
    print(f"[faults] {section}: " + ", ".join(f"{k}={v}" for k, v in sorted(figures.items())))


def delta_tables(lake_root: Path) -> list[Path]:
    """Every Delta table under a lake root (a folder holding `_delta_log`)."""
    return sorted(p.parent for p in lake_root.rglob("_delta_log") if p.is_dir())


def table_content(path: Path, ignore: frozenset[str] | None = None) -> pa.Table:
    """A table's rows in a canonical order, without the columns that record when or by which
    run they were written: what two correct builds over the same input must agree on."""
    ignore = volatile(path) if ignore is None else ignore
    table = DeltaTable(str(path)).to_pyarrow_table()
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


def lake_env(lake: Path, landing: Path, home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run over `lake` and `landing` (on the instance at `home`, if any)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LAKEHOUSE_LAKE_ROOT": str(lake),
        "LAKEHOUSE_LANDING_ROOT": str(landing),
        **extra,
    }
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    return env


def drive(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """`drive.py` with `args` in a process of its own (see its docstring)."""
    return subprocess.run(
        [sys.executable, str(DRIVE), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
