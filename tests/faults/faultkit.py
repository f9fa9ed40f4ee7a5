"""What the fault suite's tests share (`from faultkit import ...`). Every module in this folder
sets `pytestmark = pytest.mark.faults` (deselected by default; `make faults` and CI run them); the
figures each test measures go to one JSON file that `docs/reliability.md` quotes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
FIGURES = ARTIFACTS / "faults" / "figures.json"

# Columns that say when or by which run something happened: two correct runs differ there.
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
        "scored_at",
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


def table_content(path: Path, ignore: frozenset[str] = VOLATILE) -> pa.Table:
    """A table's rows in a canonical order, without the columns that record when or by which
    run they were written: what two correct builds over the same input must agree on."""
    table = DeltaTable(str(path)).to_pyarrow_table()
    table = table.select([c for c in table.column_names if c not in ignore])
    sortable = [
        c
        for c in table.column_names
        if not pa.types.is_nested(table.schema.field(c).type)
        and not pa.types.is_binary(table.schema.field(c).type)
    ]
    return table.sort_by([(c, "ascending") for c in sortable]) if sortable else table


def lake_content(lake_root: Path, ignore: frozenset[str] = VOLATILE) -> dict[str, pa.Table]:
    return {
        str(p.relative_to(lake_root)): table_content(p, ignore) for p in delta_tables(lake_root)
    }
